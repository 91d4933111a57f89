"""quantize never loses what it was given or what it replaces (issue 31): it builds beside the destination
and swaps in whole, so a failed or killed run leaves an earlier export loadable and the FP32 source
byte-identical; it refuses an output that is its source before calibrating."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import run_cli
from tomp_deploy.evaluation.synth import generate_benchmark
from tomp_deploy.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from tomp_deploy.runtime.files import staged_folder
from tomp_deploy.runtime.manifests.export import read_export


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def calibration(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("calibration")
    generate_benchmark(root, 1, 6, seed=3, family="cutouts")
    return root


@pytest.fixture
def source_and_previous(shipped_export, tmp_path):
    """A copy of the shipped FP32 export as the source, and another as the export --out already holds."""
    import shutil

    source, previous = tmp_path / "fp32", tmp_path / "int8"
    for folder in (source, previous):
        shutil.copytree(shipped_export, folder, ignore=shutil.ignore_patterns(".*"))
    return source, previous


KILL_AT = {
    "calibration": ("tomp_deploy.export.quantize", "track_boxes", 1),
    "quantised graph written": ("onnx.checker", "check_model", 1),
    "manifest written": ("tomp_deploy.runtime.files", "_swap_in", 1),
}
"""Where the run is killed: the module and function whose Nth call sends SIGKILL to the process."""

KILLED_RUN = """
import importlib, os, signal, sys
module, name, nth = sys.argv[1], sys.argv[2], int(sys.argv[3])
target = importlib.import_module(module)
original, calls = getattr(target, name), []
def kill_at_nth_call(*args, **kwargs):
    calls.append(1)
    if len(calls) == nth:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(*args, **kwargs)
setattr(target, name, kill_at_nth_call)
from tomp_deploy.cli import app
sys.argv = ["tomp-deploy", *sys.argv[4:]]
app()
"""


@pytest.mark.parametrize(
    "stage", [pytest.param(stage, marks=() if stage == "quantised graph written" else pytest.mark.slow) for stage in KILL_AT]
)
def test_a_killed_quantize_leaves_the_previous_export_and_the_source_as_they_were(stage, source_and_previous, calibration):
    source, previous = source_and_previous
    before_source, before_previous = snapshot(source), snapshot(previous)
    module, name, nth = KILL_AT[stage]
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            KILLED_RUN,
            module,
            name,
            str(nth),
            "quantize",
            source,
            "--out",
            previous,
            "--calibration",
            calibration,
            "--frames",
            "4",
            "--force",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert "CUDA_HOME" not in result.stderr  # torch's note on CUDA, which nncf's import printed on a CPU machine
    assert snapshot(source) == before_source
    assert snapshot(previous) == before_previous
    OnnxRuntimeBackend(read_export(previous)).close()


def test_quantize_replaces_the_previous_export_whole_and_records_the_frames_it_used(source_and_previous, calibration):
    source, previous = source_and_previous
    before_source = snapshot(source)
    result = run_cli("quantize", source, "--out", previous, "--calibration", calibration, "--frames", "1000", "--force")
    assert result.returncode == 0, result.stderr
    exported = read_export(previous)
    recorded = exported.manifest.quantization["calibration"]
    assert exported.manifest.precision == "int8"
    assert (recorded["frames"], recorded["frames_asked"]) == (6, 1000)
    assert "calibrated on 6 frames" in " ".join(result.stdout.split())
    assert snapshot(source) == before_source
    assert sorted(p.name for p in previous.parent.iterdir()) == ["fp32", "int8"]  # no staging folder left


@pytest.mark.parametrize("relation", ["the source", "inside the source", "holding the source"])
def test_an_output_that_is_or_holds_the_source_is_refused_before_calibrating(relation, source_and_previous, calibration):
    source, _ = source_and_previous
    out = {"the source": source, "inside the source": source / "int8", "holding the source": source.parent}[relation]
    before = snapshot(source)
    result = run_cli("quantize", source, "--out", out, "--calibration", calibration, "--force")
    assert result.returncode == 2 and "folder of its own" in result.stderr, result.stderr
    assert snapshot(source) == before


def test_a_failing_quantize_keeps_the_previous_export(source_and_previous, tmp_path):
    source, previous = source_and_previous
    before = snapshot(previous)
    empty = tmp_path / "no-sequences"
    empty.mkdir()
    result = run_cli("quantize", source, "--out", previous, "--calibration", empty, "--force")
    assert result.returncode == 2, result.stderr
    assert snapshot(previous) == before


def test_a_folder_killed_between_its_two_renames_is_put_back(tmp_path):
    destination = tmp_path / "out"
    destination.mkdir()
    (destination / "kept.txt").write_text("earlier")
    script = f"""
import os, signal
from pathlib import Path
from tomp_deploy.runtime import files
original = os.rename
def rename(source, target):
    original(source, target)
    if ".replaced-" in str(target):
        os.kill(os.getpid(), signal.SIGKILL)
files.os.rename = rename
with files.staged_folder(Path({str(destination)!r}), "--out") as staging:
    (staging / "new.txt").write_text("new")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert not destination.exists()
    with staged_folder(destination, "--out") as staging:  # the next writer recovers it before staging
        assert (destination / "kept.txt").read_text() == "earlier"
        (staging / "new.txt").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert [p.name for p in destination.iterdir()] == ["new.txt"]


def test_staging_is_removed_when_the_block_fails(tmp_path):
    destination = tmp_path / "out"
    with pytest.raises(RuntimeError), staged_folder(destination, "--out") as staging:
        (staging / "half.txt").write_text("")
        raise RuntimeError("failed half-way")
    assert os.listdir(tmp_path) == []


def test_the_new_folder_has_the_permissions_of_a_folder_made_by_hand(tmp_path):
    by_hand = tmp_path / "by-hand"
    by_hand.mkdir()
    with staged_folder(tmp_path / "out", "--out") as staging:
        (staging / "file.txt").write_text("")
    assert (tmp_path / "out").stat().st_mode == by_hand.stat().st_mode


@pytest.mark.slow
def test_an_output_on_another_filesystem_is_written(source_and_previous, calibration):
    """A temporary folder on another filesystem than --out made the final rename fail after calibration."""
    import shutil
    import tempfile

    source, _ = source_and_previous
    if not Path("/dev/shm").is_dir() or os.stat("/dev/shm").st_dev == os.stat(source).st_dev:
        pytest.skip("needs /dev/shm on another filesystem than the test's temporary folder")
    other = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        result = run_cli("quantize", source, "--out", other / "int8", "--calibration", calibration, "--frames", "4")
        assert result.returncode == 0, result.stderr
        assert read_export(other / "int8").manifest.precision == "int8"
    finally:
        shutil.rmtree(other)
