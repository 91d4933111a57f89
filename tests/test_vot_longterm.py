"""The VOT toolkit's long-term stack runs `tomp-deploy trax --long-term`: its `unsupervised` experiment with
the `average_tpr`, `pr_curve` and `f_curve` analyses on a VOT-layout long-term dataset written by `synth`
(absent frames as empty ground-truth rows), and its `redetection` experiment (the target moved to a corner
of a 3x larger canvas; through `tests/vot_redetection.py`, which works around the toolkit never giving that
transformer its cache). The toolkit's F-score equals `score`'s on the trajectories and confidences the
toolkit stored. Needs the `vot` extra (CI installs it)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("vot", reason="the VOT toolkit tests need the 'vot' extra: pip install -e '.[vot]'")
pytest.importorskip("trax", reason="the TraX server needs the 'vot' extra: pip install -e '.[vot]'")

from tomp_deploy.evaluation.datasets import open_dataset  # noqa: E402
from tomp_deploy.evaluation.longterm import confidence_path, load_confidences, long_term_curves, long_term_run  # noqa: E402

VOT = Path(sys.executable).with_name("vot")
STACK = """title: tomp-deploy long-term test stack
experiments:
  longterm:
    type: unsupervised
    repetitions: 1
    analyses:
      - type: average_tpr
        name: average_tpr
      - type: pr_curve
      - type: f_curve
  redetection:
    type: unsupervised
    transformers:
      - type: tests.vot_redetection.CachedRedetection
        cache_directory: {cache}
        length: 24
        initialization: 5
        padding: 2
        scaling: 3
"""
REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, shipped_export) -> Path:
    root = tmp_path_factory.mktemp("vot-longterm")
    command = [sys.executable, "-m", "tomp_deploy", "synth", root / "sequences", "--sequences", "2", "--frames", "60"]
    # seed 2: both sequences have frames without the target (15 and 19 of 60)
    written = subprocess.run([*command, "--seed", "2", "--family", "longterm", "--layout", "vot"], capture_output=True, text=True)
    assert written.returncode == 0, written.stderr
    (root / "config.yaml").write_text("stack: ./stack.yaml\nregistry:\n- ./trackers.ini\n")
    (root / "stack.yaml").write_text(STACK.format(cache=root / "cache" / "transformer"))
    (root / "trackers.ini").write_text(
        "[tomp_lt]\nlabel = tomp_lt\nprotocol = trax\n"
        f"command = {sys.executable} -m tomp_deploy trax --model {shipped_export} --backend onnxruntime --long-term\n"
    )
    return root


def run_vot(workspace: Path, *args: str, timeout: float = 600) -> str:
    """The `vot` command, able to import the stack's transformer from this repository's tests."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [VOT, *args, "--workspace", workspace], capture_output=True, text=True, timeout=timeout, cwd=workspace, env=environment
    )
    return done.stdout + done.stderr


@pytest.mark.slow  # 80 s: the toolkit tracks two 60-frame sequences through TraX, then analyses them
def test_the_long_term_stack_scores_us_as_score_does(workspace, tmp_path):
    from vot.region.io import read_trajectory

    output = run_vot(workspace, "evaluate", "tomp_lt")
    assert "Evaluation concluded" in output, output[-3000:]
    sequences = open_dataset(workspace / "sequences", "vot")
    assert all((~s.target_present).any() for s in sequences), "every sequence has frames without the target"
    runs = []
    for sequence in sequences:
        stored = workspace / "results" / "tomp_lt" / "longterm" / sequence.name
        regions = read_trajectory(str(stored / f"{sequence.name}_001.bin"))
        boxes = np.array([[0, 0, 0, 0]] + [[r.x, r.y, r.width, r.height] for r in regions[1:]], dtype=np.float64)
        assert (boxes[1:, 2:] > 0).all(), "a box on every frame, never an empty region"
        confidence = load_confidences(stored / f"{sequence.name}_001_confidence.value")
        assert len(confidence) == len(sequence.frames) and np.isnan(confidence[0]), "the initialisation has none"
        assert ((confidence[1:] >= 0) & (confidence[1:] <= 1)).all()
        runs.append(long_term_run(boxes, confidence, sequence))
        results = tmp_path / f"{sequence.name}.txt"  # `score`'s layout: boxes, confidences beside them
        np.savetxt(results, boxes, delimiter=",", fmt="%.4f")
        shutil.copy(stored / f"{sequence.name}_001_confidence.value", confidence_path(results))
    ours = long_term_curves(runs).summary()

    run_vot(workspace, "analysis", "tomp_lt", "--format", "json", "--name", "longterm")
    report = json.loads((workspace / "analysis" / "longterm.json").read_text())
    precision, recall, f_score = report["results"]["longterm"]["results"][0][0]
    assert f_score == pytest.approx(ours["f_score"], abs=0.01), "the toolkit rasterises rounded boxes: within 0.01"
    assert (precision, recall) == pytest.approx((ours["tracking_precision"], ours["tracking_recall"]), abs=0.02)

    scored = subprocess.run(
        [sys.executable, "-m", "tomp_deploy", "score", "--dataset-root", workspace / "sequences", "--format", "vot"]
        + ["--results", tmp_path, "--json", tmp_path / "score.json"],
        capture_output=True,
        text=True,
    )
    assert scored.returncode == 0, scored.stderr
    measured = json.loads((tmp_path / "score.json").read_text())["long_term"]
    assert measured["f_score"] == pytest.approx(ours["f_score"], abs=1e-6), "score reads the boxes (4 decimals) the toolkit wrote"
    assert measured["reentries"] == ours["reentries"]


@pytest.mark.slow  # 75 s: the toolkit writes and tracks its generated sequences through TraX
def test_the_redetection_experiment_runs_us(workspace):
    """The toolkit makes one sequence per source sequence (named by a hash): the annotated frame on a canvas
    three times its size, then the target moved to the canvas's far corner. Every frame gets a box and a
    confidence (the initialisation none, as the toolkit writes it)."""
    from vot.region.io import read_trajectory

    output = run_vot(workspace, "evaluate", "tomp_lt")
    assert "Evaluation concluded" in output, output[-3000:]
    generated = sorted((workspace / "results" / "tomp_lt" / "redetection").iterdir())
    assert len(generated) == len(open_dataset(workspace / "sequences", "vot"))
    for folder in generated:
        regions = read_trajectory(str(folder / f"{folder.name}_001.bin"))
        confidence = load_confidences(folder / f"{folder.name}_001_confidence.value")
        assert len(regions) == len(confidence) >= 2 and np.isnan(confidence[0])
        assert ((confidence[1:] >= 0) & (confidence[1:] <= 1)).all()
        assert all(region.width > 0 and region.height > 0 for region in regions[1:]), "never an empty region"
