"""Exports a ToMP network as the contract's three ONNX graphs plus `model.json`, and checks them."""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import onnxscript.optimizer
import torch
from onnx.reference import ReferenceEvaluator

from export.trt_ops import unsupported_nodes
from tomp_deploy.contract import BATCH, GRAPHS, TensorSpec, graph_io
from tomp_deploy.errors import ToMPError
from tomp_deploy.export_manifest import ExportManifest, GraphFile, SourceCheckpoint
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


def _modules(model: ToMPNet) -> dict[str, torch.nn.Module]:
    return {"backbone": model.backbone, "predictor": model.predictor, "head": model.head}


def _export_graph(module: torch.nn.Module, inputs, outputs, path: Path, opset: int) -> None:
    args = example_inputs(inputs)
    dynamic = any(BATCH in t.shape for t in inputs)
    dynamic_shapes = ({0: torch.export.Dim(BATCH, min=1, max=MAX_EXPORT_BATCH)},) if dynamic else None
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


def check_graph(path: Path, graph: str, opset: int) -> GraphReport:
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
    )


def prepare_output_folder(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ToMPError(f"{out} exists and is not a folder.")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise ToMPError(f"{out} already exists and is not empty; pass --force to overwrite it.")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def export_model(model: ToMPNet, out: Path, opset: int = DEFAULT_OPSET, force: bool = False,
                 tracker: TrackerParams | None = None, progress=None) -> list[GraphReport]:
    """Writes backbone.onnx, predictor.onnx, head.onnx and model.json into `out`; the tracker parameters
recorded are `tracker`, else the checkpoint's own."""
    if not 18 <= opset <= 20:
        raise ToMPError(f"--opset {opset} is outside 18..20 (torch's exporter emits >= 18, TensorRT 10.0 parses <= 20).")
    out = Path(out)
    prepare_output_folder(out, force)
    model = model.cpu().eval()
    io_specs = graph_io(model.config)
    reports = []
    for graph, module in _modules(model).items():
        inputs, outputs = io_specs[graph]
        path = out / f"{graph}.onnx"
        if progress:
            progress(f"exporting {graph}")
        with _without_fold_warnings():
            _export_graph(module, inputs, outputs, path, opset)
            simplify(path)
        if progress:
            progress(f"checking {graph}")
        reports.append(check_graph(path, graph, opset))
    info = getattr(model, "checkpoint_info", None)
    ExportManifest(
        model=model.config,
        tracker=tracker or (info.tracker_params if info else TrackerParams()),
        checkpoint=SourceCheckpoint(info.path, info.format, info.sha256) if info else None,
        opset=opset,
        exporter=f"torch.onnx.export(dynamo=True), torch {torch.__version__}, onnx {onnx.__version__}",
        max_batch=MAX_EXPORT_BATCH,
        graphs={
            graph: GraphFile(f"{graph}.onnx", file_sha256(out / f"{graph}.onnx"),
                             [s.to_dict() for s in io_specs[graph][0]], [s.to_dict() for s in io_specs[graph][1]])
            for graph in GRAPHS
        },
    ).write(out)
    return reports
