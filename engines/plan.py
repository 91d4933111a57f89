"""What a TensorRT build needs to decide and check, computed without TensorRT: optimisation profiles
from the export's contract shapes, and whether a parsed network keeps the export's FP32 islands."""

from __future__ import annotations

from tomp_deploy.runtime.contract import BATCH, graph_io
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.manifests.export import ExportFolder

HEAVY_LAYER_KINDS = frozenset({"CONVOLUTION", "MATRIX_MULTIPLY"})
"""Layers that hold nearly all of a frame's FLOPs: in an FP16 network they must run in FP16."""


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


def precision_problems(layers: list[tuple[str, str, str]], fp32_nodes: list[str], precision: str) -> list[str]:
    """How a parsed strongly typed network (layer name, layer kind, output type: FLOAT or HALF) departs
    from the export: in an FP16 export every FP32 island node must give FP32 layers and every
    convolution and matrix product outside them FP16 ones; in an FP32 export everything stays FP32.
    TensorRT's ONNX parser names a layer after the node it comes from."""
    islands = set(fp32_nodes)
    problems = []
    for name, kind, dtype in layers:
        if name in islands and dtype != "FLOAT":
            problems.append(f"layer {name} ({kind}) of an FP32 island runs in {dtype}")
        elif precision == "fp16" and kind in HEAVY_LAYER_KINDS and name not in islands and dtype != "HALF":
            problems.append(f"layer {name} ({kind}) runs in {dtype}, not FP16")
        elif precision == "fp32" and dtype == "HALF":
            problems.append(f"layer {name} ({kind}) of an FP32 export runs in FP16")
    found = {name for name, _, _ in layers}
    problems += [f"the FP32 island node {name} has no layer in the network" for name in fp32_nodes if name not in found]
    return problems
