"""The OpenVINO backend against the PyTorch reference (FP32), its precision choice and compile cache, INT8
exports made by `quantize`, and BF16/INT8 accuracy on the held-out family where the CPU runs them."""

import os
import stat
import subprocess
import sys

import pytest

from tests.cli import run_cli
from tests.contract_checks import assert_contract_parity
from tests.sequences import moving_target_sequence
from tomp_deploy import ToMPError
from tomp_deploy.checks.parity import compare_sequences
from tomp_deploy.model.torch_backend import TorchBackend
from tomp_deploy.runtime.driver import track_boxes
from tomp_deploy.runtime.manifests.export import COMPILE_CACHE_FOLDER

ov = pytest.importorskip("openvino", reason="the openvino backend needs the 'openvino' extra: pip install -e '.[openvino]'")

from tomp_deploy.runtime.backends.openvino_backend import (  # noqa: E402 (after the skip: it imports openvino)
    OpenVinoBackend,
    choose_precision,
    cpu_capabilities,
)


@pytest.mark.parametrize("memory_frames", [1, 2])
def test_fp32_graphs_match_pytorch(tiny_export, memory_frames):
    network, folder = tiny_export
    backend = OpenVinoBackend(folder, precision="fp32")
    assert backend.precision == "fp32"
    assert_contract_parity(TorchBackend(network), backend, memory_frames)


def test_fp32_tracks_like_torch(tiny_export):
    network, folder = tiny_export
    frames, boxes = moving_target_sequence(0, 30)
    reference = track_boxes(TorchBackend(network), frames, boxes[0])
    candidate = track_boxes(OpenVinoBackend(folder, precision="fp32"), frames, boxes[0])
    assert compare_sequences(reference, candidate).ious.min() >= 0.99


@pytest.mark.parametrize(
    "requested,export,capabilities,chosen",
    [
        ("auto", "fp32", ["FP32", "BF16", "INT8"], "bf16"),
        ("auto", "fp32", ["FP32", "INT8"], "fp32"),
        ("auto", "fp16", ["FP32", "BF16", "INT8"], "fp32"),
        ("auto", "int8", ["FP32", "INT8"], "int8"),
        ("fp32", "fp32", ["FP32", "BF16"], "fp32"),
        ("bf16", "fp32", ["FP32", "BF16"], "bf16"),
    ],
)
def test_precision_choice(requested, export, capabilities, chosen):
    assert choose_precision(requested, export, capabilities) == chosen


@pytest.mark.parametrize(
    "requested,export,capabilities,message",
    [
        ("bf16", "fp32", ["FP32", "INT8"], "no BF16 units"),
        ("int8", "fp32", ["FP32", "INT8"], "tomp-deploy quantize"),
        ("fp32", "int8", ["FP32", "INT8"], "quantised to INT8"),
        ("fp8", "fp32", ["FP32"], "runs auto, fp32, bf16, int8"),
    ],
)
def test_precision_that_cannot_run_says_why(requested, export, capabilities, message):
    with pytest.raises(ToMPError, match=message):
        choose_precision(requested, export, capabilities)


def test_compiled_models_are_cached_beside_the_export(tiny_export, tmp_path):
    import shutil

    _, folder = tiny_export
    copy = tmp_path / "export"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns(COMPILE_CACHE_FOLDER))
    OpenVinoBackend(copy, precision="fp32").close()
    assert len(list((copy / COMPILE_CACHE_FOLDER / "fp32").iterdir())) >= 3


