"""Running `bench`: each backend in turn tracks the same sequences in a process of its own, frames streamed
from disk, and is timed per frame end to end (what a caller of the tracker sees) with its stages beside; the
reference's first contract calls are recorded (a bounded number) and replayed on every other backend.

A process per backend, because thread pools outlive the backend that made them: in one process the torch
row lost 12% of its speed to the ONNX Runtime and OpenVINO pools of a multi-backend run (and far more on a
busy machine), which inflated every speed-up measured against it. Each process is forked from a fresh
server process (multiprocessing's forkserver) that has run no compute, so no library starts with another's
threads, and each backend takes the same thread budget (`--threads`, one per physical core by default).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import queue
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tomp_deploy.checks.parity import OutputKey, compare_outputs, contract_outputs
from tomp_deploy.evaluation.datasets import Sequence
from tomp_deploy.runtime.backends import BackendOptions, backend_spec, open_backend
from tomp_deploy.runtime.backends.recording import RecordedCalls, RecordingBackend
from tomp_deploy.runtime.contract import REDETECT, STAGES
from tomp_deploy.runtime.driver import track_frames
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.sources import FrameSource

REFERENCE = "torch"
LONG_TERM_SUFFIX = " long-term"
"""A backend's second row in `bench --long-term`: the same backend tracking in long-term mode."""
RECORDED_CALLS = 5
"""Contract calls of each graph recorded from the reference and replayed on the others (score error)."""
POLL_SECONDS = 1.0
"""How often the parent looks whether a backend's process is still alive while it waits for news."""


@dataclass
class BackendRun:
    status: str = "ok"
    error: str | None = None
    boxes: dict[str, np.ndarray] = field(default_factory=dict)
    frame_seconds: list[float] = field(default_factory=list)
    """The tracker's time per frame, end to end (reading the frame excluded), warm-up frames left out."""
    search_seconds: list[float | None] = field(default_factory=list)
    """Per timed frame, long-term mode's whole-frame search time where one ran (part of the frame's time)."""
    stage_seconds: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    compute_precision: str | None = None
    """The precision a backend computes in (what openvino's auto chose), where it says."""
    threads: int | None = None
    """The compute threads of a CPU backend."""
    score_error: float | None = None
    """Largest relative error of the score map against the reference on the recorded calls."""


@dataclass(frozen=True)
class TrackingJob:
    """What each backend's process tracks: the sequences, with the backend options, timing all frames but the
    first `warmup`, in long-term mode or not."""

    sequences: list[Sequence]
    options: BackendOptions
    warmup: int
    long_term: bool = False


@dataclass
class ProcessOutcome:
    """What a backend's process sends back: its run, and the contract outputs on the recorded calls (the
    reference also sends the calls it recorded)."""

    run: BackendRun
    outputs: dict[OutputKey, list[np.ndarray]] | None = None
    recorded: RecordedCalls | None = None


def track_timed(
    backend, sequences: list[Sequence], warmup: int, on_frame: Callable[[], None], long_term: bool = False
) -> BackendRun:
    """Tracks every sequence with `backend` (in long-term mode where asked); frames are decoded one at a time
    as the tracker asks for them. `on_frame` is called after each tracked frame (initial frames are not
    tracked)."""
    run = BackendRun(compute_precision=getattr(backend, "precision", None), threads=getattr(backend, "threads", None))
    params = dataclasses.replace(backend.tracker_params, long_term=True) if long_term else None
    timed = 0
    for sequence in sequences:
        boxes = []
        frames = (frame.image for frame in FrameSource.of_images(sequence.frames))
        for step in track_frames(backend, frames, [sequence.init_box], params):
            boxes.append(step.boxes[0])
            if step.index == 0:
                continue
            timed += 1
            if timed > warmup:
                run.frame_seconds.append(step.seconds)
                run.search_seconds.append(step.results[0].times.get(REDETECT))
                for stage in STAGES:
                    run.stage_seconds[stage].append(step.results[0].times[stage])
            on_frame()
        run.boxes[sequence.name] = np.array(boxes)
    return run


