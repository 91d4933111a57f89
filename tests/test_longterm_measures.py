"""The long-term measures against values computed by hand on small cases, and the files they are read from."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tests.cli import run_cli
from tomp_deploy.evaluation.datasets import Sequence, open_dataset
from tomp_deploy.evaluation.longterm import (
    LongTermRun,
    confidence_thresholds,
    load_confidences,
    long_term_curves,
    long_term_run,
    reacquisitions,
)
from tomp_deploy.evaluation.metrics import overlaps
from tomp_deploy.evaluation.runner import evaluate
from tomp_deploy.evaluation.scoring import score_results
from tomp_deploy.evaluation.sequence_jobs import TrackerSetup
from tomp_deploy.evaluation.synth import generate_benchmark
from tomp_deploy.runtime.errors import ToMPError


def four_frames() -> LongTermRun:
    """Frame 2 has no target; the tracker claims it with confidence 0.7."""
    return LongTermRun(
        overlap=np.array([0.8, 0.6, 0.0, 0.5]),
        confidence=np.array([0.9, 0.4, 0.7, 0.2]),
        visible=np.array([True, True, False, True]),
    )


def test_precision_recall_and_f_score_by_hand():
    curves = long_term_curves([four_frames()])
    np.testing.assert_array_equal(curves.thresholds, [math.inf, 0.9, 0.7, 0.4, 0.2, -math.inf])
    # claimed frames: none; {0}; {0, 2}; {0, 1, 2}; all; all. Three frames show the target.
    np.testing.assert_allclose(curves.precision, [1.0, 0.8, 0.4, 1.4 / 3, 1.9 / 4, 1.9 / 4])
    np.testing.assert_allclose(curves.recall, [0.0, 0.8 / 3, 0.8 / 3, 1.4 / 3, 1.9 / 3, 1.9 / 3])
    f_at_02 = 2 * (1.9 / 4) * (1.9 / 3) / (1.9 / 4 + 1.9 / 3)
    assert curves.summary() == pytest.approx(
        {
            "f_score": f_at_02,
            "tracking_precision": 1.9 / 4,
            "tracking_recall": 1.9 / 3,
            "confidence_threshold": 0.2,
            "reentries": 1,
            "reacquired_within_30_frames": 0,
        }
    )
    assert f_at_02 == pytest.approx(0.542857, abs=1e-6)


def test_reacquisition_counts_returns_overlapped_within_the_window():
    visible = np.array([True, False, False, True, True, True, False, True, True])
    overlap = np.array([0.0, 0.0, 0.0, 0.2, 0.3, 0.7, 0.0, 0.4, 0.4])
    run = LongTermRun(overlap, np.ones(9), visible)
    assert reacquisitions(run) == (2, 1), "the first return is overlapped two frames later, the second never"
    assert reacquisitions(run, within=2) == (2, 0)


def test_sequences_are_averaged_at_shared_thresholds():
    second = LongTermRun(np.array([0.0, 1.0]), np.array([0.5, 0.9]), np.array([True, True]))
    curves = long_term_curves([four_frames(), second])
    np.testing.assert_array_equal(curves.thresholds, [math.inf, 0.9, 0.9, 0.7, 0.5, 0.4, 0.2, -math.inf])
    # at 0.5 the first sequence claims {0, 2} (P 0.4, R 0.8/3), the second both frames (P 0.5, R 0.5)
    assert curves.precision[4] == pytest.approx((0.4 + 0.5) / 2)
    assert curves.recall[4] == pytest.approx((0.8 / 3 + 0.5) / 2)


def test_thresholds_are_drawn_at_equal_steps_and_nan_is_never_claimed():
    confidences = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, np.nan])
    # ten values, resolution 5: step floor(10 / 3) = 3, indices round(linspace(3, 7, 3)) = 3, 5, 7 of the sorted list
    np.testing.assert_allclose(confidence_thresholds(confidences, resolution=5), [math.inf, 0.7, 0.5, 0.3, -math.inf])
    run = LongTermRun(np.array([0.9, 0.9]), np.array([np.nan, 0.5]), np.array([True, True]))
    curves = long_term_curves([run])
    assert curves.recall[-1] == pytest.approx(0.45), "the frame without a confidence is not claimed even at -inf"


def test_a_tracker_that_never_reports_absence_loses_precision_on_absent_frames():
    always_sure = LongTermRun(np.array([0.0, 0.7, 0.0, 0.0]), np.ones(4), np.array([True, True, False, False]))
    knows = LongTermRun(always_sure.overlap, np.array([1.0, 1.0, 0.1, 0.1]), always_sure.visible)
    assert long_term_curves([knows]).summary()["f_score"] > long_term_curves([always_sure]).summary()["f_score"]


def test_a_run_from_results_marks_absent_frames_and_the_initialisation():
    frames = [Path(f"{i:08d}.jpg") for i in range(4)]
    ground_truth = np.array([[10, 10, 20, 20], [12, 10, 20, 20], [np.nan] * 4, [0, 0, 0, 0]], dtype=np.float64)
    sequence = Sequence("lt", frames, ground_truth, dataset="vot")
    pred = np.array([[10, 10, 20, 20], [12, 10, 20, 20], [50, 50, 9, 9], [3, 3, 5, 5]], dtype=np.float64)
    run = long_term_run(pred, [1.0, 0.8, 0.6, 0.1], sequence)
    np.testing.assert_array_equal(run.visible, [True, True, False, False])
    np.testing.assert_array_equal(run.overlap, [0.0, 1.0, 0.0, 0.0])
    np.testing.assert_array_equal(run.confidence, [0.0, 0.8, 0.6, 0.1])

    flagged = Sequence("lt", frames, np.full((4, 4), 10.0), target_visible=np.array([True, False, True, True]))
    np.testing.assert_array_equal(long_term_run(pred, np.ones(4), flagged).visible, [True, False, True, True])
    with pytest.raises(ToMPError, match="3 boxes and 4 confidences for the 4 frames of lt"):
        long_term_run(pred[:3], np.ones(4), sequence)
    with pytest.raises(ToMPError, match="absent from every frame"):
        LongTermRun(np.zeros(2), np.zeros(2), np.zeros(2, bool))


def test_eval_writes_confidences_and_score_adds_the_long_term_measures(tmp_path, shipped_export):
    generate_benchmark(tmp_path / "data", sequences=2, frames=16, seed=3)
    folder = tmp_path / "data" / "synthetic" / "synthetic-1"
    hidden = [int(6 <= k < 10) for k in range(16)]
    (folder / "full_occlusion.txt").write_text(",".join(map(str, hidden)) + "\n")
    sequences = open_dataset(tmp_path / "data", "lasot")
    results = tmp_path / "results"
    evaluate(sequences, TrackerSetup("onnxruntime", str(shipped_export)), results)
    for sequence in sequences:
        confidences = np.loadtxt(results / f"{sequence.name}_confidence.value")
        assert len(confidences) == 16 and confidences[0] == 1.0 and ((confidences >= 0) & (confidences <= 1)).all()

    report = run_cli("score", "--dataset-root", tmp_path / "data", "--results", results, "--json", tmp_path / "s.json")
    assert report.returncode == 0, report.stderr
    assert "long-term" in report.stdout and "F-score" in report.stdout
    long_term = json.loads((tmp_path / "s.json").read_text())["long_term"]

    # Claiming every frame: precision is the mean overlap over the tracked frames (the first is the
    # initialisation: overlap 0, confidence 0), recall the overlap summed over the 15 + 11 frames showing the target.
    for sequence in sequences:
        (results / f"{sequence.name}_confidence.value").write_text("1\n" * 16)
    sums, recalls, precisions = [], [], []
    for sequence in sequences:
        boxes = np.loadtxt(results / f"{sequence.name}.txt", delimiter=",")
        overlap = overlaps(boxes, sequence.ground_truth)
        overlap[~sequence.target_present] = 0.0
        sums.append(overlap[1:].sum())
        precisions.append(overlap[1:].sum() / 15)
        recalls.append(overlap[1:].sum() / sequence.target_present.sum())
    claimed_all = score_results(sequences, results).long_term
    assert claimed_all.precision[1] == pytest.approx(np.mean(precisions))
    assert claimed_all.recall[1] == pytest.approx(np.mean(recalls))
    assert 0 < long_term["f_score"] <= 1 and 0 <= long_term["tracking_recall"] <= 1

    (results / "synthetic-2_confidence.value").unlink()
    assert score_results(sequences, results).long_term is None
    skipped = run_cli("score", "--dataset-root", tmp_path / "data", "--results", results)
    assert "no long-term measures: 1 sequences have no results or no confidences" in " ".join(skipped.stdout.split())


def test_vot_region_files_mark_absent_frames(tmp_path):
    folder = tmp_path / "lt"
    (folder / "color").mkdir(parents=True)
    for k in range(4):
        (folder / "color" / f"{k + 1:08d}.jpg").write_bytes(b"")
    (folder / "groundtruth.txt").write_text("10,10,20,20\nnan,nan,nan,nan\n0\n1,1,3,1,3,3,1,3\n")
    (sequence,) = open_dataset(tmp_path, "vot")
    np.testing.assert_array_equal(sequence.target_present, [True, False, False, True])
    np.testing.assert_allclose(sequence.ground_truth[3], [0.5, 0.5, 3, 3])  # centre 2,2; inclusive width 3
    (folder / "groundtruth.txt").write_text("10,10,20,20\n1,2,3\n")
    with pytest.raises(ToMPError, match="line 2: a VOT region is a rectangle"):
        open_dataset(tmp_path, "vot")


def test_confidence_files_keep_the_toolkits_empty_initialisation_line(tmp_path):
    """The VOT toolkit writes no confidence for the initialisation frame (an empty first line); every line
    is a frame, an empty one NaN, and a line that is not a number names the file and line."""
    written = tmp_path / "seq_001_confidence.value"
    written.write_text("\n0.25\n1\n")
    np.testing.assert_array_equal(load_confidences(written), [np.nan, 0.25, 1.0])
    written.write_text("1.0\n0.5")
    np.testing.assert_array_equal(load_confidences(written), [1.0, 0.5])
    written.write_text("1.0\nhigh\n")
    with pytest.raises(ToMPError, match="line 2: 'high' is not a confidence"):
        load_confidences(written)
