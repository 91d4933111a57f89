"""Runs a tracker over every sequence of a dataset, writing one result file per sequence (resumable)."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tomp_deploy.datasets import Sequence
from tomp_deploy.errors import ToMPError

_worker_backend = None


def result_is_complete(path: Path, sequence: Sequence) -> bool:
    """Result files are written whole (renamed into place), so one with a line per frame is finished."""
    if not path.is_file():
        return False
    return sum(1 for line in path.read_text().splitlines() if line.strip()) == len(sequence.frames)


def _write_atomically(path: Path, lines: list[str]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text("\n".join(lines) + "\n")
    os.replace(temporary, path)


def run_sequence(backend, sequence: Sequence, results: Path, on_frame: Callable[[], None] | None = None) -> str:
    import cv2

    from tomp_deploy.tracker import ToMPTracker

    tracker = ToMPTracker(backend)
    boxes, times = [], []
    for index, frame_path in enumerate(sequence.frames):
        image = cv2.imread(str(frame_path), cv2.IMREAD_COLOR)
        if image is None:
            raise ToMPError(f"{sequence.name}: frame {index} ({frame_path}) cannot be read; the dataset is incomplete.")
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        started = time.perf_counter()
        if index == 0:
            tracker.initialize(image, sequence.init_box)
            box = sequence.init_box
        else:
            box = tracker.track(image).box
        times.append(time.perf_counter() - started)
        boxes.append(box)
        if on_frame:
            on_frame()
    _write_atomically(results / f"{sequence.name}_time.txt", [f"{t:.6f}" for t in times])
    _write_atomically(results / f"{sequence.name}.txt", [",".join(f"{v:.4f}" for v in b) for b in np.asarray(boxes)])
    return sequence.name


def _init_worker(backend_name: str, model: str, device: str) -> None:
    global _worker_backend
    from tomp_deploy.backends import open_backend

    _worker_backend = open_backend(backend_name, model, device=device)


def _run_in_worker(arguments) -> str:
    sequence, results = arguments
    return run_sequence(_worker_backend, sequence, results)


def evaluate(sequences: list[Sequence], backend_name: str, model: str, results: Path, device: str = "cpu",
             workers: int = 1, on_frame=None, on_sequence=None) -> list[str]:
    """Tracks every sequence without a complete result file; returns the names it ran."""
    from tomp_deploy.backends import open_backend

    results.mkdir(parents=True, exist_ok=True)
    todo = [s for s in sequences if not result_is_complete(results / f"{s.name}.txt", s)]
    if not todo:
        return []
    if workers <= 1:
        backend = open_backend(backend_name, model, device=device)
        for sequence in todo:
            run_sequence(backend, sequence, results, on_frame)
            if on_sequence:
                on_sequence(sequence.name)
    else:
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, initializer=_init_worker, initargs=(backend_name, str(model), device)) as pool:
            for name in pool.imap_unordered(_run_in_worker, [(s, results) for s in todo]):
                if on_sequence:
                    on_sequence(name)
    return [s.name for s in todo]
