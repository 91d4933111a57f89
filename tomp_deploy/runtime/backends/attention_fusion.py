"""Fused attention for ONNX Runtime on the CPU: an in-memory rewrite of an export's FP32 predictor in
which every attention block becomes one `com.microsoft.MultiHeadAttention` node.

The export writes attention as plain MatMul/Add/Softmax so that every TensorRT release parses it; ONNX
Runtime's optimiser does not fuse that pattern, and its unfused CPU path materialises the [heads, N, N]
logits and probabilities and moves them through separate Add, Softmax and Transpose passes. Its
MultiHeadAttention CPU kernel does the same arithmetic per head without those passes: ToMP-50's
predictor 249 -> 237 ms on a 2-core AMD EPYC (`benchmarks/results/attention_fusion_tomp50.md`). The
outputs are those of the graph as exported up to float rounding: a hidden key gets the kernel's mask
value (-10000 before the softmax) instead of -inf, which underflows to the same zero weight. Written by
hand because ONNX Runtime's transformer optimiser only knows BERT/GPT-style graphs.

The rewrite matches the export's own pattern (q and k each scaled by head_dim ** -0.25, an optional
additive key bias built by a Where from the bool key padding mask, softmax, product with v); anything
else is left as it is.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

MICROSOFT = "com.microsoft"
_LAYOUT_OPS = ("Reshape", "Transpose")


class _Graph:
    def __init__(self, graph: onnx.GraphProto):
        self.graph = graph
        self.producer = {out: node for node in graph.node for out in node.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)

    def made_by(self, name: str, op_type: str) -> onnx.NodeProto | None:
        node = self.producer.get(name)
        return node if node is not None and node.op_type == op_type else None

    def only_consumer(self, name: str, op_type: str) -> onnx.NodeProto | None:
        users = self.consumers.get(name, [])
        return users[0] if len(users) == 1 and users[0].op_type == op_type else None

    def before_layout(self, name: str) -> str:
        """The tensor a chain of Reshape/Transpose nodes starts from (the [B, L, E] projection)."""
        while (node := self.producer.get(name)) is not None and node.op_type in _LAYOUT_OPS:
            name = node.input[0]
        return name

    def scalar(self, name: str) -> float | None:
        value = self.constants.get(name)
        return float(value.reshape(())) if value is not None and value.size == 1 else None


def _scaled_operand(graph: _Graph, name: str, scale: list[float]) -> str | None:
    """The unscaled projection behind `Mul(x, c)` (recording c), or None when `name` is not that."""
    node = graph.made_by(name, "Mul")
    if node is None:
        return None
    factor = graph.scalar(node.input[1])
    if factor is None:
        return None
    scale.append(factor)
    return graph.before_layout(node.input[0])


def _keep_mask_source(graph: _Graph, bias: str) -> str | None:
    """The bool key padding mask behind an additive bias Unsqueeze(Where(mask, -inf, 0))."""
    unsqueeze = graph.made_by(bias, "Unsqueeze")
    where = graph.made_by(unsqueeze.input[0], "Where") if unsqueeze is not None else None
    if where is None or graph.scalar(where.input[1]) != float("-inf"):
        return None
    zeros = graph.constants.get(where.input[2])
    if zeros is not None and np.any(zeros):
        return None
    return where.input[0]


def fuse_attention(model: onnx.ModelProto, num_heads: int, embed_dim: int) -> tuple[onnx.ModelProto, int]:
    """A copy of `model` with each matched attention block replaced by MultiHeadAttention; returns it and
    the number of blocks fused. Only blocks scaled as the kernel scales (1 / sqrt(embed_dim / num_heads)
    on the logits) are fused."""
    kernel_scale = (embed_dim / num_heads) ** -0.5
    fused_model = onnx.ModelProto()
    fused_model.CopyFrom(model)
    graph = _Graph(fused_model.graph)
    replacements: dict[str, list[onnx.NodeProto]] = {}
    keep_masks: dict[str, str] = {}
    for softmax in [n for n in fused_model.graph.node if n.op_type == "Softmax"]:
        logits, mask = softmax.input[0], None
        add = graph.made_by(logits, "Add")
        if add is not None:
            mask = _keep_mask_source(graph, add.input[1])
            if mask is None:
                continue
            logits = add.input[0]
        product = graph.made_by(logits, "MatMul")
        weighted = graph.only_consumer(softmax.output[0], "MatMul")
        if product is None or weighted is None or weighted.input[0] != softmax.output[0]:
            continue
        scale: list[float] = []
        query = _scaled_operand(graph, product.input[0], scale)
        key = _scaled_operand(graph, product.input[1], scale)
        value = graph.before_layout(weighted.input[1])
        merge = graph.only_consumer(weighted.output[0], "Transpose")
        output = graph.only_consumer(merge.output[0], "Reshape") if merge is not None else None
        if query is None or key is None or output is None or not np.isclose(scale[0] * scale[1], kernel_scale):
            continue
        inputs = [query, key, value]
        if mask is not None:
            if mask not in keep_masks:
                keep_masks[mask] = f"{mask}_keep_int32"
            inputs += ["", keep_masks[mask]]
        node = helper.make_node(
            "MultiHeadAttention",
            inputs,
            [output.output[0]],
            name=f"fused_attention_{len(replacements)}",
            domain=MICROSOFT,
            num_heads=num_heads,
        )
        replacements[output.output[0]] = [node]
    if not replacements:
        return fused_model, 0
    rewritten = _rewritten_nodes(fused_model.graph, replacements, keep_masks)
    del fused_model.graph.node[:]
    fused_model.graph.node.extend(_live(rewritten, [o.name for o in fused_model.graph.output]))
    if not any(o.domain == MICROSOFT for o in fused_model.opset_import):
        fused_model.opset_import.append(helper.make_opsetid(MICROSOFT, 1))
    return fused_model, len(replacements)


def _rewritten_nodes(
    graph: onnx.GraphProto, replacements: dict[str, list[onnx.NodeProto]], keep_masks: dict[str, str]
) -> list[onnx.NodeProto]:
    """The graph's nodes with the fused blocks' output nodes replaced, and each mask's int32 "keep" form
    (Not, Cast) made right after the mask is (first, for a graph input)."""
    mask_nodes = {
        mask: [
            helper.make_node("Not", [mask], [f"{mask}_keep"]),
            helper.make_node("Cast", [f"{mask}_keep"], [keep], to=onnx.TensorProto.INT32),
        ]
        for mask, keep in keep_masks.items()
    }
    graph_inputs = {i.name for i in graph.input}
    rewritten = [node for mask in keep_masks if mask in graph_inputs for node in mask_nodes[mask]]
    for node in graph.node:
        if node.output and node.output[0] in replacements:
            rewritten += replacements[node.output[0]]
        else:
            rewritten.append(node)
        for out in node.output:
            if out in mask_nodes and out not in graph_inputs:
                rewritten += mask_nodes[out]
    return rewritten


def _live(nodes: list[onnx.NodeProto], outputs: list[str]) -> list[onnx.NodeProto]:
    """`nodes` (in order) that an output depends on."""
    needed = set(outputs)
    live = []
    for node in reversed(nodes):
        if any(out in needed for out in node.output):
            live.append(node)
            needed.update(name for name in node.input if name)
    return live[::-1]
