"""What a TensorRT build needs to decide, computed without TensorRT: optimisation profiles from the
export's contract shapes and the layers kept in FP32 under FP16."""

from __future__ import annotations

from tomp_deploy.contract import BATCH, graph_io
from tomp_deploy.errors import ToMPError
from tomp_deploy.export_manifest import ExportFolder

PRECISIONS = ("fp16", "fp32")
FP32_LAYER_KINDS = frozenset({"NORMALIZATION", "REDUCE", "SOFTMAX"})
"""TensorRT layer kinds kept in FP32 in an FP16 engine: normalisations (LayerNorm, the instance L2 norm's
and GroupNorm's reductions) accumulate over hundreds to tens of thousands of values, and softmax turns
small logit errors into weight errors. The graphs are written to stay in FP16 range; pinning these keeps
their accumulation exact as well, at little cost (they are a small share of the FLOPs)."""


def profile_shapes(exported: ExportFolder, max_batch: int) -> dict[str, dict[str, tuple]]:
    """graph -> input name -> (min, opt, max) shape; only the backbone's batch varies (1..max_batch)."""
    limit = exported.manifest.max_batch
    if not 1 <= max_batch <= limit:
        raise ToMPError(f"--max-batch {max_batch} is outside 1..{limit}, the batch range the ONNX export allows.")
    profiles = {}
    for graph, (inputs, _) in graph_io(exported.config).items():
        profiles[graph] = {}
        for spec in inputs:
            low = tuple(1 if d == BATCH else d for d in spec.shape)
            high = tuple(max_batch if d == BATCH else d for d in spec.shape)
            profiles[graph][spec.name] = (low, low, high)
    return profiles


def fp32_layers(layers: list[tuple[str, str]], precision: str) -> list[str]:
    """Names of the layers (name, TensorRT layer kind) to pin to FP32 for the requested precision."""
    if precision not in PRECISIONS:
        raise ToMPError(f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}.")
    if precision == "fp32":
        return []
    return [name for name, kind in layers if kind in FP32_LAYER_KINDS]
