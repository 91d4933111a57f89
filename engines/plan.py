"""What a TensorRT build needs to decide and check, computed without TensorRT: optimisation profiles
from the export's contract shapes, whether a parsed network's inputs fit them, and whether it keeps the
export's FP32 islands."""

from __future__ import annotations

from tomp_deploy.runtime.contract import graph_io
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.manifests.export import ExportFolder

HEAVY_LAYER_KINDS = frozenset({"CONVOLUTION", "MATRIX_MULTIPLY"})
"""Layers that hold nearly all of a frame's FLOPs: in an FP16 network they must run in FP16."""


def profile_shapes(exported: ExportFolder, max_batch: int) -> dict[str, dict[str, tuple]]:
    """graph -> input name -> (min, opt, max) shape: 1..max_batch crops for the backbone and targets for
    the predictor and head, tuned for one (a single target is the common case)."""
    limit = exported.manifest.max_batch
    if not 1 <= max_batch <= limit:
        raise ToMPError(f"--max-batch {max_batch} is outside 1..{limit}, the batch range the ONNX export allows.")
    profiles = {}
    for graph, (inputs, _) in graph_io(exported.config).items():
        profiles[graph] = {
            spec.name: (spec.concrete_shape(1), spec.concrete_shape(1), spec.concrete_shape(max_batch)) for spec in inputs
        }
    return profiles


def profile_problems(network_inputs: list[tuple[str, tuple[int, ...]]], profile: dict[str, tuple]) -> list[str]:
    """How a parsed network's inputs (name, shape with -1 for a dynamic dimension) depart from its
    optimisation profile: every input needs a profile with its number of dimensions, and a static
    dimension the profile's size. An export whose batch of crops or targets came out static would fail here."""
    problems = []
    for name, shape in network_inputs:
        if name not in profile:
            problems.append(f"input '{name}' has no optimisation profile")
            continue
        low, _, high = profile[name]
        if len(shape) != len(low):
            problems.append(f"input '{name}' has {len(shape)} dimensions, its profile {len(low)}")
            continue
        for axis, (size, smallest, largest) in enumerate(zip(shape, low, high)):
            if size != -1 and not size == smallest == largest:
                problems.append(f"input '{name}' is {size} in dimension {axis}, the profile {smallest}..{largest}")
    return problems


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