def test_each_precision_compiles_its_own_cached_models(shipped_export, tmp_path):
    """OpenVINO's cache key leaves out the precision hint: one shared cache made a BF16 start import the FP32
    compile of the shipped predictor (NaN on an AMX Xeon), and an FP32 start the BF16 one."""
    import shutil

    import numpy as np

    from tomp_deploy.checks.fp16_report import contract_inputs
    from tomp_deploy.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    if "BF16" not in cpu_capabilities(ov.Core()):
        pytest.skip("this CPU has no BF16 units OpenVINO can use")
    copy = tmp_path / "export"
    shutil.copytree(shipped_export, copy, ignore=shutil.ignore_patterns(COMPILE_CACHE_FOLDER))
    onnxruntime = OnnxRuntimeBackend(copy)
    inputs = contract_inputs(onnxruntime)["predictor"][0]
    reference = onnxruntime.run("predictor", inputs)
    for precision in ("fp32", "bf16", "fp32", "bf16"):  # the second start of each imports what the first cached
        outputs = OpenVinoBackend(copy, precision=precision).run("predictor", inputs)
        for name, expected in reference.items():
            assert np.isfinite(outputs[name]).all(), (precision, name)
            difference = np.abs(outputs[name] - expected).max() / np.abs(expected).max()
            assert difference < 1e-5 if precision == "fp32" else 1e-4 < difference < 0.1, (precision, name, difference)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders, so the fallback cannot be shown")
