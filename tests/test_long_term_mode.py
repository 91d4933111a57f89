"""Long-term mode (`TrackerParams(long_term=True)`): off, the tracker is the reference's; on, identical up
to the first frame it reports the target absent; a target that vanishes and reappears far from where it
was is found again by the whole-frame search, in chunks of the backend's batch limit; a frame the
calibrated confidence doubts never enters the memory."""

import dataclasses
import math

import numpy as np
import pytest

from tests.scripted_backend import ScriptedBackend, peak_map
from tests.sequences import moving_target_sequence, smooth_texture
from tomp_deploy.evaluation.metrics import overlaps
from tomp_deploy.runtime.backends import open_backend
from tomp_deploy.runtime.backends.recording import RecordingBackend
from tomp_deploy.runtime.confidence import CANDIDATE, FEATURES, PRESENCE
from tomp_deploy.runtime.contract import REDETECT
from tomp_deploy.runtime.long_term import Candidate, best_candidate, tile_patches
from tomp_deploy.runtime.presets import TrackerParams
from tomp_deploy.runtime.shipped import resolve_model
from tomp_deploy.runtime.tracker import ToMPTracker

HEIGHT, WIDTH = 240, 480
TARGET = 36


def vanishing_target(frames: int = 40, gone: range = range(8, 16)):
    """A colourful textured square that moves a little on the left, is gone for `gone`, and comes back
    on the far right, beyond the tracker's local search region (5 target sizes)."""
    rng = np.random.default_rng(4)
    background = smooth_texture(rng, HEIGHT, WIDTH, 24) * 0.35 + 60
    target = smooth_texture(rng, TARGET, TARGET, 6) * 0.6 + np.array([140.0, 20.0, 20.0])
    images, boxes = [], []
    for index in range(frames):
        image = background.copy()
        if index in gone:
            boxes.append([np.nan] * 4)
        else:
            x = 40 + 2 * index if index < gone.start else WIDTH - 80 - index
            y = 100 + (index % 5)
            image[y : y + TARGET, x : x + TARGET] = target
            boxes.append([x, y, TARGET, TARGET])
        images.append(np.clip(image, 0, 255).astype(np.uint8))
    return images, np.array(boxes, dtype=np.float64)


def scene_calibrated(backend) -> TrackerParams:
    """Long-term mode with a calibration for this test scene (both models: tracked frames and re-detection
    candidates): the colours and the layout of the box against the target's. The shipped calibration was
    fitted on the `longterm` family, whose score maps are sharper; on this smooth scene the tiny model's
    maps are broad (entropy 0.9) and it doubts frames the tracker holds
    (benchmarks/results/long_term_tiny_cpu.md): these tests are about what the mode does with its
    confidence, not about that fit."""
    weights = {}
    for model in (PRESENCE, CANDIDATE):
        weights |= {model.weight(name): 0.0 for name in FEATURES} | {model.bias: -6.0}
        weights |= {model.weight("colour"): 4.0, model.weight("template"): 4.0}
    return dataclasses.replace(backend.tracker_params, long_term=True, **weights)


def track(backend, images, box, params):
    tracker = ToMPTracker(backend, params)
    tracker.initialize(images[0], box)
    return [tracker.track(image) for image in images[1:]]


@pytest.fixture(scope="module")
def vanishing_runs(shipped_export):
    """The vanishing target tracked on ONNX Runtime in the default mode and in long-term mode."""
    images, boxes = vanishing_target()
    with open_backend("onnxruntime", shipped_export) as backend:
        return (
            boxes,
            track(backend, images, boxes[0], backend.tracker_params),
            track(backend, images, boxes[0], scene_calibrated(backend)),
        )


def test_long_term_mode_is_the_default_until_its_first_loss(vanishing_runs):
    _, default, long_term = vanishing_runs
    first_loss = next(k for k, result in enumerate(long_term) if not result.present)
    assert first_loss >= 4, "the target is in view and tracked before it vanishes"
    for a, b in zip(default[: first_loss + 1], long_term[: first_loss + 1]):
        np.testing.assert_array_equal(a.box, b.box)
        assert (a.score, a.flag) == (b.score, b.flag)
        np.testing.assert_array_equal(a.score_map, b.score_map)
    assert all(0 <= r.confidence <= 1 for r in long_term)


def test_a_target_back_far_away_is_found_again_only_in_long_term_mode(vanishing_runs):
    boxes, default, long_term = vanishing_runs
    back = np.arange(16, 40)
    iou_default = overlaps(np.array([r.box for r in default])[back - 1], boxes[back])
    iou_long_term = overlaps(np.array([r.box for r in long_term])[back - 1], boxes[back])
    assert (iou_default < 0.1).all(), "the reference tracker searches only around where it lost the target"
    assert (iou_long_term[-10:] > 0.5).all(), iou_long_term.round(2)
    assert all(r.present for r in long_term[-10:])
    assert not any(r.present for r in long_term[9:15]), "the target is reported absent while it is gone"
    searched = [k + 1 for k, r in enumerate(long_term) if REDETECT in r.times]
    assert searched and all(k in range(8, 30) for k in searched)


