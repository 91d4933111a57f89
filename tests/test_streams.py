"""Batched targets: one predictor and head call over every target of a step, in the model, the exported
graphs and the trackers, against each target tracked alone; streams and targets coming and going."""

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.contract_checks import contract_inputs
from tests.scripted_backend import ScriptedBackend, peak_map
from tests.sequences import moving_target_sequence
from tomp_deploy import ToMPError
from tomp_deploy.runtime.backends.recording import RecordingBackend
from tomp_deploy.runtime.streams import MultiStreamTracker
from tomp_deploy.runtime.tracker import MultiTargetTracker, ToMPTracker

OTHER_BOXES = [np.array([200, 150, 50, 40.0]), np.array([30, 160, 60, 50.0])]
PIXELS = 1e-4


@pytest.fixture(scope="module")
def backends(shipped_export):
    from tomp_deploy.model import load_model
    from tomp_deploy.model.torch_backend import TorchBackend
    from tomp_deploy.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    from tomp_deploy.runtime.shipped import resolve_model

    return {"torch": TorchBackend(load_model(resolve_model("tiny"))), "onnxruntime": OnnxRuntimeBackend(shipped_export)}


def alone(backend, images, box) -> np.ndarray:
    """Boxes of one target tracked by itself over images[1:]."""
    tracker = ToMPTracker(backend)
    tracker.initialize(images[0], box)
    return np.array([tracker.track(image).box for image in images[1:]])


@pytest.mark.parametrize("name", ["torch", "onnxruntime"])
def test_targets_batched_in_one_predictor_call_track_as_each_alone(backends, name):
    images, boxes = moving_target_sequence(0, 12)
    initial = [boxes[0], *OTHER_BOXES]
    recorder = RecordingBackend(backends[name], keep=100)
    tracker = MultiTargetTracker(recorder)
    tracker.initialize(images[0], initial)
    together = [tracker.track(image) for image in images[1:]]
    assert [call["train_feat"].shape[0] for call in recorder.calls["predictor"]] == [3] * 11
    assert [call["cls_filter"].shape[0] for call in recorder.calls["head"]] == [3] * 11
    for index, box in enumerate(initial):
        batched = np.array([results[index].box for results in together])
        np.testing.assert_allclose(batched, alone(backends[name], images, box), rtol=0, atol=PIXELS)


@pytest.mark.parametrize("name", ["torch", "onnxruntime"])
def test_each_target_of_a_graph_batch_gets_its_own_outputs(backends, name):
    """Targets with one and with two memory frames in one predictor call, then the head: every output row
    equals the call on that target alone."""
    backend = backends[name]
    rows = [contract_inputs(backend.config, memory_frames, seed)[1] for seed, memory_frames in enumerate((1, 2, 2))]
    batched = {key: np.concatenate([row[key] for row in rows]) for key in rows[0]}
    predicted = backend.run("predictor", batched)
    located = backend.run("head", predicted)
    for index, row in enumerate(rows):
        single = backend.run("predictor", row)
        for key, value in single.items():
            np.testing.assert_allclose(predicted[key][index : index + 1], value, rtol=1e-5, atol=1e-5)
        for key, value in backend.run("head", single).items():
            np.testing.assert_allclose(located[key][index : index + 1], value, rtol=1e-5, atol=1e-5)


def test_targets_join_and_leave_mid_video(backends):
    backend = backends["onnxruntime"]
    images, boxes = moving_target_sequence(0, 12)
    tracker = MultiStreamTracker(backend)
    first = tracker.step({"cam": images[0]}, {"cam": [boxes[0]]})["cam"].added[0]
    seen: dict[int, list] = {}
    for index in range(1, 12):
        joining = {"cam": [OTHER_BOXES[0]]} if index == 4 else None
        step = tracker.step({"cam": images[index]}, joining)["cam"]
        assert step.frame_index == index
        if index == 4:
            (second,) = step.added
        for target_id, result in step.results.items():
            seen.setdefault(target_id, []).append(result.box)
        if index == 7:
            tracker.remove_target(first)
            assert tracker.targets("cam") == [second]
    np.testing.assert_allclose(seen[first], alone(backend, images, boxes[0])[:7], rtol=0, atol=PIXELS)
    np.testing.assert_allclose(seen[second], alone(backend, images[4:], OTHER_BOXES[0]), rtol=0, atol=PIXELS)


