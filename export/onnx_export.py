"""Exports a ToMP network as the contract's three ONNX graphs plus `model.json`, and checks them."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import logging
import warnings
from pathlib import Path

import onnx
import torch

from tomp_deploy.export.graph_checks import GraphReport, check_graph, simplify
from tomp_deploy.model import ToMPNet
from tomp_deploy.runtime.contract import GRAPHS, MAX_BATCH, TensorSpec, graph_io
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.files import staged_folder
from tomp_deploy.runtime.manifests.export import (
    COMPILE_CACHE_FOLDER,
    EXPORT_MANIFEST_FILE,
    ExportManifest,
    GraphFile,
    SourceCheckpoint,
)
from tomp_deploy.runtime.manifests.json_files import file_sha256
from tomp_deploy.runtime.presets import TrackerParams

DEFAULT_OPSET = 18
"""The lowest opset torch's dynamo exporter emits natively, inside TensorRT 10.0's parser range (9-20),
and the first with LayerNormalization as one op (TensorRT maps it to its normalisation layer)."""


def example_inputs(spec: tuple[TensorSpec, ...], batch: int = 2) -> tuple[torch.Tensor, ...]:
    """Random inputs at `batch` crops or targets; the exporter traces at 2, since it specialises a
    dimension it sees as 1."""
    generator = torch.Generator().manual_seed(0)
    tensors = []
    for tensor in spec:
        shape = tensor.concrete_shape(batch)
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


EXPORT_DTYPES = {"fp32": torch.float32, "fp16": torch.float16}
"""The export precisions `export_model` writes (`EXPORT_PRECISIONS` but int8, which `quantize` makes), as torch dtypes."""
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
        model = copy.deepcopy(model).to(EXPORT_DTYPES[precision])
    modules = {"backbone": model.backbone, "predictor": model.predictor, "head": model.head}
    if precision == "fp32":
        return modules
    return {graph: Float32Boundary(module, EXPORT_DTYPES[precision]) for graph, module in modules.items()}


def _export_graph(module: torch.nn.Module, inputs, outputs, path: Path, opset: int) -> None:
    """One graph with its leading dimension (crops or targets) dynamic in 1..MAX_BATCH, shared by
    all its inputs."""
    args = example_inputs(inputs)
    leading = torch.export.Dim(str(inputs[0].shape[0]), min=1, max=MAX_BATCH)
    dynamic_shapes = tuple({0: leading} for _ in inputs)
    if isinstance(module, Float32Boundary):
        dynamic_shapes = (dynamic_shapes,)  # its forward takes *inputs: one tuple argument
    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter), torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            # Every input names the shared dimension, and the exporter says it keeps one of the names.
            warnings.filterwarnings("ignore", message="# The axis name")
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
            f"torch.onnx.export failed for {path.stem} at opset {opset}: {str(exc).splitlines()[0]}\n{chatter.getvalue()[-2000:]}"
        ) from None


def check_output_folder(out: Path, force: bool) -> None:
    """Refuses an output folder that holds anything but an earlier export (so that no unrelated file is ever
    deleted), or an earlier export without `force`. Nothing is deleted here: the new export replaces the
    folder whole once it is complete (`staged_folder`)."""
    if out.exists() and not out.is_dir():
        raise ToMPError(f"{out} exists and is not a folder.")
    if out.exists() and any(out.iterdir()):
        others = sorted(p.name for p in out.iterdir() if p.name not in EXPORT_FILES + (COMPILE_CACHE_FOLDER,))
        if others:
            shown = ", ".join(others[:5]) + (" ..." if len(others) > 5 else "")
            raise ToMPError(f"{out} holds files that are not an export ({shown}); export into a new or empty folder.")
        if not force:
            raise ToMPError(f"{out} already holds an export; pass --force to replace it.")


def export_model(
    model: ToMPNet,
    out: Path,
    opset: int = DEFAULT_OPSET,
    force: bool = False,
    tracker: TrackerParams | None = None,
    precision: str = "fp32",
    progress=None,
) -> list[GraphReport]:
    """Writes backbone.onnx, predictor.onnx, head.onnx and model.json into `out`, in `precision` (fp32 or
    fp16, float32 at the boundary either way); the tracker parameters recorded are `tracker`, else the
    checkpoint's own."""
    if precision not in EXPORT_DTYPES:
        raise ToMPError(f"--precision {precision!r}: choose {' or '.join(EXPORT_DTYPES)}.")
    if not 18 <= opset <= 20:
        raise ToMPError(f"--opset {opset} is outside 18..20 (torch's exporter emits >= 18, TensorRT 10.0 parses <= 20).")
    out = Path(out)
    check_output_folder(out, force)
    with staged_folder(out, "--out") as staging:
        reports = _export_into(model, staging, opset, tracker, precision, progress)
    return [dataclasses.replace(report, path=out / report.path.name) for report in reports]


def _export_into(
    model: ToMPNet, out: Path, opset: int, tracker: TrackerParams | None, precision: str, progress
) -> list[GraphReport]:
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
        max_batch=MAX_BATCH,
        graphs={
            report.graph: GraphFile(
                report.path.name,
                file_sha256(report.path),
                [s.to_dict() for s in io_specs[report.graph][0]],
                [s.to_dict() for s in io_specs[report.graph][1]],
                report.fp32_nodes,
                round(report.fp16_weight_fraction, 6),
            )
            for report in reports
        },
        precision=precision,
    ).write(out)
    return reports
