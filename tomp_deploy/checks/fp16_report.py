"""Where FP16 error comes from: every intermediate tensor of an FP16 export against FP32.

Like Polygraphy's `--onnx-outputs mark all`, each graph is run with all its intermediate tensors
exposed, once as exported (FP16 with its FP32 islands) and once as an FP32 twin: the same graph with
the FP32 export's weights and every cast to FP16 turned into a cast to FP32. The twin has the FP16
graph's node and tensor names, so every tensor has its exact FP32 counterpart (two separate exports
name their tensors differently). A layer is listed when its output error is well above the error of
its inputs: that is where FP16 hurts, and where an FP32 island would help.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, numpy_helper

from tomp_deploy.checks.parity import relative_error
from tomp_deploy.runtime.backends.base import Backend
from tomp_deploy.runtime.backends.recording import RecordedCalls
from tomp_deploy.runtime.contract import GRAPHS, Tensors
from tomp_deploy.runtime.manifests.export import ExportFolder

GROWTH = 2.0
"""A layer is listed when its output's relative error exceeds this multiple of its inputs' worst."""
NOTICEABLE = 1e-3
"""...and is at least this large."""


@dataclass
class LayerError:
    graph: str
    node: str
    op_type: str
    tensor: str
    max_rel: float
    """max |fp16 - fp32| / max |fp32| of the node's output."""
    input_rel: float
    """The worst relative error of the node's inputs."""
    fp32_island: bool


def fp32_twin(fp16: onnx.ModelProto, fp32_weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """The FP16 graph computing in FP32: FP16 parameters replaced by the FP32 export's weights of the same
    name (the FP16 export prefixes them with `module.`); other initializers (constants the exporter
    folded, whose generated names mean nothing across exports) upcast."""
    twin = onnx.ModelProto.FromString(fp16.SerializeToString())
    graph = twin.graph
    for initializer in graph.initializer:
        if initializer.data_type != TensorProto.FLOAT16:
            continue
        rounded = numpy_helper.to_array(initializer)
        original = fp32_weights.get(initializer.name[len("module.") :]) if initializer.name.startswith("module.") else None
        value = original if original is not None and original.shape == rounded.shape else rounded.astype(np.float32)
        initializer.CopyFrom(numpy_helper.from_array(value.astype(np.float32), initializer.name))
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.name == "to" and attribute.i == TensorProto.FLOAT16:
                attribute.i = TensorProto.FLOAT
            if attribute.type == onnx.AttributeProto.TENSOR and attribute.t.data_type == TensorProto.FLOAT16:
                attribute.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attribute.t).astype(np.float32)))
    del graph.value_info[:]
    return twin


def _all_tensors_exposed(model: onnx.ModelProto) -> tuple[bytes, list[str]]:
    """The model with every float node output as a graph output, and those names in node order."""
    inferred = onnx.shape_inference.infer_shapes(model)
    floats = (TensorProto.FLOAT, TensorProto.FLOAT16)
    infos = {v.name: v for v in inferred.graph.value_info if v.type.tensor_type.elem_type in floats}
    names = [o for node in model.graph.node for o in node.output if o in infos]
    exposed = onnx.ModelProto.FromString(model.SerializeToString())
    outputs = {o.name for o in exposed.graph.output}
    exposed.graph.output.extend(infos[name] for name in names if name not in outputs)
    return exposed.SerializeToString(), names + [o.name for o in model.graph.output]


def _run(serialized: bytes, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor as written
    options.log_severity_level = 3
    session = ort.InferenceSession(serialized, options, providers=["CPUExecutionProvider"])
    values = session.run(None, feeds)
    return {meta.name: value for meta, value in zip(session.get_outputs(), values)}


def layer_errors(fp32: ExportFolder, fp16: ExportFolder, inputs: dict[str, Tensors]) -> list[LayerError]:
    """Every node output of the FP16 export against its FP32 twin, per graph, on the given inputs
    (graph -> its contract inputs by name)."""
    rows = []
    for graph in GRAPHS:
        half = onnx.load(str(fp16.graph_path(graph)))
        weights = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(fp32.graph_path(graph))).graph.initializer}
        feeds = {name: np.ascontiguousarray(array) for name, array in inputs[graph].items()}
        exposed_half, names = _all_tensors_exposed(half)
        exposed_twin, _ = _all_tensors_exposed(fp32_twin(half, weights))
        reference, candidate = _run(exposed_twin, feeds), _run(exposed_half, feeds)
        error = {name: _error(reference[name], candidate[name]) for name in names if name in reference and name in candidate}
        islands = set(fp16.manifest.graphs[graph].fp32_nodes)
        for node in half.graph.node:
            if node.op_type == "Cast":
                continue
            for output in (o for o in node.output if o in error):
                incoming = max((error.get(i, 0.0) for i in node.input), default=0.0)
                rows.append(LayerError(graph, node.name, node.op_type, output, error[output], incoming, node.name in islands))
    return rows


def _error(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Relative error over the finite values; infinite where one side is infinite and the other not
    (the attention mask's -inf bias is the same on both sides)."""
    reference, candidate = np.asarray(reference, np.float64), np.asarray(candidate, np.float64)
    finite = np.isfinite(reference)
    if not np.array_equal(finite, np.isfinite(candidate)) or not np.array_equal(reference[~finite], candidate[~finite]):
        return float("inf")
    if not finite.any():
        return 0.0
    return relative_error(reference[finite], candidate[finite])[1]


def growing(rows: list[LayerError]) -> list[LayerError]:
    """The layers where the error grows: output error >= GROWTH x the inputs' and >= NOTICEABLE."""
    return [r for r in rows if r.max_rel >= NOTICEABLE and r.max_rel >= GROWTH * r.input_rel]


def _textured_crops(count: int, size: int, seed: int = 0) -> np.ndarray:
    """Smooth random RGB textures [count, 3, size, size] in 0..255, with a bright square in the middle."""
    import cv2

    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(count):
        coarse = rng.uniform(0, 255, (size // 16, size // 16, 3)).astype(np.float32)
        crop = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
        centre = slice(size * 2 // 5, size * 3 // 5)
        crop[centre, centre] = rng.uniform(150, 255, 3)
        crops.append(np.clip(crop, 0, 255).transpose(2, 0, 1))
    return np.stack(crops).astype(np.float32)


def contract_inputs(backend: Backend) -> RecordedCalls:
    """Realistic inputs of each graph, one call each: textured crops, their features, centred labels and
    boxes, and the predictor's outputs, all computed by `backend` (the FP32 reference)."""
    from tomp_deploy.runtime.geometry import encode_ltrb, gaussian_label

    config = backend.config
    images = _textured_crops(3, config.search_size)
    feats = backend.run("backbone", {"image": images})["feat"]
    size, cells = config.search_size, config.feature_size
    box = np.array([size * 0.4, size * 0.4, size * 0.2, size * 0.2])
    mask = np.zeros((1, 2, config.num_tokens), bool)
    mask[0, 1, cells * cells : 2 * cells * cells] = True
    predictor_inputs = {
        "train_feat": feats[None, :2],
        "train_label": np.stack([gaussian_label(cells, cells / 20, np.zeros(2))] * 2)[None],
        "train_ltrb": np.stack([encode_ltrb(box, cells, config.feature_stride)] * 2)[None],
        "test_feat": feats[2:3],
        "key_padding_mask": mask,
    }
    return {
        "backbone": [{"image": images}],
        "predictor": [predictor_inputs],
        "head": [backend.run("predictor", predictor_inputs)],
    }