def run_backends(
    names: list[str],
    model_for: Callable[[str], Path],
    job: TrackingJob,
    progress: Callable[[str], None],
    on_frame: Callable[[], None],
) -> dict[str, BackendRun]:
    """Every backend of `names` (the reference first) over the job's sequences, each in its own process
    with the job's options it takes, and for a long-term job a second time in long-term mode (as `<name>
    long-term`). A backend whose model cannot be made or that cannot be opened is `skipped`, one that fails
    while running `failed`; the others still run."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    runs: dict[str, BackendRun] = {}
    reference: ProcessOutcome | None = None
    for name in names:
        progress(f"{name}: loading")
        try:
            model = model_for(name)
        except ToMPError as exc:
            runs[name] = BackendRun(status="skipped", error=str(exc))
            continue
        recorded = reference.recorded if reference is not None else None
        taken = dataclasses.replace(job, options=job.options.only_for(backend_spec(name)), long_term=False)
        outcome = _in_own_process(context, _backend_process, (name, model, taken, recorded), progress, on_frame)
        runs[name] = outcome.run
        if name == REFERENCE and outcome.run.status == "ok":
            reference = outcome
            outcome.run.score_error = 0.0
        elif reference is not None and outcome.outputs is not None:
            rows = compare_outputs(reference.outputs, outcome.outputs)
            outcome.run.score_error = next(r.max_rel for r in rows if r.output == "scores")
        if job.long_term:
            arguments = (name, model, dataclasses.replace(taken, long_term=True), None)
            runs[name + LONG_TERM_SUFFIX] = _in_own_process(context, _backend_process, arguments, progress, on_frame).run
    return runs


def _in_own_process(
    context, target: Callable, arguments: tuple, progress: Callable[[str], None], on_frame: Callable[[], None]
) -> ProcessOutcome:
    """Runs `target(*arguments, news)` in a new process, relaying its news to `progress` and `on_frame` until
    it sends its outcome; a process that ends without one is a failed run."""
    news = context.Queue()
    process = context.Process(target=target, args=(*arguments, news), daemon=True)
    process.start()
    try:
        while True:
            try:
                kind, payload = news.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if process.is_alive():
                    continue
                return ProcessOutcome(
                    BackendRun(
                        status="failed", error=(f"the backend's process ended without a result (exit code {process.exitcode})")
                    )
                )
            if kind == "frame":
                on_frame()
            elif kind == "progress":
                progress(payload)
            else:
                return payload
    finally:
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
        news.close()


def _backend_process(name: str, model: Path, job: TrackingJob, recorded: RecordedCalls | None, news) -> None:
    """One backend's whole bench run, in its own process; the outcome goes back on `news`. The reference's
    run in the default mode records its first calls."""
    try:
        backend = open_backend(name, model, job.options)
    except ToMPError as exc:
        news.put(("outcome", ProcessOutcome(BackendRun(status="skipped", error=str(exc)))))
        return
    try:
        with backend:
            news.put(("progress", f"{name}{LONG_TERM_SUFFIX if job.long_term else ''}: tracking"))
            recording = name == REFERENCE and not job.long_term
            if recording:
                backend = RecordingBackend(backend, keep=RECORDED_CALLS)
            run = track_timed(backend, job.sequences, job.warmup, lambda: news.put(("frame", None)), job.long_term)
            if recording:
                recorded = backend.first_calls(RECORDED_CALLS)
                backend = backend.inner
            outputs = contract_outputs(backend, recorded) if recorded is not None else None
            news.put(("outcome", ProcessOutcome(run, outputs, recorded if recording else None)))
    except Exception as exc:  # a backend failing mid-run is reported; the others still run
        traceback.print_exc(limit=2)
        news.put(("outcome", ProcessOutcome(BackendRun(status="failed", error=f"{exc.__class__.__name__}: {exc}"))))