@pytest.mark.slow  # 17 s for both: the onnxruntime tests above keep the mechanics in the default suite
@pytest.mark.parametrize("backend_name", ["torch", "openvino"])
def test_every_cpu_backend_finds_the_target_again(backend_name, shipped_export):
    """Long-term mode is the tracker's, not a backend's: torch (on the checkpoint the export names) and
    OpenVINO re-detect the returning target as ONNX Runtime does."""
    if backend_name == "openvino":
        pytest.importorskip("openvino", reason="the openvino backend needs the 'openvino' extra: pip install -e '.[openvino]'")
    model = resolve_model("tiny") if backend_name == "torch" else shipped_export
    images, boxes = vanishing_target()
    with open_backend(backend_name, model) as backend:
        results = track(backend, images, boxes[0], scene_calibrated(backend))
    overlap = overlaps(np.array([r.box for r in results])[-10:], boxes[-10:])
    assert (overlap > 0.5).all() and all(r.present for r in results[-10:]), overlap.round(2)
    assert any(REDETECT in r.times for r in results)


def test_redetection_runs_in_chunks_of_the_batch_limit(shipped_export):
    images, boxes = vanishing_target()
    with open_backend("onnxruntime", shipped_export) as backend:
        recording = RecordingBackend(backend, keep=10_000)
        recording.max_batch = 4
        tracker = ToMPTracker(recording, scene_calibrated(backend))
        tracker.initialize(images[0], boxes[0])
        for image in images[1:]:
            before = len(recording.calls["backbone"])
            result = tracker.track(image)
            if REDETECT in result.times:
                break
        else:
            pytest.fail("no whole-frame search ran")
    crops = [call["image"].shape[0] for call in recording.calls["backbone"][before:]]
    targets = [call["train_feat"].shape[0] for call in recording.calls["predictor"][-(len(crops) - 1) :]]
    assert crops[0] == 1, "the frame's own search crop first"
    tiles = crops[1:]
    assert sum(tiles) > 4 and all(n == 4 for n in tiles[:-1]) and 1 <= tiles[-1] <= 4, crops
    assert targets == tiles, "each chunk of tiles is one batch of targets sharing the memory"


def test_tiles_cover_the_whole_frame():
    frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for side in (60.0, 150.0, 900.0):
        covered = np.zeros((HEIGHT, WIDTH), bool)
        for patch in tile_patches(frame, side, 144):
            top, left, bottom, right = (int(round(v)) for v in patch.coords)
            inner = (bottom - top) // 4, (right - left) // 4
            covered[max(top + inner[0], 0) : bottom - inner[0], max(left + inner[1], 0) : right - inner[1]] = True
        assert covered.all(), f"tiles of {side} px leave part of the frame outside every tile's inner half"


def test_the_most_confident_candidate_is_taken_from_the_threshold_on():
    candidates = [
        Candidate(np.array([k, 0.0, 10, 10]), confidence, np.zeros(len(FEATURES))) for k, confidence in enumerate((0.3, 0.7, 0.6))
    ]
    assert best_candidate(candidates, TrackerParams(lt_redetect_threshold=0.5)) is candidates[1]
    assert best_candidate(candidates, TrackerParams(lt_redetect_threshold=0.7)) is candidates[1], "the threshold is reached"
    assert best_candidate(candidates, TrackerParams(lt_redetect_threshold=0.75)) is None
    assert best_candidate([], TrackerParams()) is None


def test_long_term_parameters_are_checked():
    with pytest.raises(Exception, match="lt_redetect_every = 0 must be a number above 0"):
        TrackerParams(long_term=True, lt_redetect_every=0)
    with pytest.raises(Exception, match="long_term = 'yes' must be true or false"):
        TrackerParams(long_term="yes")


def test_the_default_mode_never_searches_the_whole_frame(shipped_export):
    images, boxes = moving_target_sequence(frames=8)
    with open_backend("onnxruntime", shipped_export) as backend:
        results = track(backend, images, boxes[0], backend.tracker_params)
    assert not any(REDETECT in r.times for r in results)


def scripted_params(**weights) -> TrackerParams:
    """Long-term mode with a logistic model of the given weights (the others 0), for scripted score maps."""
    zero = {f"lt_weight_{name}": 0.0 for name in FEATURES}
    return TrackerParams(long_term=True, lt_calibration_bias=-5.0, **{**zero, **weights})


def test_a_frame_the_calibrated_confidence_doubts_never_enters_the_memory():
    """A peak of 0.95 with a look-alike's peak of 0.9 far away: the default tracker stores the frame (score
    above conf_ths, hard negative); with confidence sigmoid(-5 + 10 peak - 10 second_peak) it is absent in
    long-term mode and the memory keeps the previous frame. A map with NaN is never present."""
    single = peak_map({(9, 9): 0.95})
    look_alike = peak_map({(9, 9): 0.95, (1, 1): 0.9})
    broken = peak_map({(9, 9): 0.95})
    broken[3, 3] = np.nan
    images = [np.full((240, 320, 3), 90, np.uint8) for _ in range(5)]
    memories = {}
    for mode, params in (
        ("default", TrackerParams()),
        ("long-term", scripted_params(lt_weight_peak=10.0, lt_weight_second_peak=-10.0)),
    ):
        backend = ScriptedBackend([single, look_alike, single.copy(), broken])
        tracker = ToMPTracker(backend, params)
        tracker.initialize(images[0], [140, 100, 40, 40])
        results = [tracker.track(image) for image in images[1:]]
        memories[mode] = [call["memory_ids"][1] for call in backend.predictor_calls]
        if mode == "long-term":
            assert [r.present for r in results] == [True, False, True, False]
            assert results[0].confidence == pytest.approx(1 / (1 + math.exp(-(-5 + 9.5))))
            assert results[1].confidence == pytest.approx(1 / (1 + math.exp(-(-5 + 9.5 - 10 * 0.9 / 0.95))), rel=1e-5)
            assert (results[3].confidence, results[3].confidence_features) == (0.0, None)
    assert memories["default"][2] == 3 and memories["long-term"][2] == 2, "frame 2 (feature 3) stored only by default"
