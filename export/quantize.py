"""Post-training INT8 quantisation of an FP32 export into QDQ graphs that OpenVINO, ONNX Runtime and
TensorRT's explicit quantisation all read.

Calibration data are the graph inputs the tracker itself produces: the FP32 export tracks the calibration
sequences and every backbone, predictor and head call is recorded. Only the layers with weights are
quantised (Conv, MatMul and Gemm with a constant operand); attention scores, softmax, LayerNorm and the
key-padding-mask path stay in float. Two quantisers are available: NNCF's (the default: OpenVINO compiles
its graphs and TensorRT parses them) and ONNX Runtime's (OpenVINO 2026.4's low-precision transformations
reject the QDQ pattern it writes around the predictor's concatenated tokens, and TensorRT its int32 bias
DequantizeLinear nodes); `benchmarks.tiny_heldout` scores both.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx

from tomp_deploy.evaluation.datasets import Sequence
from tomp_deploy.export.onnx_export import check_output_folder
from tomp_deploy.runtime.backends.recording import RecordedCalls, RecordingBackend
from tomp_deploy.runtime.contract import GRAPHS
from tomp_deploy.runtime.driver import track_boxes
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.files import ensure_folder, staged_folder
from tomp_deploy.runtime.manifests.export import ExportFolder, read_export
from tomp_deploy.runtime.manifests.json_files import file_sha256
from tomp_deploy.runtime.sources import FrameSource

QUANTIZERS = ("nncf", "onnxruntime")
WEIGHTED_OPS = ("Conv", "MatMul", "Gemm")
CALIBRATION_CALLS = 64
"""Recorded calls per graph the quantiser calibrates on (spread evenly over the calibration frames)."""


def weighted_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the Conv/MatMul/Gemm nodes with a constant (initializer) operand: the layers with weights."""
    constants = {init.name for init in model.graph.initializer}
    constants |= {out for node in model.graph.node if node.op_type == "Constant" for out in node.output}
    return [
        node.name for node in model.graph.node if node.op_type in WEIGHTED_OPS and any(name in constants for name in node.input)
    ]


@dataclasses.dataclass
class Calibration:
    calls: RecordedCalls
    """Graph -> the recorded inputs the quantiser calibrates on."""
    frames: int
    """Frames the tracker actually tracked (fewer than asked for when the sequences are short)."""