def test_a_read_only_export_is_cached_in_the_user_cache(tiny_export, tmp_path, monkeypatch):
    import shutil

    _, folder = tiny_export
    read_only = tmp_path / "read-only"
    shutil.copytree(folder, read_only, ignore=shutil.ignore_patterns(COMPILE_CACHE_FOLDER))
    read_only.chmod(stat.S_IRUSR | stat.S_IXUSR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    try:
        backend = OpenVinoBackend(read_only, precision="fp32")
    finally:
        read_only.chmod(stat.S_IRWXU)
    assert backend.cache.is_relative_to(tmp_path / "user-cache") and any(backend.cache.iterdir())


def test_cli_says_which_precision_auto_chose(tiny_export, tmp_path):
    _, folder = tiny_export
    frames, boxes = moving_target_sequence(0, 4)
    import cv2

    for index, frame in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"{index:04d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    box = ",".join(str(v) for v in boxes[0])
    result = run_cli("track", tmp_path, "--model", folder, "--backend", "openvino", "--init-box", box)
    assert result.returncode == 0, result.stderr
    expected = "bf16" if "BF16" in cpu_capabilities(ov.Core()) else "fp32"
    assert f"openvino computes in {expected}" in result.stdout


def test_without_openvino_one_line_says_what_to_install(tiny_export):
    _, folder = tiny_export
    script = f"""
import sys
sys.modules['openvino'] = None
from tomp_deploy.runtime.backends import open_backend
open_backend('openvino', {str(folder)!r})
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert "needs the Python package 'openvino'" in result.stderr and "pip install -e '.[openvino]'" in result.stderr


@pytest.fixture(scope="session")
def int8_export(shipped_exports, tmp_path_factory):
    """The shipped model's FP32 export quantised by the CLI (NNCF, 100 frames), calibrated on a training
    family as benchmarks.tiny_heldout does (with 30 frames its held-out AUC fell 2.6 points on these
    sequences; with 100, within 1)."""
    from tomp_deploy.evaluation.synth import generate_benchmark

    folder = tmp_path_factory.mktemp("int8")
    generate_benchmark(folder / "calibration", 4, 30, seed=3, family="cutouts")
    result = run_cli("quantize", shipped_exports[0], "--out", folder / "export", "--calibration", folder / "calibration")
    assert result.returncode == 0, result.stderr
    assert "wrote the INT8 export" in result.stdout
    return folder / "export"


def test_int8_export_quantises_the_weighted_layers_only(int8_export):
    import onnx

    from tomp_deploy.runtime.manifests.export import read_export

    exported = read_export(int8_export)
    assert exported.manifest.precision == "int8"
    assert exported.manifest.quantization["quantizer"].startswith("nncf ")
    assert exported.manifest.quantization["calibration"]["calls_per_graph"]["backbone"] > 10
    for graph in ("backbone", "predictor", "head"):
        model = onnx.load(str(exported.graph_path(graph)))
        producers = {out: node for node in model.graph.node for out in node.output}
        consumers = {}
        for node in model.graph.node:
            for name in node.input:
                consumers.setdefault(name, []).append(node)
        assert any(node.op_type == "QuantizeLinear" for node in model.graph.node), graph
        for node in model.graph.node:
            if node.op_type in ("Softmax", "LayerNormalization", "ReduceMean"):
                assert all(producers.get(name) is None or producers[name].op_type != "DequantizeLinear" for name in node.input), (
                    f"{graph}: {node.op_type} {node.name} takes quantised input"
                )
        if graph == "predictor":
            assert {node.op_type for node in consumers["key_padding_mask"]}.isdisjoint({"QuantizeLinear", "DequantizeLinear"})


def test_int8_export_runs_in_openvino_and_onnxruntime_and_refuses_other_precisions(int8_export, shipped_exports):
    from tomp_deploy.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    frames, boxes = moving_target_sequence(0, 5)
    backend = OpenVinoBackend(int8_export)
    assert backend.precision == "int8"
    assert len(track_boxes(backend, frames, boxes[0])) == 5
    assert len(track_boxes(OnnxRuntimeBackend(int8_export), frames, boxes[0])) == 5
    with pytest.raises(ToMPError, match="quantised to INT8"):
        OpenVinoBackend(int8_export, precision="bf16")
    with pytest.raises(ToMPError, match="tomp-deploy quantize"):
        OpenVinoBackend(shipped_exports[0], precision="int8")
    result = run_cli("quantize", shipped_exports[1], "--out", int8_export.parent / "again", "--calibration", int8_export)
    assert result.returncode == 2 and "fp16 export" in result.stderr, result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_low_precision_scores_like_fp32_on_the_held_out_family(precision, shipped_exports, int8_export, tmp_path):
    """Within 1 point of success AUC of the FP32 OpenVINO run, on sequences of a family no training or
    calibration saw (the recorded figures on 10 sequences: benchmarks/results/tiny_heldout.md)."""
    from benchmarks.tiny_heldout import score_trackers
    from tomp_deploy.evaluation.datasets import open_dataset
    from tomp_deploy.evaluation.sequence_jobs import TrackerSetup
    from tomp_deploy.evaluation.synth import HELD_OUT_FAMILY, generate_benchmark
    from tomp_deploy.runtime.backends import BackendOptions

    if precision == "bf16" and "BF16" not in cpu_capabilities(ov.Core()):
        pytest.skip("this CPU has no BF16 units OpenVINO can use")
    generate_benchmark(tmp_path / "data", sequences=3, frames=60, seed=11, family=HELD_OUT_FAMILY)
    model = int8_export if precision == "int8" else shipped_exports[0]
    trackers = {
        "fp32": TrackerSetup("openvino", str(shipped_exports[0]), BackendOptions(precision="fp32")),
        precision: TrackerSetup("openvino", str(model), BackendOptions(precision=precision)),
    }
    scores = score_trackers(open_dataset(tmp_path / "data", "lasot"), trackers, tmp_path / "results")
    assert abs(scores[precision]["overall"]["auc"] - scores["fp32"]["overall"]["auc"]) <= 1.0
    assert scores["fp32"]["overall"]["auc"] > scores["static box"]["overall"]["auc"] + 10


def test_int8_export_parses_as_a_strongly_typed_tensorrt_network(int8_export):
    """TensorRT's explicit quantisation reads the same QDQ graphs (TensorRT for RTX's parser, no GPU needed).
    ONNX Runtime's quantiser writes int32 bias DequantizeLinear nodes that this parser refuses."""
    trt = pytest.importorskip("tensorrt_rtx", reason="needs TensorRT for RTX: pip install -e '.[tensorrt-rtx]'")
    for graph in ("backbone", "predictor", "head"):
        logger = trt.Logger(trt.Logger.ERROR)
        builder = trt.Builder(logger)
        network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        parser = trt.OnnxParser(network, logger)
        assert parser.parse_from_file(str(int8_export / f"{graph}.onnx")), [
            str(parser.get_error(i)) for i in range(parser.num_errors)
        ]
