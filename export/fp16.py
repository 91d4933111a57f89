"""FP16 copies of the exported graphs and their error against FP32.

With a CUDA execution provider the graphs are converted to FP16 (fp32 I/O) and run there. ONNX
Runtime's CPU provider has FP16 kernels for few operators and silently inserts casts to FP32 around
the rest, so on CPU the FP16 copy is emulated instead: initializers and every intermediate float
tensor are rounded to FP16 (values beyond 65504 become inf), while arithmetic runs in FP32 as
TensorRT's FP16 kernels accumulate it.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from tomp_deploy.backends.onnxruntime_backend import OnnxRuntimeBackend
from tomp_deploy.contract import GRAPHS
from tomp_deploy.export_manifest import ExportFolder
from tomp_deploy.parity import OutputComparison, compare_contract

EMULATED = "emulated (fp32 arithmetic, every tensor rounded to fp16) on the CPU provider"
NATIVE = "native fp16 on the CUDA provider"


def emulate_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` that rounds every float initializer, graph input and node output to FP16."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    for initializer in graph.initializer:
        if initializer.data_type == TensorProto.FLOAT:
            with np.errstate(over="ignore"):  # overflow to inf is what FP16 does
                rounded = numpy_helper.to_array(initializer).astype(np.float16).astype(np.float32)
            initializer.CopyFrom(numpy_helper.from_array(rounded, initializer.name))
    float_inputs = [i.name for i in graph.input if i.type.tensor_type.elem_type == TensorProto.FLOAT]
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in list(inferred.graph.value_info) + list(graph.output)}
    types.update({i: TensorProto.FLOAT for i in float_inputs})

    def round_trip(source: str, target: str) -> list[onnx.NodeProto]:
        half = f"{target}__fp16"
        return [helper.make_node("Cast", [source], [half], to=TensorProto.FLOAT16, name=f"{target}__to_fp16"),
                helper.make_node("Cast", [half], [target], to=TensorProto.FLOAT, name=f"{target}__to_fp32")]

    rounded_inputs = {name: f"{name}__rounded" for name in float_inputs}
    nodes = [c for name, target in rounded_inputs.items() for c in round_trip(name, target)]
    for node in graph.node:
        node.input[:] = [rounded_inputs.get(i, i) for i in node.input]
        casts = []
        for index, output in enumerate(node.output):
            if output and types.get(output) == TensorProto.FLOAT:
                node.output[index] = f"{output}__fp32"
                casts += round_trip(node.output[index], output)
        nodes += [node, *casts]
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def native_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    return convert_float_to_float16(model, keep_io_types=True)


def fp16_backend(exported: ExportFolder, device: str = "cpu") -> tuple[OnnxRuntimeBackend, str]:
    """An ONNX Runtime backend running FP16 copies of the graphs, and how they run."""
    native = device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers()
    graphs = {
        g: (native_fp16 if native else emulate_fp16)(onnx.load(str(exported.graph_path(g)))).SerializeToString()
        for g in GRAPHS
    }
    # Emulation must keep every cast pair: ORT's optimiser would remove them as redundant.
    level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL if native else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return OnnxRuntimeBackend(exported, device=device, graphs=graphs, optimization=level), NATIVE if native else EMULATED


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


def contract_inputs(backend: OnnxRuntimeBackend) -> dict[str, list[tuple[np.ndarray, ...]]]:
    """Realistic inputs of each graph: textured crops, their features, centred labels and boxes,
    and the predictor's outputs, all computed by `backend` (the FP32 reference)."""
    from tomp_deploy.geometry import encode_ltrb, gaussian_label

    config = backend.config
    images = _textured_crops(3, config.search_size)
    feats = backend.backbone(images)
    size, cells = config.search_size, config.feature_size
    box = np.array([size * 0.4, size * 0.4, size * 0.2, size * 0.2])
    labels = np.stack([gaussian_label(cells, cells / 20, np.zeros(2))] * 2)
    ltrb = np.stack([encode_ltrb(box, cells, config.feature_stride)] * 2)
    mask = np.zeros((2, config.num_tokens), bool)
    mask[1, cells * cells:2 * cells * cells] = True
    predictor_inputs = [feats[:2], labels, ltrb, feats[2:3], mask]
    cls_filter, bbreg_filter, cls_feat, bbreg_feat = backend.predictor(*predictor_inputs)
    return {"backbone": [(images,)], "predictor": [tuple(predictor_inputs)],
            "head": [(cls_filter, cls_feat, bbreg_filter, bbreg_feat)]}


def check_fp16(exported: ExportFolder, device: str = "cpu") -> tuple[str, list[OutputComparison]]:
    """Runs each graph's FP32 and FP16 copies on the same realistic inputs -> (how FP16 ran, errors)."""
    reference = OnnxRuntimeBackend(exported, device=device)
    candidate, mode = fp16_backend(exported, device)
    with reference, candidate:
        return mode, compare_contract(reference, candidate, contract_inputs(reference))
