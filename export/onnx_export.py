"""Exports a ToMP network as the contract's three ONNX graphs plus `model.json`, and checks them."""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import onnxscript.optimizer
import torch
from onnx import TensorProto
from onnx.reference import ReferenceEvaluator

from export.trt_ops import unsupported_nodes
from tomp_deploy.contract import BATCH, GRAPHS, TensorSpec, graph_io
from tomp_deploy.errors import ToMPError
from tomp_deploy.export_manifest import (
    COMPILE_CACHE_FOLDER,
    EXPORT_MANIFEST_FILE,
    ExportManifest,
    GraphFile,
    SourceCheckpoint,
)
from tomp_deploy.manifest_files import file_sha256
from tomp_deploy.model import ToMPNet
from tomp_deploy.presets import TrackerParams

DEFAULT_OPSET = 18
"""The lowest opset torch's dynamo exporter emits natively, inside TensorRT 10.0's parser range (9-20),
and the first with LayerNormalization as one op (TensorRT maps it to its normalisation layer)."""
MAX_EXPORT_BATCH = 64
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


def example_inputs(spec: tuple[TensorSpec, ...], batch: int = 1) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    tensors = []
    for tensor in spec:
        shape = [batch if d == BATCH else d for d in tensor.shape]
        if tensor.dtype == "bool":
            tensors.append(torch.zeros(shape, dtype=torch.bool))
        else:
            tensors.append(torch.rand(shape, generator=generator))
    return tuple(tensors)


@contextlib.contextmanager
def _without_fold_warnings():
    """Silences onnxscript's warning that it cannot fold LayerNormalization (an op with several
    outputs): `simplify` folds those nodes itself, so the warning only alarms users."""
    logger = logging.getLogger("onnxscript.optimizer._constant_folding")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16}
EXPORT_FILES = tuple(f"{graph}.onnx" for graph in GRAPHS) + (EXPORT_MANIFEST_FILE,)



class Float32Boundary(torch.nn.Module):
    """A module run in a reduced precision behind float32 inputs and outputs (the contract's boundary)."""

    def __init__(self, module: torch.nn.Module, dtype: torch.dtype):
        super().__init__()
        self.module = module
        self.dtype = dtype

    def forward(self, *inputs: torch.Tensor):
        outputs = self.module(*(t.to(self.dtype) if t.is_floating_point() else t for t in inputs))
        if isinstance(outputs, torch.Tensor):
            return outputs.float()
        return tuple(o.float() for o in outputs)


def _modules(model: ToMPNet, precision: str) -> dict[str, torch.nn.Module]:
    """The three contract modules; for FP16 those of a half-precision copy, float32 at the boundary.

    FP16 graphs are exported from the reduced-precision PyTorch model itself (the one the torch-cuda
    backend runs), not converted afterwards: its FP32 islands (LayerNorm, softmax, the instance L2 and
    GroupNorm statistics, the score correlation, the ltrb `exp`) are written in the model code, so
    both GPU paths share one FP16 definition, and the exporter emits them as Cast-bracketed FP32 nodes
    that every strongly typed engine library keeps. A converter with block lists (onnxconverter-common)
    would have to rediscover those islands by node name after export.
    """
    if precision != "fp32":
        model = copy.deepcopy(model).to(PRECISIONS[precision])
    modules = {"backbone": model.backbone, "predictor": model.predictor, "head": model.head}
    if precision == "fp32":
        return modules
    return {graph: Float32Boundary(module, PRECISIONS[precision]) for graph, module in modules.items()}


def fp32_compute_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes that compute in FP32 (float32 outputs, casts aside): in an FP16 graph, its
    FP32 islands."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in list(inferred.graph.value_info) + list(model.graph.output)}
    return [node.name for node in model.graph.node
            if node.op_type != "Cast" and any(types.get(o) == TensorProto.FLOAT for o in node.output)]


def fp16_weight_fraction(model: onnx.ModelProto) -> float:
    """Share of the graph's float weights (initializer elements) stored in FP16."""
    sizes = {TensorProto.FLOAT: 0, TensorProto.FLOAT16: 0}
    for initializer in model.graph.initializer:
        if initializer.data_type in sizes:
            sizes[initializer.data_type] += math.prod(initializer.dims)
    total = sum(sizes.values())
    return sizes[TensorProto.FLOAT16] / total if total else 0.0


