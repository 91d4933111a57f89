"""Frames and boxes the tracker must refuse, and backend outputs it must not believe (issue 31): every frame
is uint8 RGB of a bounded size, every first box at least a pixel, and a non-finite score is never 'normal'."""

import subprocess
import sys

import cv2
import numpy as np
import pytest

from tests.huge_images import write_black_png
from tests.scripted_backend import ScriptedBackend, peak_map
from tomp_deploy import ToMPError
from tomp_deploy.runtime.images import MAX_IMAGE_PIXELS_VARIABLE, read_rgb
from tomp_deploy.runtime.sources import FrameSource
from tomp_deploy.runtime.tracker import MultiTargetTracker, ToMPTracker

BOX = [140, 100, 40, 40]


def frame(dtype=np.uint8, shape=(240, 320, 3)) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, shape).astype(dtype)


@pytest.mark.parametrize(
    "bad",
    [
        frame(np.float32) / 255,
        frame(np.float64),
        frame(np.uint16) * 256,
        frame(bool),
        frame(np.complex64),
        frame(np.int64),
    ],
    ids=["float 0..1", "float64 0..255", "uint16", "bool", "complex", "int64"],
)
def test_frames_that_are_not_uint8_are_refused_with_the_conversion(bad):
    tracker = ToMPTracker(ScriptedBackend([peak_map({(9, 9): 0.95})]))
    with pytest.raises(ToMPError, match=f"must be uint8 RGB .*got dtype {bad.dtype}.*Convert it"):
        tracker.initialize(bad, BOX)
    tracker.initialize(frame(), BOX)
    with pytest.raises(ToMPError, match="must be uint8 RGB"):
        tracker.track(bad)


@pytest.mark.parametrize("shape", [(240, 320, 2), (240, 320, 5), (0, 0, 3), (240, 0, 3), (2, 240, 320, 3), (240,)])
def test_frames_of_the_wrong_shape_are_refused(shape):
    with pytest.raises(ToMPError, match="H x W x 3"):
        ToMPTracker(ScriptedBackend([])).initialize(np.zeros(shape, np.uint8), BOX)


def test_a_frame_that_is_not_an_array_is_refused():
    with pytest.raises(ToMPError, match="numpy array"):
        ToMPTracker(ScriptedBackend([])).initialize(frame().tolist(), BOX)


@pytest.mark.parametrize(
    "box", [[140, 100, 1e-4, 40], [140, 100, 40, 0.5], [140, 100, 1e30, 40], [1e30, 100, 40, 40], [140, 100, 40, np.inf]]
)
def test_first_boxes_out_of_sane_bounds_are_refused(box):
    with pytest.raises(ToMPError, match="initial box"):
        MultiTargetTracker(ScriptedBackend([])).initialize(frame(), [box])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_score_is_never_normal(bad):
    scores = peak_map({(9, 9): 0.95})
    scores[3, 3] = bad
    backend = ScriptedBackend([peak_map({(9, 9): 0.95}), scores, peak_map({(9, 9): 0.95})])
    tracker = ToMPTracker(backend)
    tracker.initialize(frame(), BOX)
    before, lost, _ = (tracker.track(frame()) for _ in range(3))
    assert before.flag == "normal" and lost.flag == "not_found" and np.isnan(lost.score)
    np.testing.assert_array_equal(lost.box, before.box)  # the target stays where it was last seen
    recent = [call["memory_ids"][1] for call in backend.predictor_calls]
    assert recent[2] == recent[1]  # the frame with the non-finite score did not enter the memory


def test_an_image_declaring_too_many_pixels_is_refused_before_it_is_decoded(tmp_path):
    """20000 x 20000 (400 MB decoded as grey, 1.2 GB as RGB), refused with 1 GB of address space beyond what
    the interpreter holds."""
    huge = write_black_png(tmp_path / "huge.png", 20000, 20000)
    assert huge.stat().st_size < 1_000_000
    script = f"""
import resource, sys
from tomp_deploy.runtime.images import read_rgb
from tomp_deploy import ToMPError
used = int(open('/proc/self/statm').read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (used + (1 << 30), resource.RLIM_INFINITY))
try:
    read_rgb({str(huge)!r})
except ToMPError as exc:
    print(exc)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "above the bound of 67 megapixels" in result.stdout
    assert MAX_IMAGE_PIXELS_VARIABLE in result.stdout


def test_the_image_bound_can_be_raised_and_lowered(tmp_path, monkeypatch):
    path = tmp_path / "frame.png"
    cv2.imwrite(str(path), frame())
    monkeypatch.setenv(MAX_IMAGE_PIXELS_VARIABLE, str(320 * 240 - 1))
    with pytest.raises(ToMPError, match="above the bound"):
        read_rgb(path)
    with pytest.raises(ToMPError, match="above the bound"):
        ToMPTracker(ScriptedBackend([])).initialize(frame(), BOX)
    video = tmp_path / "video.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    writer.write(frame())
    writer.release()
    with pytest.raises(ToMPError, match="The frames of .*video.avi are 320x240|above the bound"):
        list(FrameSource(video))
    monkeypatch.setenv(MAX_IMAGE_PIXELS_VARIABLE, str(320 * 240))
    assert read_rgb(path).shape == (240, 320, 3)
    monkeypatch.setenv(MAX_IMAGE_PIXELS_VARIABLE, "many")
    with pytest.raises(ToMPError, match=f"{MAX_IMAGE_PIXELS_VARIABLE}='many' is not a whole number"):
        read_rgb(path)


def test_a_long_path_is_shown_cut(tmp_path):
    with pytest.raises(ToMPError) as error:
        read_rgb(tmp_path / ("x" * 5000 + ".png"))
    assert len(str(error.value)) < 400 and "characters)" in str(error.value)
