"""Tracker decisions: localisation branches, memory, two-stage masks, rescaling, inputs."""

import subprocess
import sys

import numpy as np
import pytest

from tests.scripted_backend import ScriptedBackend, peak_map
from tests.seeded import seeded_model
from tests.sequences import moving_target_sequence
from tomp_deploy import ToMPError
from tomp_deploy.model.torch_backend import TorchBackend
from tomp_deploy.runtime.backends.base import HostMemory
from tomp_deploy.runtime.localization import localize
from tomp_deploy.runtime.presets import TrackerParams, preset
from tomp_deploy.runtime.target import TargetState
from tomp_deploy.runtime.tracker import MultiTargetTracker, ToMPTracker

PARAMS = TrackerParams()
TARGET = np.array([64.0, 64.0])  # 64 px at scale 1 -> neighbourhood 2.2 * 4 = 8.8 cells


def locate(peaks, previous_offset=(0.5, 0.5)):
    return localize(peak_map(peaks), TARGET, np.array(previous_offset), 1.0, 288, PARAMS)


def test_target_not_found_below_threshold():
    result = locate({(5, 5): 0.2})
    assert (result.flag, result.cell.tolist()) == ("not_found", [5, 5])


def test_single_peak_is_normal():
    assert locate({(9, 9): 1.0, (10, 9): 0.7}).flag == "normal"  # (10, 9) lies in the neighbourhood


def test_weak_second_peak_is_hard_negative():
    assert locate({(9, 9): 1.0, (1, 1): 0.6}).flag == "hard_negative"
    assert locate({(9, 9): 1.0, (1, 1): 0.3}).flag == "normal"
    assert locate({(9, 9): 0.4, (1, 1): 0.24}).flag == "normal"  # second below not-found threshold


def test_neighbourhood_extent():
    # Peak (9, 9), neighbourhood rows/cols round(9 - 4.4) = 5 .. round(14.4) = 14 (exclusive).
    assert locate({(9, 9): 1.0, (5, 13): 0.9}).flag == "normal"
    assert locate({(9, 9): 1.0, (4, 9): 0.9}).flag != "normal"
    assert locate({(9, 9): 1.0, (9, 14): 0.9}).flag != "normal"


def test_distractor_near_previous_position_keeps_first_peak():
    result = locate({(9, 9): 1.0, (1, 1): 0.9}, previous_offset=(0.5, 0.5))
    assert (result.flag, result.cell.tolist()) == ("hard_negative", [9, 9])


def test_distractor_switches_to_second_peak_near_previous_position():
    result = locate({(9, 9): 1.0, (1, 1): 0.9}, previous_offset=(-7.5, -7.5))
    assert (result.flag, result.cell.tolist()) == ("hard_negative", [1, 1])


def test_both_peaks_far_is_uncertain():
    # Distances 12.0 and 16.0 cells from the previous position, both beyond 0.8 * 18 / 2 = 7.2.
    result = locate({(9, 9): 1.0, (1, 1): 0.9}, previous_offset=(8.5, -8.5))
    assert (result.flag, result.cell.tolist()) == ("uncertain", [9, 9])


def test_both_peaks_near_is_uncertain():
    result = locate({(9, 9): 1.0, (9, 15): 0.9}, previous_offset=(0.5, 3.5))
    assert (result.flag, result.cell.tolist()) == ("uncertain", [9, 9])


def test_search_area_rescaling_after_loss():
    state = TargetState(preset("tiny"), PARAMS, (240, 320, 3), np.array([100, 100, 40, 40]), HostMemory(preset("tiny")))
    state.target_scales = [1.0, 2.0, 1.5, 1.2]
    state._rescale_search_area()  # 1st loss: last max(2, 1) = 2 scales >= 1.2 -> (1.5 + 1.2) / 2
    assert state.target_scale == pytest.approx(1.35)
    state._rescale_search_area()
    assert state.target_scale == pytest.approx(1.35)
    state._rescale_search_area()  # 3rd loss: 3 scales -> (2.0 + 1.5 + 1.2) / 3
    assert state.target_scale == pytest.approx(4.7 / 3)


