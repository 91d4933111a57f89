"""`tomp-deploy bench` and `tomp-deploy demo`."""

import importlib.util
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.cli import run_cli
from tests.seeded import seeded_model
from tomp_deploy import ToMPError
from tomp_deploy.checks.bench import BenchPlan, bench
from tomp_deploy.evaluation.datasets import open_dataset
from tomp_deploy.evaluation.synth import generate_benchmark
from tomp_deploy.model import save_checkpoint
from tomp_deploy.pipeline.model_forms import ModelForms
from tomp_deploy.runtime.backends import BackendOptions, backend_names

FIELDS = {
    "status",
    "auc",
    "precision",
    "norm_precision",
    "delta_auc",
    "iou_mean",
    "iou_min",
    "fps",
    "fps_steady",
    "frames_timed",
    "stage_ms",
    "threads",
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_checkpoint(seeded_model("tiny", 2, 0.6, True, 0.2), tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory) -> Path:
    """The checkpoint's FP32 export: a bench given it runs torch on the checkpoint its model.json names and
    onnxruntime and openvino on the export, without exporting again."""
    from tomp_deploy.export.onnx_export import export_model
    from tomp_deploy.model import load_model

    folder = tmp_path_factory.mktemp("export") / "tiny"
    export_model(load_model(checkpoint), folder)
    return folder


@pytest.fixture(scope="module")
def sequences(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    generate_benchmark(root, sequences=2, frames=10, seed=3)
    return open_dataset(root, "lasot")


def run_bench(model: Path, backends, sequences, out: Path, **settings) -> dict:
    """`bench` as the CLI calls it: missing model forms are made under OUT/.work."""
    forms = ModelForms.from_path(model, out / ".work")
    return bench(BenchPlan(forms.name, backends, sequences, **settings), forms.for_backend, out)


def test_bench_report_schema_and_reference(exported, sequences, tmp_path):
    report = run_bench(exported, ["torch", "onnxruntime"], sequences, tmp_path, warmup=2)
    assert report["reference"] == "torch" and {"cpu", "gpus", "versions"} <= set(report["machine"])
    assert set(report["backends"]) == {"torch", "onnxruntime"}
    for entry in report["backends"].values():
        assert FIELDS <= set(entry) and entry["status"] == "ok"
        assert set(entry["stage_ms"]) == {"crop", "backbone", "predictor", "head", "decode"}
    reference = report["backends"]["torch"]
    assert reference["delta_auc"] == 0 and reference["iou_mean"] == 1 and reference["iou_min"] == 1
    candidate = report["backends"]["onnxruntime"]
    assert candidate["iou_min"] >= 0.999 and candidate["score_max_rel_error"] <= 1e-4
    assert json.loads((tmp_path / "bench.json").read_text()) == json.loads(json.dumps(report))
    markdown = (tmp_path / "bench.md").read_text()
    threads = report["backends"]["torch"]["threads"]
    assert threads == report["backends"]["onnxruntime"]["threads"] >= 1, "one thread budget for every CPU backend"
    plural = "s" if threads > 1 else ""
    assert f"| torch (fp32, {threads} thread{plural}) | ok |" in markdown  # an FP32 export
    assert f"| onnxruntime (fp32, {threads} thread{plural}) | ok |" in markdown
    assert f"Reference: torch (fp32, {threads} thread{plural})." in markdown
    assert f"onnxruntime {report['machine']['versions']['onnxruntime']}" in markdown
    assert (tmp_path / "bench.png").stat().st_size > 10_000


@pytest.mark.slow  # 14 s: four bench processes; the split of search frames is tested by hand below
def test_a_long_term_bench_adds_a_long_term_row_per_backend(exported, sequences, tmp_path):
    """Each backend runs twice, in a process each: in the default mode and in long-term mode. The long-term
    row counts its whole-frame searches (this barely trained model doubts every frame, so they run) and gives
    their median time; the default rows have none."""
    report = run_bench(exported, ["onnxruntime"], sequences, tmp_path, warmup=2, long_term=True)
    assert list(report["backends"]) == ["torch", "torch long-term", "onnxruntime", "onnxruntime long-term"]
    for name, entry in report["backends"].items():
        assert entry["status"] == "ok" and entry["frames_timed"] == sum(len(s.frames) - 1 for s in sequences) - 2
        if name.endswith("long-term"):
            assert entry["searches"] >= 1 and entry["search_ms"] > 0
        else:
            assert "searches" not in entry
    rows = {line.split(" |")[0].strip("| "): line for line in (tmp_path / "bench.md").read_text().splitlines()}
    searched = report["backends"]["onnxruntime long-term"]
    assert any(name.startswith("onnxruntime long-term") for name in rows)
    assert f"| {searched['searches']} ({searched['search_ms']:.0f}) |" in (tmp_path / "bench.md").read_text()


def test_fps_leaves_out_the_frames_with_a_search_and_steady_fps_keeps_them():
    from tomp_deploy.checks.bench.comparing import speed
    from tomp_deploy.checks.bench.running import BackendRun

    run = BackendRun(frame_seconds=[0.1, 0.1, 1.0, 0.1], search_seconds=[None, None, 0.9, None])
    run.stage_seconds = {stage: [0.01] * 4 for stage in run.stage_seconds}
    figures = speed(run)
    assert figures["fps"] == pytest.approx(10.0) and figures["fps_steady"] == pytest.approx(4 / 1.3)
    assert (figures["searches"], figures["search_ms"]) == (1, pytest.approx(900.0))


class News(list):
    """What a backend's process sends its parent, kept in order when the process function runs in the test."""

    def put(self, message):
        self.append(message)


def test_a_backend_failing_mid_run_is_reported(exported, sequences, monkeypatch):
    from tomp_deploy.checks.bench.running import TrackingJob, _backend_process
    from tomp_deploy.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    calls = {"count": 0}
    original = OnnxRuntimeBackend._run

    def breaks_on_the_fifth_frame(self, graph, feeds):
        calls["count"] += graph == "head"
        if calls["count"] == 5:
            raise RuntimeError("device lost")
        return original(self, graph, feeds)

    monkeypatch.setattr(OnnxRuntimeBackend, "_run", breaks_on_the_fifth_frame)
    news = News()
    _backend_process("onnxruntime", exported, TrackingJob(sequences, BackendOptions(device="cpu"), 1), None, news)
    assert [kind for kind, _ in news] == ["progress"] + ["frame"] * 4 + ["outcome"], "frames 1-4 tracked, not the 5th"
    outcome = news[-1][1]
    assert (outcome.run.status, outcome.run.error) == ("failed", "RuntimeError: device lost")


def test_a_backend_process_that_dies_is_reported_and_its_news_relayed():
    import multiprocessing

    from tests import bench_processes
    from tomp_deploy.checks.bench.running import _in_own_process

    context = multiprocessing.get_context("forkserver")
    said, frames = [], []
    outcome = _in_own_process(context, bench_processes.two_frames_then_exit, (3,), said.append, lambda: frames.append(1))
    assert (said, len(frames)) == (["dying: tracking"], 2)
    assert outcome.run.status == "failed" and outcome.run.error.endswith("(exit code 3)")


def test_each_backend_runs_in_its_own_process_with_the_thread_budget(exported, sequences, tmp_path):
    threads_here = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        report = run_bench(exported, ["torch", "onnxruntime"], sequences, tmp_path, warmup=2, options=BackendOptions(threads=1))
        assert torch.get_num_threads() == 2, "the torch backend set its threads in its own process, not here"
    finally:
        torch.set_num_threads(threads_here)
    assert {name: entry["threads"] for name, entry in report["backends"].items()} == {"torch": 1, "onnxruntime": 1}
    assert "| torch (fp32, 1 thread) | ok |" in (tmp_path / "bench.md").read_text()


def test_bad_bench_input(checkpoint, sequences, tmp_path):
    with pytest.raises(ToMPError, match="Unknown backend"):
        run_bench(checkpoint, ["tensorflow"], sequences, tmp_path)
    with pytest.raises(ToMPError, match="neither a checkpoint file, an export folder"):
        run_bench(tmp_path, ["torch"], sequences, tmp_path / "out")
    with pytest.raises(ToMPError, match="no sequence"):
        run_bench(checkpoint, ["torch"], [], tmp_path)
    result = run_cli("bench", "--model", checkpoint, "--backends", "torch,nope", "--out", tmp_path / "cli")
    assert result.returncode == 2 and "Unknown backend(s) ['nope']" in result.stderr
    assert sorted(backend_names()) == ["onnxruntime", "openvino", "tensorrt", "torch", "torch-cuda"]


def has_engine_library() -> bool:
    return any(importlib.util.find_spec(module) is not None for module in ("tensorrt", "tensorrt_rtx"))


def test_demo_pipeline_on_a_small_setting(checkpoint, tmp_path):
    out = tmp_path / "demo"
    result = run_cli("demo", "--model", checkpoint, "--out", out, "--sequences", "1", "--frames", "12")
    assert result.returncode == 0, result.stderr
    capture = cv2.VideoCapture(str(out / "tracked.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    report = json.loads((out / "bench.json").read_text())
    statuses = {name: entry["status"] for name, entry in report["backends"].items()}
    assert statuses["torch"] == statuses["onnxruntime"] == "ok"
    assert report["model"] == str(checkpoint)
    assert (out / "bench.md").read_text().startswith(f"# tomp-deploy bench: {checkpoint.name}")
    assert (out / "bench.png").is_file()
    stdout = " ".join(result.stdout.split())
    if importlib.util.find_spec("tensorrt_rtx") is not None and not torch.cuda.is_available():
        assert "engines built (TensorRT for RTX" in stdout and "fp16" in stdout
        assert statuses["tensorrt"] == "skipped" and "not run:" in report["backends"]["tensorrt"]["error"]
    elif not has_engine_library():
        assert "engines: not built (No TensorRT library is installed" in stdout and "tensorrt" not in statuses
    split = re.search(r"time: (\d+) s \((.*?)\); CPU ", stdout)
    assert split, stdout[-800:]
    steps = dict(re.findall(r"([\w ]+?) (\d+\.\d) s(?:, |$)", split.group(2)))
    assert {"sequences", "ONNX exports", "tracked video", "bench torch", "bench onnxruntime"} <= set(steps)
    assert abs(sum(map(float, steps.values())) - int(split.group(1))) <= 1
    ran = sum(status == "ok" for status in statuses.values())
    assert f"bench: {ran} of {len(statuses)} backends ran" in stdout


def test_the_demo_video_follows_its_target_with_the_shipped_model(tmp_path, shipped_export):
    """The demo's video sequence (its defaults), tracked as the demo does (ONNX Runtime on the export of the
    shipped model): the box overlaps the ground truth (IoU >= 0.5) on at least 90% of the frames."""
    from tomp_deploy.cli.benchmark import DEMO_FRAMES, DEMO_SEED, write_tracked_video
    from tomp_deploy.evaluation.metrics import overlaps
    from tomp_deploy.evaluation.synth import DEMO_FAMILY
    from tomp_deploy.runtime.backends import open_backend

    generate_benchmark(tmp_path / "sequences", 1, DEMO_FRAMES, seed=DEMO_SEED, family=DEMO_FAMILY)
    sequence = open_dataset(tmp_path / "sequences", "lasot")[0]
    assert "astronaut" in (sequence.frames[0].parent.parent / "nlp.txt").read_text()
    with open_backend("onnxruntime", shipped_export) as backend:
        boxes = write_tracked_video(backend, sequence, tmp_path / "tracked.mp4")
    assert int(cv2.VideoCapture(str(tmp_path / "tracked.mp4")).get(cv2.CAP_PROP_FRAME_COUNT)) == DEMO_FRAMES
    ious = overlaps(boxes, sequence.ground_truth)
    assert np.mean(ious >= 0.5) >= 0.9, np.round(ious, 2)


@pytest.mark.slow  # 21 s of engine builds; the demo test keeps a skipped GPU backend in the default suite
@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU backend can run here")
def test_gpu_backends_are_skipped_with_their_reason(checkpoint, sequences, tmp_path):
    report = run_bench(checkpoint, ["tensorrt", "torch-cuda"], sequences, tmp_path, warmup=1)
    entries = report["backends"]
    assert entries["torch"]["status"] == "ok"
    assert entries["torch-cuda"]["status"] == "skipped" and "needs an NVIDIA GPU" in entries["torch-cuda"]["error"]
    assert entries["tensorrt"]["status"] == "skipped"
    markdown = (tmp_path / "bench.md").read_text()
    if has_engine_library():
        assert entries["tensorrt"]["error"].startswith("engines built (")
        assert "not run:" in entries["tensorrt"]["error"] and "| tensorrt | skipped | engines built (" in markdown
    else:
        assert "No TensorRT library is installed" in entries["tensorrt"]["error"]
        assert not (tmp_path / ".work" / "export-fp16").exists(), "no export is made for a backend that cannot run"


def test_host_facts_name_the_gpus_the_driver_reports(tmp_path, monkeypatch):
    from tomp_deploy.evaluation.host_facts import gpu_names

    monkeypatch.setenv("PATH", str(tmp_path))
    assert gpu_names() == [], "no nvidia-smi: no GPU"
    tool = tmp_path / "nvidia-smi"
    tool.write_text("#!/bin/sh\nprintf 'NVIDIA H100 80GB HBM3, 570.86.15\\nNVIDIA GeForce RTX 4090, 570.86.15\\n'\n")
    tool.chmod(0o755)
    assert gpu_names() == ["NVIDIA H100 80GB HBM3 (driver 570.86.15)", "NVIDIA GeForce RTX 4090 (driver 570.86.15)"]
    tool.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the driver' >&2\nexit 9\n")
    assert gpu_names() == [], "a driver that does not answer: no GPU"


def test_bench_names_the_precision_openvino_chose(exported, sequences, tmp_path):
    pytest.importorskip("openvino", reason="the openvino backend needs the 'openvino' extra: pip install -e '.[openvino]'")
    report = run_bench(exported, ["torch", "openvino"], sequences, tmp_path, warmup=2)
    entry = report["backends"]["openvino"]
    assert entry["status"] == "ok" and entry["compute_precision"] in ("fp32", "bf16")
    assert 0 <= entry["precision"] <= 100  # the accuracy figure, not the compute precision
    assert f"| openvino ({entry['compute_precision']}, {entry['threads']} thread" in (tmp_path / "bench.md").read_text()


def test_bench_precision_goes_to_the_backends_that_take_it(exported, sequences, tmp_path):
    """The torch reference takes no precision and stays FP32; a precision no backend of the run takes is refused."""
    with pytest.raises(ToMPError, match="--precision applies to openvino, torch-cuda, none of which this bench runs"):
        run_bench(exported, ["torch", "onnxruntime"], sequences, tmp_path, options=BackendOptions(precision="bf16"))
    pytest.importorskip("openvino", reason="the openvino backend needs the 'openvino' extra: pip install -e '.[openvino]'")
    generate_benchmark(tmp_path / "data", sequences=1, frames=8, seed=3)
    result = run_cli(
        "bench",
        "--model",
        exported,
        "--backends",
        "torch,openvino",
        "--precision",
        "fp32",
        "--dataset-root",
        tmp_path / "data",
        "--warmup",
        "1",
        "--out",
        tmp_path / "cli",
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "cli" / "bench.json").read_text())["backends"]
    assert (rows["torch"]["compute_precision"], rows["openvino"]["compute_precision"]) == ("fp32", "fp32")


def test_frames_are_timed_end_to_end_with_the_stages_inside(checkpoint, sequences):
    from tomp_deploy.checks.bench.running import track_timed
    from tomp_deploy.runtime.backends import open_backend

    tracked = []
    with open_backend("torch", checkpoint) as backend:
        run = track_timed(backend, sequences, warmup=0, on_frame=lambda: tracked.append(1))
    stages = np.sum([run.stage_seconds[stage] for stage in run.stage_seconds], axis=0)
    assert len(run.frame_seconds) == sum(len(s.frames) - 1 for s in sequences) == len(stages) == len(tracked)
    assert np.all(np.array(run.frame_seconds) >= stages), "a frame's time covers every stage of it"


def test_the_reference_keeps_only_the_calls_it_replays(checkpoint, sequences):
    from tomp_deploy.checks.bench.running import RECORDED_CALLS
    from tomp_deploy.runtime.backends import open_backend
    from tomp_deploy.runtime.backends.recording import RecordingBackend
    from tomp_deploy.runtime.driver import track_boxes
    from tomp_deploy.runtime.sources import FrameSource

    with RecordingBackend(open_backend("torch", checkpoint), keep=RECORDED_CALLS) as recorder:
        for sequence in sequences:
            track_boxes(recorder, (frame.image for frame in FrameSource.of_images(sequence.frames)), sequence.init_box)
        assert {graph: len(calls) for graph, calls in recorder.calls.items()} == dict.fromkeys(recorder.calls, RECORDED_CALLS)
        first = recorder.first_calls(1)
        assert sorted(first["head"][0]) == ["bbreg_feat", "bbreg_filter", "cls_feat", "cls_filter"]


@pytest.mark.slow
def test_bench_memory_stays_flat_over_2000_frames(checkpoint, tmp_path):
    """Two sequences of 1,000 frames of 320x240: decoded up front they would take 460 MB, and copies of
    every contract call's inputs more; streamed, and with the reference's recording bounded, the peak
    of Python/numpy allocations of the reference's whole bench run (what its process does, run here so
    that it is traced) stays under 64 MB."""
    import tracemalloc

    from tomp_deploy.checks.bench.running import TrackingJob, _backend_process

    generate_benchmark(tmp_path / "data", sequences=2, frames=1000, seed=5)
    long_sequences = open_dataset(tmp_path / "data", "lasot")
    news = News()
    tracemalloc.start()
    try:
        _backend_process("torch", checkpoint, TrackingJob(long_sequences, BackendOptions(device="cpu"), 2), None, news)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    outcome = news[-1][1]
    assert outcome.run.status == "ok" and len(outcome.run.frame_seconds) == 2000 - 2 - 2
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.0f} MB"
