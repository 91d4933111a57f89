"""Which ONNX operators TensorRT 10's ONNX parser accepts, and with which attributes.

The operator list is the support matrix of onnx-tensorrt's `docs/operators.md` for TensorRT 10.0
(opsets 9 to 20), the oldest TensorRT 10 release, so a graph that passes here parses on every TensorRT
10. The restrictions checked are the matrix's for the operators such graphs contain.
"""

from __future__ import annotations

import onnx

TENSORRT_MAX_OPSET = 20
SUPPORTED_OPS = frozenset({
    "Abs", "Acos", "Acosh", "Add", "And", "ArgMax", "ArgMin", "Asin", "Asinh", "Atan", "Atanh",
    "AveragePool", "BatchNormalization", "Cast", "CastLike", "Ceil", "Celu", "Clip", "Concat", "Constant",
    "ConstantOfShape", "Conv", "ConvTranspose", "Cos", "Cosh", "CumSum", "DepthToSpace", "DequantizeLinear",
    "Div", "Dropout", "Einsum", "Elu", "Equal", "Erf", "Exp", "Expand", "EyeLike", "Flatten", "Floor",
    "Gather", "GatherElements", "GatherND", "Gelu", "Gemm", "GlobalAveragePool", "GlobalLpPool",
    "GlobalMaxPool", "Greater", "GreaterOrEqual", "GridSample", "GroupNormalization", "GRU", "HardSigmoid",
    "HardSwish", "Hardmax", "Identity", "If", "ImageScaler", "InstanceNormalization", "IsInf", "IsNaN",
    "LayerNormalization", "LeakyRelu", "Less", "LessOrEqual", "Log", "LogSoftmax", "Loop", "LRN", "LSTM",
    "LpNormalization", "LpPool", "MatMul", "Max", "MaxPool", "Mean", "MeanVarianceNormalization", "Min",
    "Mish", "Mod", "Mul", "Neg", "NonMaxSuppression", "NonZero", "Not", "OneHot", "Or", "Pad",
    "ParametricSoftplus", "Pow", "PRelu", "QuantizeLinear", "RandomNormal", "RandomNormalLike",
    "RandomUniform", "RandomUniformLike", "Range", "Reciprocal", "ReduceL1", "ReduceL2", "ReduceLogSum",
    "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare",
    "Relu", "Reshape", "Resize", "ReverseSequence", "RNN", "RoiAlign", "Round", "ScaledTanh", "Scan",
    "Scatter", "ScatterElements", "ScatterND", "Selu", "Shape", "Shrink", "Sigmoid", "Sign", "Sin", "Sinh",
    "Size", "Slice", "Softmax", "Softplus", "Softsign", "SpaceToDepth", "Split", "Sqrt", "Squeeze", "Sub",
    "Sum", "Tan", "Tanh", "ThresholdedRelu", "Tile", "TopK", "Transpose", "Trilu", "Unsqueeze", "Upsample",
    "Where", "Xor",
})

_AXES_INPUT = {"Pad": 3, "ReduceL1": 1, "ReduceL2": 1, "ReduceLogSum": 1, "ReduceLogSumExp": 1, "ReduceMax": 1,
               "ReduceMean": 1, "ReduceMin": 1, "ReduceProd": 1, "ReduceSum": 1, "ReduceSumSquare": 1,
               "Slice": 3, "Squeeze": 1, "Unsqueeze": 1}
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


def unsupported_nodes(model: onnx.ModelProto) -> list[str]:
    """One line per node that TensorRT 10's parser would reject, naming the node and the reason."""
    graph = model.graph
    constants = {i.name for i in graph.initializer}
    constants |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    consumed = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    problems = []
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and opset.version > TENSORRT_MAX_OPSET:
            problems.append(f"opset {opset.version} is newer than TensorRT 10.0 parses ({TENSORRT_MAX_OPSET})")
    for node in graph.node:
        where = f"node '{node.name}' ({node.op_type})"
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{where}: custom domain '{node.domain}' has no TensorRT parser support")
            continue
        if node.op_type not in SUPPORTED_OPS:
            problems.append(f"{where}: operator not supported by TensorRT 10's ONNX parser")
            continue
        position = _AXES_INPUT.get(node.op_type)
        if position is not None and len(node.input) > position and node.input[position] \
                and node.input[position] not in constants:
            problems.append(f"{where}: `axes` must be a constant for TensorRT")
        if node.op_type in ("MaxPool", "AveragePool", "LpPool"):
            kernel = _attribute(node, "kernel_shape")
            if kernel is not None and len(kernel) not in (2, 3):
                problems.append(f"{where}: only 2D or 3D pooling is supported, got {len(kernel)}D")
            dilations = _attribute(node, "dilations") or []
            if any(d != 1 for d in dilations):
                problems.append(f"{where}: pooling dilations must be all ones")
        if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1] in consumed:
            problems.append(f"{where}: the Indices output is not supported")
        if node.op_type == "LayerNormalization" and any(o in consumed for o in node.output[1:]):
            problems.append(f"{where}: only the first output Y is supported")
        if node.op_type == "Resize":
            mode = _text(_attribute(node, "mode", "nearest"))
            coordinates = _text(_attribute(node, "coordinate_transformation_mode", "half_pixel"))
            if mode not in _RESIZE_MODES or coordinates not in _RESIZE_COORDINATE_MODES:
                problems.append(f"{where}: resize mode {mode}/{coordinates} is not supported")
            if _attribute(node, "antialias", 0):
                problems.append(f"{where}: antialiased resize is not supported")
        if node.op_type == "ScatterND" and _text(_attribute(node, "reduction", "none")) != "none":
            problems.append(f"{where}: ScatterND reduction is not supported")
    return problems