def frames(count, height=240, width=320):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def test_memory_replacement_and_two_stage_masks():
    confident, weak = peak_map({(9, 9): 0.95}), peak_map({(9, 9): 0.5})
    distractor = peak_map({(9, 9): 0.95, (1, 1): 0.9})  # hard negative, previous position at peak 1
    uncertain = peak_map({(1, 16): 0.95, (16, 1): 0.9})  # both far from the previous position
    lost = peak_map({(9, 9): 0.2})
    backend = ScriptedBackend([confident, weak, distractor, lost, uncertain, confident])
    tracker = ToMPTracker(backend)
    images = frames(7)
    tracker.initialize(images[0], [140, 100, 40, 40])
    results = [tracker.track(image) for image in images[1:]]
    flags = [result.flag for result in results]
    calls = backend.predictor_calls
    cells = 18 * 18
    assert [result.memory_frames for result in results] == [1, 2, 2, 2, 2, 2]  # full after the confident frame

    # Feature 1 is the annotated frame; frame k's search feature is k + 1.
    assert [c["test_id"] for c in calls] == [2, 3, 4, 5, 6, 7]
    assert [c["memory_ids"][0] for c in calls] == [1] * 6  # the annotated frame stays
    # Slot 1: empty, then the newest frame whose max score exceeded 0.9 and was not lost/uncertain.
    assert flags == ["normal", "normal", "hard_negative", "not_found", "uncertain", "normal"]
    assert [c["memory_ids"][1] for c in calls[1:]] == [2, 2, 4, 4, 4]
    first = calls[0]["mask"]
    assert first[0, cells : 2 * cells].all() and first[1, cells : 2 * cells].all()  # empty slot hidden in both
    for call in calls[1:]:
        mask = call["mask"]
        assert not mask[0].any()  # classifier row: both memory frames and the test frame
        assert mask[1, cells : 2 * cells].all() and not mask[1, :cells].any() and not mask[1, 2 * cells :].any()


def test_memory_labels_and_boxes_of_the_annotated_frame():
    backend = ScriptedBackend([peak_map({(9, 9): 0.95})])
    tracker = ToMPTracker(backend)
    image = frames(1)[0]
    tracker.initialize(image, [140, 100, 40, 40])
    tracker.track(image)
    call = backend.predictor_calls[0]
    # 40x40 target, search area 5x -> 200 px region at scale 200/288; the box is centred at 143.5 +
    # (119.5 - 120) / scale (the rounded sample centre), 40 * 288/200 = 57.6 px wide.
    scale = 200 / 288
    offset = (119.5 - 120) / scale
    x1 = 143.5 + offset - (57.6 - 1) / 2
    expected = np.array([152 - x1, 152 - x1, x1 + 57.6 - 152, x1 + 57.6 - 152]) / 288  # cell (9, 9) at (152, 152)
    np.testing.assert_allclose(call["ltrb"][0][:, 9, 9], expected, rtol=1e-5)
    label = call["labels"][0]
    sigma = np.sqrt((18 / 288 * 40 / scale) ** 2) / 4
    center = 18 * (119.5 - 120) / 200
    k = np.arange(-8.5, 9)
    np.testing.assert_allclose(
        label, np.outer(np.exp(-0.5 * (k - center) ** 2 / sigma**2), np.exp(-0.5 * (k - center) ** 2 / sigma**2)), rtol=1e-5
    )
    assert not call["labels"][1].any()


def test_tracker_only_uses_the_contract():
    class RecordingBackend:
        def __init__(self, inner):
            self._inner = inner
            self.used = set()

        def __getattr__(self, name):
            self.used.add(name)
            return getattr(self._inner, name)

    images, boxes = moving_target_sequence(0, 6)
    network = seeded_model("tiny", 2, 0.6, True, 0.2)
    direct, wrapped = TorchBackend(network), RecordingBackend(TorchBackend(network))
    results = []
    for backend in (direct, wrapped):
        tracker = ToMPTracker(backend)
        tracker.initialize(images[0], boxes[0])
        results.append([tracker.track(image).box for image in images[1:]])
    assert wrapped.used <= {"extract", "new_memory", "locate", "config", "tracker_params", "max_batch"}
    np.testing.assert_array_equal(results[0], results[1])


