"""`tomp-deploy calibrate`: long-term mode's confidence refitted on a user's sequences, written into a new
checkpoint (the input untouched) that exports and tracks with it; and the samples it fits on."""

import dataclasses

import numpy as np
import pytest

from tests.cli import run_cli
from tomp_deploy.evaluation.calibration import collect_samples
from tomp_deploy.evaluation.datasets import open_dataset
from tomp_deploy.evaluation.metrics import overlaps
from tomp_deploy.evaluation.synth import LONG_TERM_FAMILY, generate_benchmark
from tomp_deploy.model.checkpoint import load_checkpoint
from tomp_deploy.runtime.backends import open_backend
from tomp_deploy.runtime.confidence import FEATURES
from tomp_deploy.runtime.driver import track_frames
from tomp_deploy.runtime.manifests.json_files import file_sha256
from tomp_deploy.runtime.shipped import resolve_model
from tomp_deploy.runtime.sources import FrameSource


@pytest.fixture(scope="module")
def long_term_data(tmp_path_factory):
    """Two 60-frame sequences of the long-term family (seed 2: the target is absent from 28 and 8 frames)."""
    root = tmp_path_factory.mktemp("calibration") / "data"
    generate_benchmark(root, sequences=2, frames=60, seed=2, family=LONG_TERM_FAMILY)
    return root


def test_samples_label_the_frames_and_candidates_on_the_target(long_term_data, shipped_export):
    sequences = open_dataset(long_term_data, "lasot")
    with open_backend("onnxruntime", shipped_export) as backend:
        samples = collect_samples(backend, sequences[:1], backend.tracker_params)
        sequence = sequences[0]
        frames = (frame.image for frame in FrameSource.of_images(sequence.frames))
        params = dataclasses.replace(backend.tracker_params, long_term=True)
        tracked = [step for step in track_frames(backend, frames, [sequence.init_box], params)][1:]
    truth, visible = np.nan_to_num(sequence.ground_truth[1:]), sequence.target_present[1:]
    boxes = np.array([step.boxes[0] for step in tracked])
    np.testing.assert_array_equal(samples.frames.on_target, (overlaps(boxes, truth) > 0.5) & visible)
    assert samples.frames.features.shape == (59, len(FEATURES))
    np.testing.assert_array_equal(samples.frames.features, [step.results[0].confidence_features for step in tracked])
    assert not samples.frames.on_target[~visible].any(), "a frame without the target is never on it"

    searched = [(k, step.results[0].candidates) for k, step in enumerate(tracked) if step.results[0].candidates]
    assert searched, "the target is gone long enough for whole-frame searches"
    expected = [
        visible[k] and overlaps(candidate.box[None], truth[k][None])[0] > 0.5 for k, found in searched for candidate in found
    ]
    np.testing.assert_array_equal(samples.candidates.on_target, expected)
    np.testing.assert_array_equal(samples.candidates.features, [c.features for _, found in searched for c in found])


@pytest.mark.slow  # 25 s: tracks 118 frames and exports; the samples and the fit are in the default suite
def test_calibrate_writes_a_new_checkpoint_that_exports_with_the_fit(long_term_data, tmp_path):
    source = resolve_model("tiny")
    before = file_sha256(source)
    output = tmp_path / "calibrated.pt"
    done = run_cli(
        "calibrate", "--dataset-root", long_term_data, "--model", "tiny", "--output", output, "--backend", "onnxruntime"
    )
    assert done.returncode == 0, done.stderr
    printed = " ".join(done.stdout.split())
    assert "ROC AUC" in printed and "--tracker-param lt_calibration_bias=" in printed
    assert "--tracker-param lt_candidate_weight_colour=" in printed
    assert file_sha256(source) == before, "the input checkpoint is never written"
    _, _, info = load_checkpoint(output)
    fitted = info.tracker_params
    presence = info.meta["calibration"]["presence"]
    assert presence["samples"] == 118 and presence["auc_after"] > 0.5
    assert fitted.lt_calibration_bias == pytest.approx(info.meta["tracker"]["lt_calibration_bias"])
    assert fitted != load_checkpoint(source)[2].tracker_params

    exported = run_cli("export", output, "--out", tmp_path / "export")
    assert exported.returncode == 0, exported.stderr
    with open_backend("onnxruntime", tmp_path / "export") as backend:
        assert backend.tracker_params == fitted, "the export's model.json carries the fit"


def test_calibrate_refuses_to_overwrite_its_input_or_take_a_folder(long_term_data, tmp_path, shipped_export):
    copy = tmp_path / "tiny.pt"
    copy.write_bytes(resolve_model("tiny").read_bytes())
    same = run_cli("calibrate", "--dataset-root", long_term_data, "--model", copy, "--output", copy)
    assert same.returncode != 0 and "is the input checkpoint" in same.stderr
    folder = run_cli("calibrate", "--dataset-root", long_term_data, "--model", shipped_export, "--output", tmp_path / "x.pt")
    assert folder.returncode != 0 and "is not a checkpoint file" in folder.stderr