def record_calibration_inputs(
    export: ExportFolder, sequences: list[Sequence], frames: int, progress: Callable[[str], None] = lambda text: None
) -> Calibration:
    """The inputs of every graph call while the FP32 export tracks `frames` frames, taken evenly from
    `sequences` (their first frames), thinned to CALIBRATION_CALLS per graph."""
    from tomp_deploy.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    if not sequences:
        raise ToMPError("The calibration dataset holds no sequence.")
    per_sequence = max(2, -(-frames // len(sequences)))
    recorder = RecordingBackend(OnnxRuntimeBackend(export), keep=per_sequence * len(sequences))
    tracked = 0
    with recorder:
        for sequence in sequences:
            progress(f"calibration: tracking {sequence.name}")
            images = [frame.image for frame in FrameSource.of_images(sequence.frames[:per_sequence])]
            track_boxes(recorder, images, sequence.init_box)
            tracked += len(images)
            recorder.calls = {graph: _thin(calls, CALIBRATION_CALLS * 4) for graph, calls in recorder.calls.items()}
    return Calibration({graph: _thin(calls, CALIBRATION_CALLS) for graph, calls in recorder.calls.items()}, tracked)


def _thin(calls: list, count: int) -> list:
    if len(calls) <= count:
        return calls
    return [calls[int(i)] for i in np.linspace(0, len(calls) - 1, count)]


def _quantize_with_onnxruntime(source: Path, target: Path, feeds: list[dict[str, np.ndarray]]) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Feeds(CalibrationDataReader):
        def __init__(self):
            self.remaining = iter(feeds)

        def get_next(self):
            return next(self.remaining, None)

    quantize_static(
        str(source),
        str(target),
        Feeds(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_quantize=weighted_nodes(onnx.load(str(source))),
        extra_options={"CalibMaxIntermediateOutputs": _calibration_chunk(len(feeds))},
    )


def _calibration_chunk(calls: int) -> int:
    """How many calls' activations ONNX Runtime's calibrator holds before folding them into its ranges
    (bounding its memory). It fails with 'No data is collected' when the last chunk ends exactly at the
    last call, so the chunk never divides the number of calls."""
    return next(size for size in (16, 15) if calls % size)


def _quantize_with_nncf(source: Path, target: Path, feeds: list[dict[str, np.ndarray]]) -> None:
    # nncf imports torch's C++ extension helpers, which log where CUDA_HOME is even on a CPU-only machine.
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    try:
        import nncf
    except ImportError:
        raise ToMPError("--quantizer nncf needs the 'nncf' package: pip install -e '.[openvino]'.") from None
    nncf.set_log_level(logging.ERROR)
    model = onnx.load(str(source))
    weighted = set(weighted_nodes(model))
    others = [node.name for node in model.graph.node if node.name not in weighted]
    quantized = nncf.quantize(
        model, nncf.Dataset(feeds), subset_size=len(feeds), ignored_scope=nncf.IgnoredScope(names=others, validate=False)
    )
    onnx.save(quantized, str(target))


def read_fp32_export(folder: Path) -> ExportFolder:
    """The export to quantise, which must be an FP32 one."""
    export = read_export(folder)
    if export.manifest.precision != "fp32":
        raise ToMPError(
            f"{folder} is a {export.manifest.precision} export; quantise the FP32 export "
            "(tomp-deploy export CHECKPOINT --out DIR)."
        )
    return export


def check_destination(export_folder: Path, out: Path, force: bool) -> None:
    """Refuses, before any calibration, an output that is the FP32 source, lies inside it or holds it, or
    that cannot be written or replaced."""
    source, target = Path(export_folder).resolve(), Path(out).resolve()
    relation = (
        "is"
        if target == source
        else "lies inside"
        if target.is_relative_to(source)
        else "holds"
        if source.is_relative_to(target)
        else None
    )
    if relation:
        raise ToMPError(
            f"--out {out} {relation} the FP32 export {export_folder}; give the INT8 export a folder of "
            "its own (the FP32 export is never changed)."
        )
    check_output_folder(target, force)
    ensure_folder(target.parent, "--out")


@dataclasses.dataclass(frozen=True)
class CalibrationData:
    """What an INT8 export is calibrated on: the tracker's own calls over the first `frames` frames of
    `sequences`, recorded in model.json under `name` (e.g. the dataset's folder)."""

    sequences: list[Sequence]
    frames: int = 100
    name: str = ""


def quantize_export(
    export_folder: Path,
    out: Path,
    data: CalibrationData,
    quantizer: str = "nncf",
    force: bool = False,
    progress: Callable[[str], None] = lambda text: None,
) -> ExportFolder:
    """Writes the INT8 (QDQ) export of the FP32 export in `export_folder` into `out`, calibrated on `data`;
    its model.json records precision int8 and how it was quantised. The export is written into a folder
    beside `out` and replaces `out` whole when it is complete: a failed or killed run leaves an earlier
    export in `out` as it was."""
    if quantizer not in QUANTIZERS:
        raise ToMPError(f"--quantizer {quantizer!r}: choose {' or '.join(QUANTIZERS)}.")
    export = read_fp32_export(export_folder)
    out = Path(out)
    check_destination(export_folder, out, force)
    with staged_folder(out, "--out") as staging:
        calibration = record_calibration_inputs(export, data.sequences, data.frames, progress)
        quantize = _quantize_with_onnxruntime if quantizer == "onnxruntime" else _quantize_with_nncf
        graphs = {}
        for graph in GRAPHS:
            progress(f"quantising {graph} ({quantizer})")
            entry = export.manifest.graphs[graph]
            target = staging / entry.file
            quantize(export.graph_path(graph), target, calibration.calls[graph])
            onnx.checker.check_model(str(target))
            graphs[graph] = dataclasses.replace(entry, sha256=file_sha256(target))
        calls_per_graph = {graph: len(calls) for graph, calls in calibration.calls.items()}
        manifest = dataclasses.replace(
            export.manifest,
            graphs=graphs,
            precision="int8",
            quantization={
                "quantizer": _quantizer_version(quantizer),
                "format": "QDQ",
                "quantized_ops": [f"{op} with weights" for op in WEIGHTED_OPS],
                "weights": "int8, per channel",
                "activations": "uint8",
                "calibration": {
                    "dataset": data.name,
                    "sequences": len(data.sequences),
                    "frames": calibration.frames,
                    "frames_asked": data.frames,
                    "calls_per_graph": calls_per_graph,
                },
                "source_export": export.graph_hashes(),
            },
        )
        manifest.write(staging)
    return read_export(out)


def _quantizer_version(quantizer: str) -> str:
    from importlib import metadata

    package = "onnxruntime" if quantizer == "onnxruntime" else "nncf"
    return f"{quantizer} {metadata.version(package)}"