def _export_graph(module: torch.nn.Module, inputs, outputs, path: Path, opset: int) -> None:
    args = example_inputs(inputs)
    dynamic = any(BATCH in t.shape for t in inputs)
    dynamic_shapes = ({0: torch.export.Dim(BATCH, min=1, max=MAX_EXPORT_BATCH)},) if dynamic else None
    if dynamic and isinstance(module, Float32Boundary):
        dynamic_shapes = (dynamic_shapes,)  # its forward takes *inputs: one tuple argument
    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter), torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(
                module.eval(),
                args,
                str(path),
                input_names=[t.name for t in inputs],
                output_names=[t.name for t in outputs],
                opset_version=opset,
                dynamo=True,
                dynamic_shapes=dynamic_shapes,
                optimize=True,
                external_data=False,
            )
    except Exception as exc:
        raise ToMPError(
            f"torch.onnx.export failed for {path.stem} at opset {opset}: {str(exc).splitlines()[0]}\n"
            f"{chatter.getvalue()[-2000:]}"
        ) from None


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
        values.update(zip(constant.output, ReferenceEvaluator(onnx.helper.make_model(
            onnx.helper.make_graph([constant], "c", [], [onnx.helper.make_empty_tensor_value_info(constant.output[0])]),
            opset_imports=model.opset_import)).run(None, {})))
    single = onnx.helper.make_model(
        onnx.helper.make_graph([node], "fold", [], [onnx.helper.make_empty_tensor_value_info(o) for o in node.output],
                               initializer=[onnx.numpy_helper.from_array(values[i], i) for i in node.input if i]),
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
    return [n.name for n in graph.node if n.op_type != "Constant" and n.input and all(
        i in constants for i in n.input if i)]


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
            f"The {graph} graph cannot be parsed by TensorRT 10:\n  " + "\n  ".join(problems)
            + "\nChange the model code so that it exports to supported operators."
        )
    leftovers = dead_nodes(model.graph) + foldable_nodes(model.graph)
    if leftovers:
        raise ToMPError(f"The {graph} graph is not fully simplified: nodes {leftovers[:10]} are dead or constant.")
    op_types: dict[str, int] = {}
    for node in model.graph.node:
        op_types[node.op_type] = op_types.get(node.op_type, 0) + 1
    return GraphReport(
        graph, path, path.stat().st_size, len(model.graph.node), op_types,
        {"checker": "pass", "shapes": "pass", "TensorRT 10 ops": "pass", "folded": "pass", "opset": str(opset)},
        fp32_compute_nodes(model) if precision != "fp32" else [], fp16_weight_fraction(model),
    )


def prepare_output_folder(out: Path, force: bool) -> None:
    """An empty folder, or with `force` one that holds an earlier export (only its files are replaced);
    a folder holding anything else is refused, so that no unrelated file is ever deleted."""
    if out.exists() and not out.is_dir():
        raise ToMPError(f"{out} exists and is not a folder.")
    if out.exists() and any(out.iterdir()):
        others = sorted(p.name for p in out.iterdir() if p.name not in EXPORT_FILES + (COMPILE_CACHE_FOLDER,))
        if others:
            shown = ", ".join(others[:5]) + (" ..." if len(others) > 5 else "")
            raise ToMPError(f"{out} holds files that are not an export ({shown}); export into a new or empty folder.")
        if not force:
            raise ToMPError(f"{out} already holds an export; pass --force to replace it.")
        for name in EXPORT_FILES:
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / COMPILE_CACHE_FOLDER, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def export_model(model: ToMPNet, out: Path, opset: int = DEFAULT_OPSET, force: bool = False,
                 tracker: TrackerParams | None = None, precision: str = "fp32", progress=None) -> list[GraphReport]:
    """Writes backbone.onnx, predictor.onnx, head.onnx and model.json into `out`, in `precision` (fp32 or
    fp16, float32 at the boundary either way); the tracker parameters recorded are `tracker`, else the
    checkpoint's own."""
    if precision not in PRECISIONS:
        raise ToMPError(f"--precision {precision!r}: choose {' or '.join(PRECISIONS)}.")
    if not 18 <= opset <= 20:
        raise ToMPError(f"--opset {opset} is outside 18..20 (torch's exporter emits >= 18, TensorRT 10.0 parses <= 20).")
    out = Path(out)
    prepare_output_folder(out, force)
    model = model.cpu().eval()
    io_specs = graph_io(model.config)
    reports = []
    for graph, module in _modules(model, precision).items():
        inputs, outputs = io_specs[graph]
        path = out / f"{graph}.onnx"
        if progress:
            progress(f"exporting {graph}")
        with _without_fold_warnings():
            _export_graph(module, inputs, outputs, path, opset)
            simplify(path)
        if progress:
            progress(f"checking {graph}")
        reports.append(check_graph(path, graph, opset, precision))
    info = getattr(model, "checkpoint_info", None)
    ExportManifest(
        model=model.config,
        tracker=tracker or (info.tracker_params if info else TrackerParams()),
        checkpoint=SourceCheckpoint(info.path, info.format, info.sha256) if info else None,
        opset=opset,
        exporter=f"torch.onnx.export(dynamo=True), torch {torch.__version__}, onnx {onnx.__version__}",
        max_batch=MAX_EXPORT_BATCH,
        graphs={
            report.graph: GraphFile(report.path.name, file_sha256(report.path),
                                    [s.to_dict() for s in io_specs[report.graph][0]],
                                    [s.to_dict() for s in io_specs[report.graph][1]],
                                    report.fp32_nodes, round(report.fp16_weight_fraction, 6))
            for report in reports
        },
        precision=precision,
    ).write(out)
    return reports
