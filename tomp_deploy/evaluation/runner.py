"""Runs a tracker over every sequence of a dataset, writing one result file per sequence (resumable).

A results folder records the run that fills it (`run.json`: model fingerprint, backend, tracker
overrides); it resumes only that run, so two models of one file name never share results. Sequences are
tracked here, in worker processes or on a cluster (`ray_runner.RayCluster`); this process alone writes
results.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Iterable, Iterator
from pathlib import Path

from tomp_deploy.evaluation.datasets import Sequence
from tomp_deploy.evaluation.sequence_jobs import (
    SequenceCluster,
    SequenceFailure,
    SequenceResult,
    TrackerSetup,
    track_or_fail,
)
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.files import ensure_folder, write_atomically
from tomp_deploy.runtime.presets import TrackerParams

_worker_backend = None
_worker_params: TrackerParams | None = None


def result_is_complete(path: Path, sequence: Sequence) -> bool:
    """Result files are written whole (renamed into place), so one with a line per frame is finished."""
    if not path.is_file():
        return False
    return sum(1 for line in path.read_text().splitlines() if line.strip()) == len(sequence.frames)


def _init_worker(setup: TrackerSetup) -> None:
    global _worker_backend, _worker_params
    _worker_backend, _worker_params = setup.open()


def _track_in_worker(sequence: Sequence) -> SequenceResult | SequenceFailure:
    return track_or_fail(_worker_backend, sequence, params=_worker_params)


RUN_RECORD = "run.json"


def claim_results(results: Path, setup: TrackerSetup) -> None:
    """Makes `results` the folder of this run, or refuses one that holds another run's results."""
    ensure_folder(results, "--results")
    record = setup.record()
    path = results / RUN_RECORD
    if path.is_file():
        try:
            previous = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            previous = {}
        differences = [key for key in set(record) | set(previous) if key != "model" and previous.get(key) != record.get(key)]
        if differences:
            raise ToMPError(
                f"{results} holds results of another run (its {', '.join(differences)} differ from this "
                "one's), which must not be resumed: pass --results NEW_FOLDER, or remove the folder."
            )
        return
    if any(results.glob("*.txt")):
        raise ToMPError(
            f"{results} holds result files but no {RUN_RECORD}, so nothing says which model made them: "
            "pass --results NEW_FOLDER, or remove them."
        )
    write_atomically(path, json.dumps(record, indent=2), "--results")


def evaluate(
    sequences: list[Sequence],
    setup: TrackerSetup,
    results: Path,
    workers: int = 1,
    on_frame=None,
    on_sequence=None,
    cluster: SequenceCluster | None = None,
) -> list[str]:
    """Tracks every sequence without a complete result file of this run, here (`workers` 1), in `workers`
    processes, or as tasks on a cluster; returns the names it ran. A sequence that fails does not stop
    the others: their results are written, and then one error names every failed sequence."""
    if type(workers) is not int or workers < 1:
        raise ToMPError(f"--workers {workers!r}: give 1 (track here) or more processes.")
    claim_results(results, setup)
    todo = [s for s in sequences if not result_is_complete(results / f"{s.name}.txt", s)]
    if not todo:
        return []
    if cluster is not None:
        _write_each(cluster.track(todo, setup), results, on_sequence)
    elif workers <= 1:
        _write_each(_track_here(todo, setup, on_frame), results, on_sequence)
    else:
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, initializer=_init_worker, initargs=(setup,)) as pool:
            _write_each(pool.imap_unordered(_track_in_worker, todo), results, on_sequence)
    return [s.name for s in todo]


def _track_here(todo: list[Sequence], setup: TrackerSetup, on_frame) -> Iterator[SequenceResult | SequenceFailure]:
    backend, params = setup.open()
    with backend:
        for sequence in todo:
            yield track_or_fail(backend, sequence, on_frame, params)


def _write_each(finished: Iterable[SequenceResult | SequenceFailure], results: Path, on_sequence) -> None:
    """Writes each sequence's files as soon as it is tracked, so that a killed run keeps them; after the
    last, raises one error naming the sequences that failed."""
    failures = []
    for result in finished:
        if isinstance(result, SequenceFailure):
            failures.append(result)
            continue
        result.write(results)
        if on_sequence:
            on_sequence(result.name)
    if failures:
        listed = "\n  ".join(failure.reason for failure in failures[:10])
        more = f"\n  ... and {len(failures) - 10} more" if len(failures) > 10 else ""
        raise ToMPError(
            f"{len(failures)} sequence(s) could not be tracked (the results of the others are in {results}; "
            f"a new run with the same options tracks only what is missing):\n  {listed}{more}"
        )