def test_a_stream_that_stalls_or_ends_does_not_stop_the_others(backends):
    backend = backends["onnxruntime"]
    images_a, boxes_a = moving_target_sequence(0, 12)
    images_b, boxes_b = moving_target_sequence(1, 12)
    tracker = MultiStreamTracker(backend)
    tracker.step({"a": images_a[0], "b": images_b[0]}, {"a": [boxes_a[0]], "b": [boxes_b[0], OTHER_BOXES[1]]})
    seen = {"a": [], "b": []}
    given_b = 1
    for index in range(1, 12):
        frames = {"a": images_a[index]}
        if index not in (3, 4) and given_b < 8:  # b stalls for two steps and ends after its eighth frame
            frames["b"] = images_b[given_b]
            given_b += 1
        steps = tracker.step(frames)
        assert sorted(steps) == sorted(frames)
        for stream, step in steps.items():
            seen[stream].append([result.box for result in step.results.values()])
        if given_b == 8 and "b" in tracker.streams:
            assert tracker.remove_stream("b") == [1, 2]
    assert tracker.streams == ["a"] and len(seen["b"]) == 7
    np.testing.assert_allclose(np.array(seen["a"])[:, 0], alone(backend, images_a, boxes_a[0]), rtol=0, atol=PIXELS)
    for index, box in enumerate((boxes_b[0], OTHER_BOXES[1])):
        np.testing.assert_allclose(np.array(seen["b"])[:, index], alone(backend, images_b[:8], box), rtol=0, atol=PIXELS)


def scripted(max_batch=None) -> ScriptedBackend:
    backend = ScriptedBackend([peak_map({(9, 9): 0.95})] * 50)
    backend.max_batch = max_batch
    return backend


def frame(height=240, width=320) -> np.ndarray:
    return np.full((height, width, 3), 90, np.uint8)


def test_refused_steps_change_nothing():
    tracker = MultiStreamTracker(scripted(max_batch=2))
    (target,) = tracker.step({"cam": frame()}, {"cam": [[100, 100, 30, 30]]})["cam"].added
    with pytest.raises(ToMPError, match="need the frame their boxes are on"):
        tracker.step({"other": frame()}, {"cam": [[10, 10, 20, 20]]})
    with pytest.raises(ToMPError, match="smaller than 1 pixel"):
        tracker.step({"cam": frame()}, {"cam": [[10, 10, 0, 20]]})
    with pytest.raises(ToMPError, match="Frame 1 of stream 'cam' is 160x120 but the stream started at 320x240"):
        tracker.step({"cam": frame(120, 160)})
    with pytest.raises(ToMPError, match="3 targets .* at most 2; rebuild the engines with 'tomp-deploy build --max-batch 3'"):
        tracker.step({"cam": frame()}, {"cam": [[10, 10, 20, 20], [50, 50, 20, 20]]})
    step = tracker.step({"cam": frame()})["cam"]
    assert step.frame_index == 1 and list(step.results) == [target] and tracker.streams == ["cam"]
    with pytest.raises(ToMPError, match="No target has id 7"):
        tracker.remove_target(7)
    with pytest.raises(ToMPError, match="No stream 'gone'"):
        tracker.targets("gone")


def test_a_step_without_targets_runs_no_model():
    backend = scripted()
    tracker = MultiStreamTracker(backend)
    steps = tracker.step({"cam": frame(), "door": frame(120, 160)})
    assert {stream: (step.frame_index, step.results, step.added) for stream, step in steps.items()} == {
        "cam": (0, {}, []),
        "door": (0, {}, []),
    }
    assert backend.features_made == 0 and backend.predictor_calls == []


def readme_pipeline() -> str:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    return re.search(r'```python\n("""Tracks one target per video source.*?)```', readme, re.DOTALL).group(1)


def test_the_readme_pipeline_tracks_two_sources_in_threads(backends, shipped_export, tmp_path):
    """The README's pipeline, run as written on two image sequences of different lengths (OpenCV reads
    them as videos): one JSON line per frame and target, each box that of the target tracked alone."""
    script = tmp_path / "pipeline.py"
    script.write_text(readme_pipeline())
    arguments, expected = [], {}
    for seed, count in ((0, 10), (1, 6)):
        images, boxes = moving_target_sequence(seed, count)
        folder = tmp_path / f"video{seed}"
        folder.mkdir()
        for index, image in enumerate(images):
            cv2.imwrite(str(folder / f"{index:04d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        source = str(folder / "%04d.png")
        arguments += [source, ",".join(str(v) for v in boxes[0])]
        expected[source] = alone(backends["onnxruntime"], images, boxes[0])
    run = subprocess.run(
        [sys.executable, str(script), "onnxruntime", str(shipped_export), *arguments], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert {line["source"] for line in lines} == set(expected)
    assert len({(line["source"], line["target"]) for line in lines}) == len({line["target"] for line in lines}) == 2
    for source, boxes in expected.items():
        mine = [line for line in lines if line["source"] == source]
        assert [line["frame"] for line in mine] == list(range(1, len(boxes) + 1))
        np.testing.assert_allclose([line["box"] for line in mine], boxes, rtol=0, atol=PIXELS)
