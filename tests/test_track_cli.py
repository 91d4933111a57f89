"""`tomp-deploy track` on the sources users give it."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.cli import run_cli
from tests.seeded import seeded_model
from tests.sequences import moving_target_sequence
from tomp_deploy import ToMPError
from tomp_deploy.model import save_checkpoint
from tomp_deploy.runtime.backends import open_backend
from tomp_deploy.runtime.driver import track_frames


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_checkpoint(seeded_model("tiny", 2, 0.6, True, 0.2), tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture(scope="module")
def sequence():
    return moving_target_sequence(0, 8)


def write_lasot_sequence(root: Path, images, boxes) -> Path:
    """LaSOT layout: <class>/<class>-<n>/img/00000001.jpg with groundtruth.txt beside img/."""
    sequence = root / "car" / "car-1"
    (sequence / "img").mkdir(parents=True)
    for index, image in enumerate(images, start=1):
        cv2.imwrite(str(sequence / "img" / f"{index:08d}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    np.savetxt(sequence / "groundtruth.txt", boxes, fmt="%d", delimiter=",")
    return sequence / "img"


def write_video(path: Path, images, fourcc="MJPG") -> Path:
    height, width = images[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25, (width, height))
    for image in images:
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def read_boxes(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", ndmin=2)


def test_lasot_folder_needs_no_init_box(tmp_path, checkpoint, sequence):
    images, boxes = sequence
    folder = write_lasot_sequence(tmp_path, images, boxes)
    out = tmp_path / "boxes.txt"
    video = tmp_path / "tracked.mp4"
    result = run_cli("track", folder, "--model", checkpoint, "--output", out, "--video-out", video)
    assert result.returncode == 0, result.stderr
    written = read_boxes(out)
    assert written.shape == (8, 4)
    np.testing.assert_allclose(written[0], boxes[0])
    with open_backend("torch", checkpoint) as backend:
        expected = [step.confidences[0] for step in track_frames(backend, images, [boxes[0]])]
    confidences = np.loadtxt(tmp_path / "boxes_confidence.value")
    np.testing.assert_allclose(confidences, expected, atol=1e-6)
    assert confidences[0] == 1.0 and ((0 <= confidences) & (confidences <= 1)).all()
    assert f"confidences: {tmp_path / 'boxes_confidence.value'}" in result.stdout.replace("\n", "")
    capture = cv2.VideoCapture(str(video))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 8
    assert (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (320, 240)


def test_video_file_with_init_box_and_two_targets(tmp_path, checkpoint, sequence):
    images, boxes = sequence
    video = write_video(tmp_path / "clip.avi", images)
    out = tmp_path / "boxes.txt"
    result = run_cli(
        "track", video, "--model", checkpoint, "--init-box", "30,60,40,30", "--init-box", "200 150 50 40", "--output", out
    )
    assert result.returncode == 0, result.stderr
    first, second = read_boxes(tmp_path / "boxes_1.txt"), read_boxes(tmp_path / "boxes_2.txt")
    assert first.shape == second.shape == (8, 4)
    assert [len(np.loadtxt(tmp_path / f"boxes_{k}_confidence.value")) for k in (1, 2)] == [8, 8]
    np.testing.assert_allclose(second[0], [200, 150, 50, 40])


def test_missing_init_box_without_groundtruth(tmp_path, checkpoint, sequence):
    video = write_video(tmp_path / "clip.avi", sequence[0])
    result = run_cli("track", video, "--model", checkpoint)
    assert result.returncode == 2
    assert "--init-box" in result.stderr and "Traceback" not in result.stderr


def test_corrupt_frame_keeps_boxes_so_far(tmp_path, checkpoint, sequence):
    images, boxes = sequence
    folder = write_lasot_sequence(tmp_path, images, boxes)
    (folder / "00000005.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    out = tmp_path / "boxes.txt"
    result = run_cli("track", folder, "--model", checkpoint, "--output", out)
    assert result.returncode == 2
    assert "00000005.jpg" in result.stderr and "Stopped after 4 frames" in result.stderr
    assert read_boxes(out).shape == (4, 4)


def test_video_that_ends_early(tmp_path, checkpoint, sequence):
    video = write_video(tmp_path / "clip.avi", sequence[0] * 2)
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])
    out = tmp_path / "boxes.txt"
    result = run_cli("track", video, "--model", checkpoint, "--init-box", "30,60,40,30", "--output", out)
    assert result.returncode == 0, result.stderr
    kept = read_boxes(out).shape[0]
    assert 0 < kept < 16
    assert f"ended after {kept} of its 16 announced frames" in result.stdout.replace("\n", " ")


def test_unreadable_video(tmp_path, checkpoint):
    video = tmp_path / "broken.mp4"
    video.write_bytes(b"this is not a video" * 100)
    result = run_cli("track", video, "--model", checkpoint, "--init-box", "1,1,5,5")
    assert result.returncode == 2
    assert "broken.mp4" in result.stderr and "Traceback" not in result.stderr


def test_unknown_backend(tmp_path, checkpoint, sequence):
    folder = write_lasot_sequence(tmp_path, *sequence)
    result = run_cli("track", folder, "--model", checkpoint, "--backend", "nope")
    assert result.returncode == 2
    assert "Unknown backend 'nope'" in result.stderr


def test_backend_option_for_another_backend(tmp_path, checkpoint, sequence):
    folder = write_lasot_sequence(tmp_path, *sequence)
    result = run_cli("track", folder, "--model", checkpoint, "--backend", "torch", "--precision", "fp16")
    assert result.returncode == 2
    assert "--precision does not apply to the torch backend" in result.stderr
    result = run_cli("track", folder, "--model", "tiny", "--backend", "onnxruntime", "--cuda-graphs")
    assert "--cuda-graphs does not apply to the onnxruntime backend" in result.stderr


def test_malformed_init_box(tmp_path, checkpoint, sequence):
    folder = write_lasot_sequence(tmp_path, *sequence)
    result = run_cli("track", folder, "--model", checkpoint, "--init-box", "1,2,three,4")
    assert result.returncode == 2
    assert "--init-box: '1,2,three,4' is not a row of numbers" in result.stderr


def edit_tracker_params(export: Path, **changes) -> Path:
    import json
    import shutil

    edited = export.parent / f"edited-{'-'.join(changes)}"
    shutil.copytree(export, edited)
    manifest = json.loads((edited / "model.json").read_text())
    manifest["tracker"].update(changes)
    (edited / "model.json").write_text(json.dumps(manifest))
    return edited


def test_tracker_follows_the_exports_tracker_parameters(tmp_path, shipped_export):
    """A threshold no score reaches makes every frame 'not found', so the box never moves: the tracker must
    take that from model.json, in the Python API and on the command line, and --tracker-param overrides it."""
    from tomp_deploy.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    from tomp_deploy.runtime.tracker import ToMPTracker

    never_found = edit_tracker_params(shipped_export, target_not_found_threshold=2.0)
    with OnnxRuntimeBackend(never_found) as backend:
        assert ToMPTracker(backend).params.target_not_found_threshold == 2.0

    from tomp_deploy.evaluation.datasets import open_dataset
    from tomp_deploy.evaluation.synth import generate_benchmark

    generate_benchmark(tmp_path / "synthetic", 1, 12, seed=7)  # the kind of sequence the shipped model knows
    folder = open_dataset(tmp_path / "synthetic", "lasot")[0].frames[0].parent
    runs = {
        "recorded": (shipped_export, []),
        "edited": (never_found, []),
        "overridden": (never_found, ["--tracker-param", "target_not_found_threshold=0.25"]),
    }
    boxes = {}
    for name, (model, extra) in runs.items():
        result = run_cli(
            "track", folder, "--model", model, "--backend", "onnxruntime", "--output", tmp_path / f"{name}.txt", *extra
        )
        assert result.returncode == 0, result.stderr
        boxes[name] = read_boxes(tmp_path / f"{name}.txt")
    assert (boxes["edited"] == boxes["edited"][0]).all(), "the box moved although no frame can be found"
    assert not (boxes["recorded"] == boxes["recorded"][0]).all(), "the shipped model follows the target"
    np.testing.assert_array_equal(boxes["overridden"], boxes["recorded"])


def test_unknown_tracker_parameter(tmp_path, shipped_export, sequence):
    folder = write_lasot_sequence(tmp_path, *sequence)
    result = run_cli("track", folder, "--model", shipped_export, "--backend", "onnxruntime", "--tracker-param", "speed=3")
    assert result.returncode == 2 and "Unknown tracker parameter 'speed'" in result.stderr
    result = run_cli(
        "track", folder, "--model", shipped_export, "--backend", "onnxruntime", "--tracker-param", "search_area_scale=-5"
    )
    assert result.returncode == 2 and "search_area_scale = -5.0 must be a number above 0" in result.stderr


def test_tracker_parameters_that_are_scales_must_be_positive():
    from tomp_deploy.runtime.presets import TrackerParams

    for name in ("search_area_scale", "output_sigma_factor", "displacement_scale"):
        for bad in (0, -1.0, float("inf"), float("nan"), "2"):
            with pytest.raises(ToMPError, match=f"{name} = .* must be a number above 0"):
                TrackerParams(**{name: bad})
    assert TrackerParams(conf_ths=-0.5).conf_ths == -0.5, "a score threshold may be any number"


def test_parity_command_compares_every_output_and_the_whole_sequence(tmp_path, sequence, shipped_export):
    """torch on the shipped checkpoint against ONNX Runtime on its export: seven contract outputs within
    1e-4 and the same boxes; a tolerance no float computation meets fails with exit code 1."""
    folder = write_lasot_sequence(tmp_path, *sequence)
    result = run_cli("parity", "torch:tiny", f"onnxruntime:{shipped_export}", "--sequence", folder)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith(("| backbone", "| predictor", "| head"))]
    assert len(rows) == 7 and all(row.endswith("| yes |") for row in rows), result.stdout
    assert "within tolerance" in result.stdout
    strict = run_cli("parity", "torch:tiny", f"onnxruntime:{shipped_export}", "--sequence", folder, "--rtol", "0")
    assert strict.returncode == 1 and "outside tolerance" in strict.stdout
