"""Which ONNX operators TensorRT 10's ONNX parser accepts, and with which attributes.

The operator list is the support matrix of onnx-tensorrt's `docs/operators.md` for TensorRT 10.0
(opsets 9 to 20), the oldest TensorRT 10 release, so a graph that passes here parses on every TensorRT
10. The restrictions checked are the matrix's for the operators such graphs contain.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

TENSORRT_MAX_OPSET = 20
SUPPORTED_OPS = frozenset(
    {
        "Abs",
        "Acos",
        "Acosh",
        "Add",
        "And",
        "ArgMax",
        "ArgMin",
        "Asin",
        "Asinh",
        "Atan",
        "Atanh",
        "AveragePool",
        "BatchNormalization",
        "Cast",
        "CastLike",
        "Ceil",
        "Celu",
        "Clip",
        "Concat",
        "Constant",
        "ConstantOfShape",
        "Conv",
        "ConvTranspose",
        "Cos",
        "Cosh",
        "CumSum",
        "DepthToSpace",
        "DequantizeLinear",
        "Div",
        "Dropout",
        "Einsum",
        "Elu",
        "Equal",
        "Erf",
        "Exp",
        "Expand",
        "EyeLike",
        "Flatten",
        "Floor",
        "Gather",
        "GatherElements",
        "GatherND",
        "Gelu",
        "Gemm",
        "GlobalAveragePool",
        "GlobalLpPool",
        "GlobalMaxPool",
        "Greater",
        "GreaterOrEqual",
        "GridSample",
        "GroupNormalization",
        "GRU",
        "HardSigmoid",
        "HardSwish",
        "Hardmax",
        "Identity",
        "If",
        "ImageScaler",
        "InstanceNormalization",
        "IsInf",
        "IsNaN",
        "LayerNormalization",
        "LeakyRelu",
        "Less",
        "LessOrEqual",
        "Log",
        "LogSoftmax",
        "Loop",
        "LRN",
        "LSTM",
        "LpNormalization",
        "LpPool",
        "MatMul",
        "Max",
        "MaxPool",
        "Mean",
        "MeanVarianceNormalization",
        "Min",
        "Mish",
        "Mod",
        "Mul",
        "Neg",
        "NonMaxSuppression",
        "NonZero",
        "Not",
        "OneHot",
        "Or",
        "Pad",
        "ParametricSoftplus",
        "Pow",
        "PRelu",
        "QuantizeLinear",
        "RandomNormal",
        "RandomNormalLike",
        "RandomUniform",
        "RandomUniformLike",
        "Range",
        "Reciprocal",
        "ReduceL1",
        "ReduceL2",
        "ReduceLogSum",
        "ReduceLogSumExp",
        "ReduceMax",
        "ReduceMean",
        "ReduceMin",
        "ReduceProd",
        "ReduceSum",
        "ReduceSumSquare",
        "Relu",
        "Reshape",
        "Resize",
        "ReverseSequence",
        "RNN",
        "RoiAlign",
        "Round",
        "ScaledTanh",
        "Scan",
        "Scatter",
        "ScatterElements",
        "ScatterND",
        "Selu",
        "Shape",
        "Shrink",
        "Sigmoid",
        "Sign",
        "Sin",
        "Sinh",
        "Size",
        "Slice",
        "Softmax",
        "Softplus",
        "Softsign",
        "SpaceToDepth",
        "Split",
        "Sqrt",
        "Squeeze",
        "Sub",
        "Sum",
        "Tan",
        "Tanh",
        "ThresholdedRelu",
        "Tile",
        "TopK",
        "Transpose",
        "Trilu",
        "Unsqueeze",
        "Upsample",
        "Where",
        "Xor",
    }
)

_AXES_INPUT = {
    "Pad": 3,
    "ReduceL1": 1,
    "ReduceL2": 1,
    "ReduceLogSum": 1,
    "ReduceLogSumExp": 1,
    "ReduceMax": 1,
    "ReduceMean": 1,
    "ReduceMin": 1,
    "ReduceProd": 1,
    "ReduceSum": 1,
    "ReduceSumSquare": 1,
    "Slice": 3,
    "Squeeze": 1,
    "Unsqueeze": 1,
}
"""Operators whose `axes` input (at this position) must be a build-time constant."""

_RESIZE_COORDINATE_MODES = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}
_RESIZE_MODES = {"nearest", "linear"}


def _attribute(node: onnx.NodeProto, name: str, default=None):
    for attribute in node.attribute:
        if attribute.name == name:
            return onnx.helper.get_attribute_value(attribute)
    return default


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class _GraphFacts:
    constants: frozenset[str]
    """Initializers and Constant outputs: known when TensorRT builds."""
    consumed: frozenset[str]
    """Tensors some node reads, or graph outputs."""


def _pooling(node: onnx.NodeProto, facts: _GraphFacts) -> list[str]:
    problems = []
    kernel = _attribute(node, "kernel_shape")
    if kernel is not None and len(kernel) not in (2, 3):
        problems.append(f"only 2D or 3D pooling is supported, got {len(kernel)}D")
    if any(d != 1 for d in _attribute(node, "dilations") or []):
        problems.append("pooling dilations must be all ones")
    return problems


def _max_pool(node: onnx.NodeProto, facts: _GraphFacts) -> list[str]:
    indices_read = len(node.output) > 1 and node.output[1] in facts.consumed
    return _pooling(node, facts) + (["the Indices output is not supported"] if indices_read else [])


def _layer_normalization(node: onnx.NodeProto, facts: _GraphFacts) -> list[str]:
    return ["only the first output Y is supported"] if any(o in facts.consumed for o in node.output[1:]) else []


def _resize(node: onnx.NodeProto, facts: _GraphFacts) -> list[str]:
    problems = []
    mode = _text(_attribute(node, "mode", "nearest"))
    coordinates = _text(_attribute(node, "coordinate_transformation_mode", "half_pixel"))
    if mode not in _RESIZE_MODES or coordinates not in _RESIZE_COORDINATE_MODES:
        problems.append(f"resize mode {mode}/{coordinates} is not supported")
    if _attribute(node, "antialias", 0):
        problems.append("antialiased resize is not supported")
    return problems


def _scatter_nd(node: onnx.NodeProto, facts: _GraphFacts) -> list[str]:
    return ["ScatterND reduction is not supported"] if _text(_attribute(node, "reduction", "none")) != "none" else []


_RESTRICTIONS = {
    "MaxPool": _max_pool,
    "AveragePool": _pooling,
    "LpPool": _pooling,
    "LayerNormalization": _layer_normalization,
    "Resize": _resize,
    "ScatterND": _scatter_nd,
}
"""Operator -> the check of the attributes and outputs the matrix restricts."""


def _node_problems(node: onnx.NodeProto, facts: _GraphFacts) -> list[str]:
    if node.domain not in ("", "ai.onnx"):
        return [f"custom domain '{node.domain}' has no TensorRT parser support"]
    if node.op_type not in SUPPORTED_OPS:
        return ["operator not supported by TensorRT 10's ONNX parser"]
    problems = []
    position = _AXES_INPUT.get(node.op_type)
    if (
        position is not None
        and len(node.input) > position
        and node.input[position]
        and node.input[position] not in facts.constants
    ):
        problems.append("`axes` must be a constant for TensorRT")
    restriction = _RESTRICTIONS.get(node.op_type)
    return problems + (restriction(node, facts) if restriction else [])


def unsupported_nodes(model: onnx.ModelProto) -> list[str]:
    """One line per node that TensorRT 10's parser would reject, naming the node and the reason."""
    graph = model.graph
    facts = _GraphFacts(
        constants=frozenset(
            {i.name for i in graph.initializer} | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
        ),
        consumed=frozenset({i for n in graph.node for i in n.input} | {o.name for o in graph.output}),
    )
    problems = [
        f"opset {opset.version} is newer than TensorRT 10.0 parses ({TENSORRT_MAX_OPSET})"
        for opset in model.opset_import
        if opset.domain in ("", "ai.onnx") and opset.version > TENSORRT_MAX_OPSET
    ]
    for node in graph.node:
        problems += [f"node '{node.name}' ({node.op_type}): {problem}" for problem in _node_problems(node, facts)]
    return problems
