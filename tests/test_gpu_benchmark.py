"""`python -m benchmarks.gpu`: its CPU smoke mode run as the GPU image would run it (the packages that image
lacks hidden), every section present with CPU figures; the budget, the results written as they come, the
plot redrawn elsewhere, and the refusal without a GPU."""

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.gpu.__main__ import main
from benchmarks.gpu.budget import Budget
from benchmarks.gpu.results import Results
from benchmarks.targets import squares_scene, squares_tracks

ROOT = Path(__file__).resolve().parents[1]
NOT_IN_THE_GPU_IMAGE = (
    "matplotlib",
    "onnx",
    "onnxscript",
    "skimage",
    "openvino",
    "nncf",
    "tensorrt_rtx",
    "tensorrt",
    "pycuda",
    "ray",
    "vot",
    "trax",
)
"""Installed here, absent from the GPU machine's stock image (torch, torchvision, onnxruntime, OpenCV, numpy,
typer, rich, cuda-python): hidden from the smoke run, so that an import of one of them fails the test."""


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> tuple[dict, Path, str]:
    out = tmp_path_factory.mktemp("gpu-benchmark")
    hide = "; ".join(f"sys.modules[{name!r}] = None" for name in NOT_IN_THE_GPU_IMAGE)
    code = (
        f"import sys; {hide}; from benchmarks.gpu.__main__ import main; "
        f"main(['--device', 'cpu', '--quick', '--out', {str(out)!r}])"
    )
    finished = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    return json.loads((out / "gpu-cpu.json").read_text()), out, finished.stdout


def measured(rows: list[dict]) -> list[dict]:
    return [row for row in rows if "not_measured" not in row]


def test_the_smoke_run_measures_every_part_with_cpu_figures(smoke_run):
    data, out, printed = smoke_run
    assert data["quick"] and data["device"]["device"] == "cpu" and data["device"]["host"]["cpu"]
    [parity] = measured(data["parity"])
    # The CPU run compares the torch backend with itself: the same arithmetic gives the same numbers.
    assert parity["model"] == "tiny" and parity["precision"] == "fp32"
    assert {row["graph"] for row in parity["outputs"]} == {"backbone", "predictor", "head"}
    assert all(row["max_rel"] == 0 and row["finite"] for row in parity["outputs"])
    assert parity["min_iou"] == 1.0 and parity["frames"] == 6 and parity["auc"] == parity["auc_reference"] > 0
    [speed] = measured(data["speed"])
    assert speed["fps"] > 0 and speed["frames"] == 4 and set(speed["stage_ms"]) >= {"backbone", "predictor", "head"}
    batching = measured(data["batching"])
    assert [row["targets"] for row in batching] == [1, 2, 4] and batching[-1]["streams"] == 2
    for row in batching:
        assert row["speedup"] == pytest.approx(row["one_at_a_time_ms"] / row["batched_ms"])
        assert row["targets_per_s"] == pytest.approx(row["targets"] * 1000 / row["batched_ms"])
    resume, training = measured(data["training"])
    assert training["recipe"] == "tiny" and training["iterations_per_s"] > 0 and np.isfinite(training["loss"])
    assert training["steps"] == 2 and training["samples_per_s"] == pytest.approx(2 * training["iterations_per_s"])
    assert resume["resume"].startswith("ok: continued at epoch 2")
    assert data["wall_s"] > 0


def test_the_smoke_run_says_in_one_line_what_it_skipped(smoke_run):
    data, _, printed = smoke_run
    skipped = [line for line in printed.splitlines() if line.startswith("skipped: ")]
    assert len(skipped) == 1
    assert "fp16, bf16 and CUDA graphs: the torch-cuda backend needs a CUDA GPU" in skipped[0]
    assert "the batching plot: matplotlib is not installed" in skipped[0] and "--plot" in skipped[0]
    assert len(data["skipped"]) == 2


def test_the_markdown_has_every_section_and_the_machine(smoke_run):
    data, out, _ = smoke_run
    text = (out / "gpu-cpu.md").read_text()
    for heading in ("## 1. Parity", "## 2. Speed", "## 3. Batching", "## 4. Training"):
        assert heading in text
    assert data["device"]["host"]["cpu"] in text and f"torch {torch.__version__}" in text
    assert "| tiny | fp32 | off | backbone.feat 0.00e+00 | yes | 6 | 1.0000 |" in text
    assert "| 2 streams x 2 |" in text and "Resume check (tiny): ok" in text
    assert "not measured" not in text and "has no figure in this run" in text  # quick mode: 1, 2 targets


def test_the_plot_is_drawn_where_matplotlib_is(smoke_run):
    _, out, _ = smoke_run
    main(["--plot", str(out / "gpu-cpu.json")])
    png = out / "gpu-cpu-batching.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_budget_that_runs_out_leaves_every_measurement_named_as_not_measured(tmp_path):
    results = main(["--device", "cpu", "--quick", "--budget-s", "0.5", "--out", str(tmp_path)])
    for section in ("parity", "speed", "batching", "training"):
        rows = results.data[section]
        assert rows and all("budget ran out" in row["not_measured"] for row in rows), section
    assert json.loads((tmp_path / "gpu-cpu.json").read_text()) == json.loads(json.dumps(results.data))
    assert "not measured: the training part's share of the budget ran out" in (tmp_path / "gpu-cpu.md").read_text()


def test_unused_time_passes_to_the_parts_after(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    budget = Budget(100, {"a": 0.5, "b": 0.25, "c": 0.25})
    assert budget.part("a").left() == pytest.approx(50)
    clock[0] += 10  # "a" used 10 s of its 50
    assert budget.part("b").left() == pytest.approx(45)  # half of the 90 s left, b and c sharing equally
    slice_of_b = budget.part("c").slice(3)
    assert slice_of_b.left() == pytest.approx(30)


def test_each_measurement_is_on_disk_as_soon_as_it_is_added(tmp_path):
    host = {"cpu": "x", "cpu_count": 2, "python": "3", "versions": {}}
    device = {"device": "cpu", "name": "cpu", "torch": "t", "torch_cuda": None, "cudnn": None, "host": host}
    header = {"date": "2026-12-04", "command": "c", "budget_s": 1.0, "quick": True, "device": device}
    results = Results(tmp_path / "gpu-test", ["parity", "speed", "batching", "training"], header)
    results.adder("training")({"recipe": "tiny", "not_measured": "killed"})
    on_disk = json.loads((tmp_path / "gpu-test.json").read_text())
    assert on_disk["training"] == [{"recipe": "tiny", "not_measured": "killed"}]
    assert "| tiny | not measured: killed |" in (tmp_path / "gpu-test.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu-test.json", "gpu-test.md"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible here")
def test_without_a_gpu_it_points_to_the_smoke_mode(tmp_path):
    with pytest.raises(SystemExit, match=r"sees no CUDA GPU.*--device cpu --quick"):
        main(["--out", str(tmp_path)])


def test_the_squares_scene_boxes_are_where_the_squares_are_drawn():
    images, tracks = squares_tracks(3, 5, seed=4)
    assert squares_scene(3, 5, seed=4)[1] == [track[0].tolist() for track in tracks]
    for track in tracks:
        assert (track[1:, :2] != track[0, :2]).any()
        x0, y0, w, h = track[0].astype(int)
        texture = images[0][y0 : y0 + h, x0 : x0 + w]
        for image, box in zip(images, track.astype(int)):  # the texture the box follows, wherever it moves
            np.testing.assert_array_equal(image[box[1] : box[1] + h, box[0] : box[0] + w], texture)
