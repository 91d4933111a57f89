"""Part 2: frames per second end to end (the tracker's whole time per frame, as a caller's loop sees it)
and the median time of each stage, per model, precision and CUDA graphs on or off."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from benchmarks.gpu.budget import Deadline
from benchmarks.gpu.plan import Plan
from benchmarks.targets import squares_scene
from tomp_deploy.runtime.contract import STAGES
from tomp_deploy.runtime.driver import track_frames
from tomp_deploy.runtime.errors import ToMPError


def timed_frames(plan: Plan, model: str, precision: str, cuda_graphs: bool, deadline: Deadline) -> dict:
    """Tracks one square for the warm-up frames, then times frames until the count or the deadline is reached."""
    warmup, timed = plan.speed_frames
    images, boxes = squares_scene(1, warmup + timed + 1)
    backend = plan.open(model, precision, cuda_graphs)
    seconds, stages = [], {stage: [] for stage in STAGES}
    try:
        for step in track_frames(backend, images, boxes):
            if step.index <= warmup:
                continue
            seconds.append(step.seconds)
            for stage in STAGES:
                stages[stage].append(step.results[0].times.get(stage, 0.0))
            if deadline.expired() and len(seconds) >= 2:
                break
    finally:
        backend.close()
    return {
        "model": model,
        "precision": precision,
        "cuda_graphs": cuda_graphs,
        "frames": len(seconds),
        "fps": len(seconds) / sum(seconds),
        "median_ms": float(np.median(seconds) * 1000),
        "stage_ms": {stage: float(np.median(values) * 1000) for stage, values in stages.items()},
    }


def run(plan: Plan, deadline: Deadline, add: Callable[[dict], None], say: Callable[[str], None]) -> None:
    configurations = [
        (model, precision, graphs)
        for model in plan.speed_models
        for precision in plan.precisions
        for graphs in plan.cuda_graph_modes
    ]
    for index, (model, precision, graphs) in enumerate(configurations):
        measured = deadline.slice(len(configurations) - index)
        key = {"model": model, "precision": precision, "cuda_graphs": graphs}
        if measured.left() < 1.0:
            add({**key, "not_measured": "the speed part's share of the budget ran out"})
            continue
        try:
            row = timed_frames(plan, model, precision, graphs, measured)
        except ToMPError as exc:
            add({**key, "not_measured": str(exc)})
            continue
        add(row)
        say(
            f"speed {model} {precision} cuda graphs {'on' if graphs else 'off'}: {row['fps']:.1f} FPS over {row['frames']} frames"
        )
