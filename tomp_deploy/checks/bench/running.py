"""Running `bench`: each backend in turn tracks the same sequences, frames streamed from disk, and is timed
per frame end to end (what a caller of the tracker sees) with its stages beside; the reference's first
contract calls are recorded (a bounded number) and replayed on every other backend."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tomp_deploy.checks.parity import compare_contract
from tomp_deploy.evaluation.datasets import Sequence
from tomp_deploy.runtime.backends import open_backend
from tomp_deploy.runtime.backends.recording import RecordedCalls, RecordingBackend
from tomp_deploy.runtime.driver import track_frames
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.sources import FrameSource
from tomp_deploy.runtime.tracker import STAGES

REFERENCE = "torch"
RECORDED_CALLS = 5
"""Contract calls of each graph recorded from the reference and replayed on the others (score error)."""


@dataclass
class BackendRun:
    status: str = "ok"
    error: str | None = None
    boxes: dict[str, np.ndarray] = field(default_factory=dict)
    frame_seconds: list[float] = field(default_factory=list)
    """The tracker's time per frame, end to end (reading the frame excluded)."""
    steady_seconds: list[float] = field(default_factory=list)
    """Frame times once the memory is full (every slot holds a frame): the cost of long sequences."""
    stage_seconds: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    compute_precision: str | None = None
    """The precision a backend computes in (what openvino's auto chose), where it says."""
    score_error: float | None = None
    """Largest relative error of the score map against the reference on the recorded calls."""


def track_timed(backend, sequences: list[Sequence], warmup: int, on_frame: Callable[[], None]) -> BackendRun:
    """Tracks every sequence with `backend`; frames are decoded one at a time as the tracker asks for them.
    `on_frame` is called after each tracked frame (initial frames are not tracked)."""
    run = BackendRun()
    timed = 0
    for sequence in sequences:
        boxes = []
        frames = (frame.image for frame in FrameSource.of_images(sequence.frames))
        for step in track_frames(backend, frames, [sequence.init_box]):
            boxes.append(step.boxes[0])
            if step.index == 0:
                continue
            timed += 1
            if timed > warmup:
                _record_times(run, step, backend.config.memory_size)
            on_frame()
        run.boxes[sequence.name] = np.array(boxes)
    return run


def _record_times(run: BackendRun, step, memory_size: int) -> None:
    result = step.results[0]
    run.frame_seconds.append(step.seconds)
    if result.memory_frames == memory_size:
        run.steady_seconds.append(step.seconds)
    for stage in STAGES:
        run.stage_seconds[stage].append(result.times[stage])


def run_backends(names: list[str], model_for: Callable[[str], Path], sequences: list[Sequence], device: str,
                 warmup: int, progress: Callable[[str], None], on_frame: Callable[[], None]) -> dict[str, BackendRun]:
    """Every backend of `names` (the reference first) over `sequences`. A backend that cannot be opened is
    `skipped`, one that fails while running `failed`; the others still run."""
    runs: dict[str, BackendRun] = {}
    reference: RecordingBackend | None = None
    try:
        for name in names:
            progress(f"{name}: loading")
            try:
                backend = open_backend(name, model_for(name), device=device)
            except ToMPError as exc:
                runs[name] = BackendRun(status="skipped", error=str(exc))
                continue
            if name == REFERENCE:
                reference = backend = RecordingBackend(backend, keep=RECORDED_CALLS)
            reference_ran = REFERENCE in runs and runs[REFERENCE].status == "ok"
            recorded = reference.first_calls(RECORDED_CALLS) if reference_ran else None
            progress(f"{name}: tracking")
            runs[name] = _run_one(backend, sequences, warmup, on_frame, reference, recorded)
            if name != REFERENCE:
                backend.close()
    finally:
        if reference is not None:
            reference.close()
    return runs


def _run_one(backend, sequences, warmup, on_frame, reference: RecordingBackend | None,
             recorded: RecordedCalls | None) -> BackendRun:
    try:
        run = track_timed(backend, sequences, warmup, on_frame)
        run.compute_precision = getattr(backend, "precision", None)
        if recorded is not None:
            rows = compare_contract(reference.inner, backend, recorded)
            run.score_error = next(r.max_rel for r in rows if r.output == "scores")
        elif backend is reference:
            run.score_error = 0.0
        return run
    except Exception as exc:  # a backend failing mid-run is reported; the others still run
        traceback.print_exc(limit=2)
        return BackendRun(status="failed", error=f"{exc.__class__.__name__}: {exc}")
