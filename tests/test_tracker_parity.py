"""The tracker against the reference implementation's tracker on the same networks and frames."""

import json
from pathlib import Path

import numpy as np
import pytest

from tests.seeded import seeded_model
from tests.sequences import moving_target_sequence
from tomp_deploy.model.torch_backend import TorchBackend
from tomp_deploy.runtime.geometry import iou
from tomp_deploy.runtime.tracker import ToMPTracker

CASES = json.loads((Path(__file__).parent / "data" / "reference_tracker_boxes.json").read_text())["cases"]


def case_id(case: dict) -> str:
    return f"net{case['seed']}-gain{case['score_gain']}-seq{case['sequence_seed']}-x{case['image_scale']}"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_boxes_match_reference_tracker(case):
    network = seeded_model("tiny", case["seed"], case["score_gain"], case["zero_score_bias"], case["box_fraction"])
    frames, groundtruth = moving_target_sequence(case["sequence_seed"], case["frames"], case["image_scale"])
    tracker = ToMPTracker(TorchBackend(network))
    tracker.initialize(frames[0], groundtruth[0])
    boxes, scores = [groundtruth[0]], [None]
    for frame in frames[1:]:
        result = tracker.track(frame)
        boxes.append(result.box)
        scores.append(result.score)

    ours, reference = np.array(boxes), np.array(case["boxes"])
    centre_error = np.linalg.norm((ours[:, :2] + ours[:, 2:] / 2) - (reference[:, :2] + reference[:, 2:] / 2), axis=1)
    assert iou(ours, reference).min() >= 0.99
    assert centre_error.mean() <= 0.5
    np.testing.assert_allclose(scores[1:], case["scores"][1:], rtol=1e-3, atol=1e-3)
