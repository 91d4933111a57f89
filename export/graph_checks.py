"""Checks of an exported graph: the ONNX checker, strict shape inference, TensorRT 10 operator support,
full simplification (constant folding beyond onnxscript's limits), and the precision it computes in."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import onnxscript.optimizer
from onnx import TensorProto
from onnx.reference import ReferenceEvaluator

from tomp_deploy.export.trt_ops import unsupported_nodes
from tomp_deploy.runtime.errors import ToMPError

FOLD_SIZE_LIMIT = 1 << 26
"""Elements a folded constant may have. The exporter's own pass stops at 8192, which leaves the
per-layer slices of packed attention weights unfolded; the originals are dropped once folded."""


@dataclass
class GraphReport:
    graph: str
    path: Path
    size_bytes: int
    op_count: int
    op_types: dict[str, int]
    checks: dict[str, str] = field(default_factory=dict)
    fp32_nodes: list[str] = field(default_factory=list)
    """FP32 islands of an FP16 graph (empty for FP32)."""
    fp16_weight_fraction: float = 0.0


def fp32_compute_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes that compute in FP32 (float32 outputs, casts aside): in an FP16 graph, its
    FP32 islands."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in list(inferred.graph.value_info) + list(model.graph.output)}
    return [
        node.name
        for node in model.graph.node
        if node.op_type != "Cast" and any(types.get(o) == TensorProto.FLOAT for o in node.output)
    ]


def fp16_weight_fraction(model: onnx.ModelProto) -> float:
    """Share of the graph's float weights (initializer elements) stored in FP16."""
    sizes = {TensorProto.FLOAT: 0, TensorProto.FLOAT16: 0}
    for initializer in model.graph.initializer:
        if initializer.data_type in sizes:
            sizes[initializer.data_type] += math.prod(initializer.dims)
    total = sum(sizes.values())
    return sizes[TensorProto.FLOAT16] / total if total else 0.0


def simplify(path: Path) -> None:
    """Constant folding and dead-node removal with onnxscript's optimizer, without its size limits,
    then folding of what it leaves (operators it cannot evaluate, such as LayerNormalization of the
    decoder's constant first query) with ONNX's reference evaluator."""
    model = onnx.load(str(path))
    model = onnxscript.optimizer.optimize(model, input_size_limit=FOLD_SIZE_LIMIT, output_size_limit=FOLD_SIZE_LIMIT)
    while foldable := foldable_nodes(model.graph):
        _fold_node(model, foldable[0])
    used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    unused = [i for i in model.graph.initializer if i.name not in used]
    for initializer in unused:
        model.graph.initializer.remove(initializer)
    onnx.save(model, str(path))


def _fold_node(model: onnx.ModelProto, name: str) -> None:
    graph = model.graph
    node = next(n for n in graph.node if n.name == name)
    values = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
    for constant in (n for n in graph.node if n.op_type == "Constant"):
        values.update(
            zip(
                constant.output,
                ReferenceEvaluator(
                    onnx.helper.make_model(
                        onnx.helper.make_graph(
                            [constant], "c", [], [onnx.helper.make_empty_tensor_value_info(constant.output[0])]
                        ),
                        opset_imports=model.opset_import,
                    )
                ).run(None, {}),
            )
        )
    single = onnx.helper.make_model(
        onnx.helper.make_graph(
            [node],
            "fold",
            [],
            [onnx.helper.make_empty_tensor_value_info(o) for o in node.output],
            initializer=[onnx.numpy_helper.from_array(values[i], i) for i in node.input if i],
        ),
        opset_imports=model.opset_import,
    )
    results = ReferenceEvaluator(single).run(None, {})
    graph.node.remove(node)
    graph.initializer.extend(onnx.numpy_helper.from_array(v, o) for o, v in zip(node.output, results))


def dead_nodes(graph: onnx.GraphProto) -> list[str]:
    """Nodes none of whose outputs reach a graph output."""
    needed = {o.name for o in graph.output}
    dead = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            needed.update(node.input)
        else:
            dead.append(node.name)
    return dead


def foldable_nodes(graph: onnx.GraphProto) -> list[str]:
    """Non-Constant nodes whose every input is a constant: left-over constant folding."""
    constants = {i.name for i in graph.initializer}
    constants |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    return [n.name for n in graph.node if n.op_type != "Constant" and n.input and all(i in constants for i in n.input if i)]


def check_graph(path: Path, graph: str, opset: int, precision: str = "fp32") -> GraphReport:
    """Full ONNX check, strict shape inference, TensorRT 10 operator support, simplification."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ToMPError(f"{path} fails the ONNX checker: {str(exc).splitlines()[0]}") from None
    model = onnx.load(str(path))
    try:
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except onnx.shape_inference.InferenceError as exc:
        raise ToMPError(f"{path} fails ONNX shape inference: {str(exc).splitlines()[0]}") from None
    problems = unsupported_nodes(model)
    if problems:
        raise ToMPError(
            f"The {graph} graph cannot be parsed by TensorRT 10:\n  "
            + "\n  ".join(problems)
            + "\nChange the model code so that it exports to supported operators."
        )
    leftovers = dead_nodes(model.graph) + foldable_nodes(model.graph)
    if leftovers:
        raise ToMPError(f"The {graph} graph is not fully simplified: nodes {leftovers[:10]} are dead or constant.")
    op_types: dict[str, int] = {}
    for node in model.graph.node:
        op_types[node.op_type] = op_types.get(node.op_type, 0) + 1
    return GraphReport(
        graph,
        path,
        path.stat().st_size,
        len(model.graph.node),
        op_types,
        {"checker": "pass", "shapes": "pass", "TensorRT 10 ops": "pass", "folded": "pass", "opset": str(opset)},
        fp32_compute_nodes(model) if precision != "fp32" else [],
        fp16_weight_fraction(model),
    )
