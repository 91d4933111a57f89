"""`python -m benchmarks.targets`: a short CPU run of it, and its GPU form where no GPU is (skipped with the
reason, after building engines for the largest target batch)."""

import importlib.util
import json

import pytest
import torch

from benchmarks.targets import main


def test_a_short_cpu_run_reports_both_ways_per_target_count(shipped_export, tmp_path):
    report = main(
        [
            "--model",
            str(shipped_export),
            "--backends",
            "onnxruntime",
            "--targets",
            "1",
            "3",
            "--frames",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    rows = report["backends"]["onnxruntime"]["rows"]
    assert [row["targets"] for row in rows] == [1, 3]
    for row in rows:
        for way in ("batched", "per_target"):
            assert row[way]["frame_ms"] > 0
            assert row[way]["targets_per_s"] == pytest.approx(row["targets"] * 1000 / row[way]["frame_ms"])
        assert row["speedup"] == pytest.approx(row["batched"]["targets_per_s"] / row["per_target"]["targets_per_s"])
        assert 0 < row["shared_ms"] < min(row["batched"]["frame_ms"], row["per_target"]["frame_ms"])
    assert report["machine"]["cpu"] and report["device"] == "cpu"
    assert json.loads((tmp_path / "targets_export_cpu.json").read_text()) == report
    table = (tmp_path / "targets_export_cpu.md").read_text()
    assert "| onnxruntime fp32 | 3 |" in table and report["machine"]["cpu"] in table


def test_a_model_that_is_not_there_is_named_without_a_traceback(tmp_path):
    with pytest.raises(SystemExit, match=r"error: --model .*missing\.pt is neither a checkpoint file"):
        main(["--model", str(tmp_path / "missing.pt"), "--out", str(tmp_path)])


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible here")
def test_the_gpu_form_says_why_it_skips_without_a_gpu(shipped_export, tmp_path):
    report = main(
        [
            "--model",
            str(shipped_export),
            "--device",
            "cuda",
            "--backends",
            "torch-cuda",
            "--targets",
            "1",
            "--frames",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    assert "needs an NVIDIA GPU" in report["backends"]["torch-cuda"]["skipped"]
    assert "torch-cuda | skipped: " in (tmp_path / "targets_export_cuda.md").read_text()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("tensorrt_rtx") is None, reason="TensorRT for RTX is not installed")
@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible here")
def test_the_gpu_form_builds_engines_for_the_largest_target_batch(tmp_path):
    report = main(["--device", "cuda", "--backends", "tensorrt", "--targets", "1", "16", "--frames", "1", "--out", str(tmp_path)])
    skipped = report["backends"]["tensorrt"]["skipped"]
    assert "engines built (TensorRT for RTX" in skipped and "batches 1..16" in skipped
