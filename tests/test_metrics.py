"""OPE metrics against values worked out by hand."""

from pathlib import Path

import numpy as np
import pytest

from tomp_deploy import ToMPError
from tomp_deploy.evaluation.datasets import Sequence
from tomp_deploy.evaluation.metrics import OVERLAP_THRESHOLDS, overlaps, sequence_curves


def sequence(boxes, visible=None, dataset="lasot") -> Sequence:
    boxes = np.array(boxes, dtype=np.float64)
    return Sequence("s", [Path(f"{i}.jpg") for i in range(len(boxes))], boxes, visible, [], dataset)


GT = [[10, 10, 20, 20]] * 5


def test_perfect_tracker_scores_100():
    summary = sequence_curves(np.array(GT), sequence(GT)).summary()
    assert summary == {"auc": pytest.approx(100 * 20 / 21), "precision": 100.0, "norm_precision": 100.0}
    # Overlap 1 exceeds every threshold but 1 itself (strict '>'), hence 20/21 as in the reference.


def test_disjoint_boxes_score_only_the_first_frame():
    prediction = np.array([[200, 200, 20, 20]] * 5)
    curves = sequence_curves(prediction, sequence(GT))
    # The first frame is replaced by the annotation: 1 of 5 frames is perfect.
    np.testing.assert_allclose(curves.success[:-1], 0.2)
    assert curves.summary()["precision"] == pytest.approx(20.0)


def test_half_overlap():
    # Inclusive pixel boxes: [10..29] vs [20..39] horizontally -> 10 of 30 columns -> IoU 200/600 = 1/3.
    assert overlaps(np.array([[20.0, 10, 20, 20]]), np.array([[10.0, 10, 20, 20]]))[0] == pytest.approx(1 / 3)
    prediction = np.array([GT[0]] + [[20, 10, 20, 20]] * 4)
    curves = sequence_curves(prediction, sequence(GT))
    expected = (1 + 4 * (1 / 3 > OVERLAP_THRESHOLDS)) / 5
    expected[-1] = 0.0
    np.testing.assert_allclose(curves.success, expected)


def test_invalid_frames_count_as_failures_but_stay_in_the_denominator():
    gt = [[10, 10, 20, 20], [10, 10, 20, 20], [0, 10, 20, 20], [10, 10, 20, 20]]  # x = 0 is invalid
    visible = np.array([True, True, True, False])
    curves = sequence_curves(np.array(gt), sequence(gt, visible))
    assert curves.success[0] == pytest.approx(0.5)  # frames 0 and 1 of 4
    assert curves.summary()["precision"] == pytest.approx(50.0)
    assert curves.mean_overlap == pytest.approx(1.0)  # the mean overlap covers valid frames only


def test_precision_thresholds_at_their_edges():
    for shift, counted in [(20.0, True), (20.01, False)]:
        prediction = np.array([GT[0]] + [[10 + shift, 10, 20, 20]] * 4)
        precision = sequence_curves(prediction, sequence(GT)).summary()["precision"]
        assert precision == pytest.approx(100.0 if counted else 20.0)
    # Normalised: a 3.9 px shift of a 20 px box is 0.195 of its size: counted at 0.2, not at 0.19.
    prediction = np.array([GT[0]] + [[13.9, 10, 20, 20]] * 4)
    curves = sequence_curves(prediction, sequence(GT))
    assert curves.norm_precision[20] == pytest.approx(1.0) and curves.norm_precision[19] == pytest.approx(0.2)


def test_zero_sized_prediction_repeats_the_previous_box():
    prediction = np.array([GT[0], [10, 10, 20, 20], [50, 50, 0, 0], [10, 10, 20, 20], [10, 10, 20, 20]])
    assert sequence_curves(prediction, sequence(GT)).success[0] == pytest.approx(1.0)


def test_wrong_length_and_bad_boxes_are_errors():
    with pytest.raises(ToMPError, match="4 boxes for the 5 frames"):
        sequence_curves(np.array(GT[:4]), sequence(GT), "run/s.txt")
    with pytest.raises(ToMPError, match="run/s.txt line 3"):
        sequence_curves(np.array([GT[0], GT[0], [1, 1, -3, 4], GT[0], GT[0]]), sequence(GT), "run/s.txt")


def test_uav_invalid_frames_count_for_precision():
    gt = [[10, 10, 20, 20], [np.nan] * 4]
    uav = sequence_curves(np.array([[10, 10, 20, 20], [90, 90, 5, 5]]), sequence(gt, dataset="uav"))
    otb = sequence_curves(np.array([[10, 10, 20, 20], [90, 90, 5, 5]]), sequence(gt, dataset="otb"))
    assert uav.summary()["precision"] == 100.0 and otb.summary()["precision"] == 50.0
