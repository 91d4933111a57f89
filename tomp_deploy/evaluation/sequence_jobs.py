"""One sequence's tracking job, whatever runs it (this process, a worker process, a Ray task): the setup
every process opens, the result files it returns as text, and a failure the user can fix returned
instead of raised. The runner and the Ray runner both build on it; neither imports the other."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from tomp_deploy.evaluation.datasets import Sequence
from tomp_deploy.evaluation.longterm import confidence_path, format_confidence
from tomp_deploy.runtime.backends.options import BackendOptions
from tomp_deploy.runtime.box_text import format_box
from tomp_deploy.runtime.driver import track_frames
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.files import write_atomically
from tomp_deploy.runtime.manifests.engine import ENGINE_MANIFEST_FILE
from tomp_deploy.runtime.manifests.export import EXPORT_MANIFEST_FILE
from tomp_deploy.runtime.manifests.json_files import file_sha256
from tomp_deploy.runtime.overrides import overridden_tracker_params
from tomp_deploy.runtime.presets import TrackerParams
from tomp_deploy.runtime.sources import FrameSource


@dataclass(frozen=True)
class SequenceResult:
    """A tracked sequence's result files, as text."""

    name: str
    boxes: str
    times: str
    confidences: str

    def write(self, results: Path) -> None:
        """The boxes file last: it marks the sequence finished."""
        write_atomically(results / f"{self.name}_time.txt", self.times)
        write_atomically(confidence_path(results / f"{self.name}.txt"), self.confidences)
        write_atomically(results / f"{self.name}.txt", self.boxes)


@dataclass(frozen=True)
class SequenceFailure:
    """A sequence that could not be tracked (an unreadable frame, a bad box), and why."""

    name: str
    reason: str


def track_or_fail(
    backend, sequence: Sequence, on_frame: Callable[[], None] | None = None, params: TrackerParams | None = None
) -> SequenceResult | SequenceFailure:
    """`track_sequence`, with a failure the user can fix returned instead of raised, so that one broken
    sequence does not stop the others (in this process, a worker or a Ray task)."""
    try:
        return track_sequence(backend, sequence, on_frame, params)
    except ToMPError as exc:
        return SequenceFailure(sequence.name, str(exc))


def track_sequence(
    backend, sequence: Sequence, on_frame: Callable[[], None] | None = None, params: TrackerParams | None = None
) -> SequenceResult:
    boxes, times, confidences = [], [], []
    frames = (frame.image for frame in FrameSource.of_images(sequence.frames))
    try:
        for step in track_frames(backend, frames, [sequence.init_box], params):
            boxes.append(step.boxes[0])
            times.append(step.seconds)
            confidences.append(step.confidences[0])
            if on_frame:
                on_frame()
    except ToMPError as exc:
        raise ToMPError(f"Sequence {sequence.name}: {exc}") from None
    return SequenceResult(
        sequence.name,
        "".join(format_box(b) + "\n" for b in np.asarray(boxes)),
        "".join(f"{t:.6f}\n" for t in times),
        "".join(format_confidence(c) + "\n" for c in confidences),
    )


@dataclass(frozen=True)
class TrackerSetup:
    """What every process tracking a dataset opens: a backend with its options on a model, and the tracker
    parameters the model records with `tracker_overrides` (key=value) applied."""

    backend: str
    model: str
    options: BackendOptions = BackendOptions()
    tracker_overrides: tuple[str, ...] = ()

    def open(self):
        """The backend, and the tracker parameters (None: as the model records them)."""
        from tomp_deploy.runtime.backends import open_backend

        backend = open_backend(self.backend, self.model, self.options)
        return backend, overridden_tracker_params(backend.tracker_params, list(self.tracker_overrides))

    def record(self) -> dict:
        """What a results folder records of the run (`run.json`); backend options only where some were
        given, so that folders of runs without them still resume."""
        record = {
            "model": self.model,
            "model_sha256": model_fingerprint(self.model),
            "backend": self.backend,
            "tracker_overrides": sorted(self.tracker_overrides),
        }
        if self.options.given():
            record["backend_options"] = dict(sorted(self.options.given().items()))
        return record


def model_fingerprint(model: str | Path) -> str:
    """sha256 of a checkpoint file, or of an export or engine folder's manifests (which hold its files' hashes)."""
    path = Path(model)
    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()
    for name in (EXPORT_MANIFEST_FILE, ENGINE_MANIFEST_FILE):
        if (path / name).is_file():
            digest.update((path / name).read_bytes())
    return digest.hexdigest()


class SequenceCluster(Protocol):
    """Where sequences are tracked away from the driver (a Ray cluster): results arrive as tasks finish."""

    def track(self, todo: list[Sequence], setup: TrackerSetup) -> Iterator[SequenceResult | SequenceFailure]: ...