def test_several_targets_share_one_backbone_call():
    images, boxes = moving_target_sequence(0, 4)
    network = seeded_model("tiny", 2, 0.6, True, 0.2)
    backend = TorchBackend(network)
    calls = []
    original = backend.extract
    backend.extract = lambda batch: calls.append(batch.shape[0]) or original(batch)
    multi = MultiTargetTracker(backend)
    second = np.array([200, 150, 50, 40.0])
    multi.initialize(images[0], [boxes[0], second])
    together = [multi.track(image) for image in images[1:]]
    assert calls == [2, 2, 2, 2]
    for index, box in enumerate([boxes[0], second]):
        alone = ToMPTracker(TorchBackend(network))
        alone.initialize(images[0], box)
        for image, results in zip(images[1:], together):
            np.testing.assert_allclose(alone.track(image).box, results[index].box, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize(
    "box,message",
    [
        ([400, 10, 20, 20], "outside"),
        ([-50, -50, 20, 20], "outside"),
        ([10, 10, 0, 20], "smaller than 1 pixel"),
        ([10, 10, 20, -5], "smaller than 1 pixel"),
        ([10, float("nan"), 20, 20], "NaN"),
        ([10, 10, 20], "four numbers"),
        (["x", 10, 20, 20], "four numbers"),
    ],
)
def test_bad_initial_boxes(box, message):
    tracker = ToMPTracker(ScriptedBackend([]))
    with pytest.raises(ToMPError, match=message):
        tracker.initialize(frames(1)[0], box)


def test_grey_and_rgba_frames_are_converted():
    images, boxes = moving_target_sequence(0, 3)
    network = seeded_model("tiny", 2, 0.6, True, 0.2)
    grey = [im.mean(axis=2).astype(np.uint8) for im in images]
    as_rgb = [np.repeat(g[:, :, None], 3, axis=2) for g in grey]
    rgba = [np.concatenate([im, np.full(im.shape[:2] + (1,), 128, np.uint8)], axis=2) for im in images]
    outputs = []
    for sequence in (grey, as_rgb, rgba, images):
        tracker = ToMPTracker(TorchBackend(network))
        tracker.initialize(sequence[0], boxes[0])
        outputs.append([tracker.track(image).box for image in sequence[1:]])
    np.testing.assert_array_equal(outputs[0], outputs[1])
    np.testing.assert_array_equal(outputs[2], outputs[3])


def test_frame_size_change_is_an_error():
    tracker = ToMPTracker(ScriptedBackend([peak_map({(9, 9): 0.95})] * 2))
    tracker.initialize(frames(1)[0], [100, 100, 30, 30])
    tracker.track(frames(1)[0])
    with pytest.raises(ToMPError, match="Frame 2 is 160x120 but the video started at 320x240"):
        tracker.track(frames(1, 120, 160)[0])


def test_track_before_initialize():
    with pytest.raises(ToMPError, match="before initialize"):
        ToMPTracker(ScriptedBackend([])).track(frames(1)[0])


def test_runtime_imports_without_torch():
    script = """
import sys
sys.modules['torch'] = None  # any 'import torch' now fails
import numpy as np
import tomp_deploy.runtime.tracker, tomp_deploy.runtime.sources, tomp_deploy.runtime.backends, tomp_deploy.cli
import tomp_deploy.runtime.backends.tensorrt_backend, tomp_deploy.runtime.manifests.engine, tomp_deploy.checks.bench
from tests.scripted_backend import ScriptedBackend, peak_map
tracker = tomp_deploy.runtime.tracker.ToMPTracker(ScriptedBackend([peak_map({(9, 9): 0.95})]))
frame = np.zeros((120, 160, 3), np.uint8)
tracker.initialize(frame, [50, 40, 30, 20])
print(tracker.track(frame).flag)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "normal"


def test_every_result_says_how_sure_it_is_and_whether_the_target_is_there():
    """Default mode: the peak clipped to [0, 1]; present unless the localisation says not_found; a score
    map with NaN is never present."""
    over_one = peak_map({(9, 9): 1.3})
    distractor = peak_map({(9, 9): 0.95, (1, 1): 0.9})
    lost = peak_map({(9, 9): 0.2})
    broken = peak_map({(9, 9): 0.95})
    broken[3, 3] = np.nan
    tracker = ToMPTracker(ScriptedBackend([over_one, distractor, lost, broken]))
    images = frames(5)
    tracker.initialize(images[0], [140, 100, 40, 40])
    results = [tracker.track(image) for image in images[1:]]
    assert [r.flag for r in results] == ["normal", "hard_negative", "not_found", "not_found"]
    assert [r.confidence for r in results] == pytest.approx([1.0, 0.95, 0.2, 0.0])
    assert [r.present for r in results] == [True, True, False, False]
