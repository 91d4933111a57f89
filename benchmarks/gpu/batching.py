"""Part 3: many targets at once. One `MultiTargetTracker` (one batched backbone call for all crops, one
predictor+head call for all targets) against one `ToMPTracker` per target run one after the other (what a
caller without batching does), for 1..32 targets in one video and for several streams of several targets
(`MultiStreamTracker`). Both ways track the same frames in lockstep, taking turns to go first."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator

import numpy as np

from benchmarks.gpu.budget import Deadline
from benchmarks.gpu.plan import Plan
from benchmarks.targets import squares_scene
from tomp_deploy.runtime.backends.base import Backend
from tomp_deploy.runtime.driver import track_frames
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.streams import MultiStreamTracker
from tomp_deploy.runtime.tracker import ToMPTracker

Scene = tuple[list[np.ndarray], list]
"""A video's frames and its targets' initial boxes."""


def one_tracker_per_target(backend: Backend, scenes: list[Scene]) -> Iterator[float]:
    """Seconds per frame of every scene with one tracker per target, each tracker called in turn."""
    trackers = [(scene, ToMPTracker(backend)) for scene in range(len(scenes)) for _ in scenes[scene][1]]
    boxes = [box for _, scene_boxes in scenes for box in scene_boxes]
    for index in range(len(scenes[0][0])):
        started = time.perf_counter()
        for (scene, tracker), box in zip(trackers, boxes):
            frame = scenes[scene][0][index]
            if index == 0:
                tracker.initialize(frame, box)
            else:
                tracker.track(frame)
        yield time.perf_counter() - started


def multi_stream(backend: Backend, scenes: list[Scene]) -> Iterator[float]:
    """Seconds per step of one `MultiStreamTracker` over every scene at once."""
    tracker = MultiStreamTracker(backend)
    for index in range(len(scenes[0][0])):
        frames = {stream: images[index] for stream, (images, _) in enumerate(scenes)}
        started = time.perf_counter()
        tracker.step(frames, {stream: boxes for stream, (_, boxes) in enumerate(scenes)} if index == 0 else None)
        yield time.perf_counter() - started


def lockstep_ms(ways: dict[str, Iterator[float]], warmup: int, deadline: Deadline) -> dict[str, float]:
    """Median milliseconds per frame of each way after `warmup` frames; stops at the deadline (2 frames at least)."""
    seconds: dict[str, list[float]] = {way: [] for way in ways}
    for index in itertools.count():
        try:
            for way in list(ways) if index % 2 == 0 else list(ways)[::-1]:
                step = next(ways[way])
                if index > warmup:
                    seconds[way].append(step)
        except StopIteration:
            break
        if deadline.expired() and len(seconds["batched"]) >= 2:
            break
    return {way: float(np.median(values) * 1000) for way, values in seconds.items()}


def row(targets: int, ms: dict[str, float]) -> dict:
    return {
        "targets": targets,
        "batched_ms": ms["batched"],
        "one_at_a_time_ms": ms["one_at_a_time"],
        "fps_per_target": 1000 / ms["batched"],
        "one_at_a_time_fps_per_target": 1000 / ms["one_at_a_time"],
        "targets_per_s": targets * 1000 / ms["batched"],
        "one_at_a_time_targets_per_s": targets * 1000 / ms["one_at_a_time"],
        "speedup": ms["one_at_a_time"] / ms["batched"],
    }


def measure_targets(backend: Backend, plan: Plan, targets: int, deadline: Deadline) -> dict:
    warmup, frames = plan.batching_frames
    images, boxes = squares_scene(targets, warmup + frames + 1)
    ways = {
        "batched": (step.seconds for step in track_frames(backend, images, boxes)),
        "one_at_a_time": one_tracker_per_target(backend, [(images, boxes)]),
    }
    return row(targets, lockstep_ms(ways, warmup, deadline))


def measure_streams(backend: Backend, plan: Plan, deadline: Deadline) -> dict:
    warmup, frames = plan.batching_frames
    streams, per_stream = plan.streams
    scenes = [squares_scene(per_stream, warmup + frames + 1, seed=stream) for stream in range(streams)]
    ways = {"batched": multi_stream(backend, scenes), "one_at_a_time": one_tracker_per_target(backend, scenes)}
    return {"streams": streams, **row(streams * per_stream, lockstep_ms(ways, warmup, deadline))}


def run(plan: Plan, deadline: Deadline, add: Callable[[dict], None], say: Callable[[str], None]) -> None:
    model, precision = plan.batching_model, plan.precisions[0]
    try:
        backend = plan.open(model, precision, cuda_graphs=plan.on_gpu)
    except ToMPError as exc:
        add({"model": model, "not_measured": str(exc)})
        return
    setting = {"model": model, "precision": precision, "cuda_graphs": plan.on_gpu}
    counts = plan.target_counts
    try:
        for index, targets in enumerate(counts):
            measured = deadline.slice(len(counts) + 1 - index)
            if measured.left() < 1.0:
                add({**setting, "targets": targets, "not_measured": "the batching part's share of the budget ran out"})
                continue
            result = {**setting, **measure_targets(backend, plan, targets, measured)}
            add(result)
            say(
                f"batching {targets} targets: {result['batched_ms']:.1f} ms/frame batched, "
                f"{result['one_at_a_time_ms']:.1f} one at a time ({result['speedup']:.2f}x)"
            )
        streams, per_stream = plan.streams
        if deadline.left() < 1.0:
            add(
                {
                    **setting,
                    "streams": streams,
                    "targets": streams * per_stream,
                    "not_measured": "the batching part's share of the budget ran out",
                }
            )
            return
        result = {**setting, **measure_streams(backend, plan, deadline.slice(1))}
        add(result)
        say(f"batching {streams} streams x {per_stream} targets: {result['speedup']:.2f}x")
    finally:
        backend.close()
