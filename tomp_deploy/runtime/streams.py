"""Many targets in many video streams, tracked together: the embedding surface for video pipelines.

Each `step` takes the frames that are ready (any subset of the streams) and runs one batched backbone
call over every crop of the step (the search crops of the targets being tracked and the initial crops
of targets joining) and one batched predictor and head call over every target being tracked. A target
is tracked exactly as it would be alone: the batch only shares the calls. Streams and targets come and
go while running; a stream whose frame is not ready simply sits a step out.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from tomp_deploy.runtime.backends.base import Backend
from tomp_deploy.runtime.contract import BACKBONE, CROP, DECODE, REDETECT
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.geometry import Patch
from tomp_deploy.runtime.long_term import best_candidate, tile_candidates, tile_patches
from tomp_deploy.runtime.presets import TrackerParams
from tomp_deploy.runtime.target import TargetState, TrackResult, as_rgb_frame


@dataclass
class StreamStep:
    """What a step did in one stream."""

    frame_index: int
    """Index of this frame among the frames the stream has given (its first is 0)."""
    results: dict[int, TrackResult] = field(default_factory=dict)
    """Target id -> where it is on this frame, for the stream's targets that were already tracked."""
    added: list[int] = field(default_factory=list)
    """Ids of the targets that joined on this frame, in the order of their boxes."""


@dataclass
class _Stream:
    frame_shape: tuple[int, int]
    frames_seen: int = 0
    targets: list[int] = field(default_factory=list)


class MultiStreamTracker:
    """ToMP over several streams with several targets each; one backbone and one predictor+head call a step.

    `params` overrides the tracker parameters the backend's model records (`backend.tracker_params`): the one
    place they are resolved, for every target of every stream. Frames are RGB arrays as for
    `ToMPTracker`; a stream is any hashable key (a camera name, a file), and every frame of a stream must
    have the size of its first. Target ids are unique across streams.
    """

    def __init__(self, backend: Backend, params: TrackerParams | None = None):
        self.backend = backend
        self.params = params or backend.tracker_params
        self._streams: dict[Hashable, _Stream] = {}
        self._targets: dict[int, TargetState] = {}
        self._ids = itertools.count()

    @property
    def streams(self) -> list[Hashable]:
        return list(self._streams)

    def targets(self, stream: Hashable) -> list[int]:
        """Ids of the targets tracked in `stream`, oldest first."""
        return list(self._stream(stream).targets)

    def step(
        self, frames: Mapping[Hashable, np.ndarray], new_targets: Mapping[Hashable, Sequence] | None = None
    ) -> dict[Hashable, StreamStep]:
        """Tracks the targets of every stream given a frame, and starts the targets of `new_targets`
        (stream -> initial (x, y, w, h) boxes on this step's frame of that stream; they are tracked from the
        stream's next frame on). Returns what happened per stream given a frame. Nothing changes when a
        frame or a box is refused."""
        started = time.perf_counter()
        new_targets = new_targets or {}
        orphans = [stream for stream in new_targets if stream not in frames]
        if orphans:
            raise ToMPError(f"New targets for stream(s) {orphans} need the frame their boxes are on in the same step.")
        frames = {stream: self._checked_frame(stream, frame) for stream, frame in frames.items()}
        joining = [
            (stream, TargetState(self.backend.config, self.params, frames[stream].shape, box, self.backend.new_memory()))
            for stream, boxes in new_targets.items()
            for box in boxes
        ]
        self._check_capacity(len(joining))
        tracked = [
            (stream, target_id) for stream in frames if stream in self._streams for target_id in self._streams[stream].targets
        ]
        patches = [self._targets[target_id].search_patch(frames[stream]) for stream, target_id in tracked]
        patches += [state.initial_patch(frames[stream]) for stream, state in joining]
        cropped = time.perf_counter()
        features = self._extract(patches) if patches else None
        shared = {CROP: cropped - started, BACKBONE: time.perf_counter() - cropped}

        steps = {}
        for stream, frame in frames.items():
            record = self._streams.setdefault(stream, _Stream(frame.shape[:2]))
            steps[stream] = StreamStep(record.frames_seen)
            record.frames_seen += 1
        states = [self._targets[target_id] for _, target_id in tracked]
        memory_frames = [int(state.memory_valid.sum()) for state in states]
        located = self.backend.locate([state.query(features, index) for index, state in enumerate(states)]) if states else []
        for index, ((stream, target_id), state, found) in enumerate(zip(tracked, states, located)):
            decode_started = time.perf_counter()
            result = state.update(patches[index], features, index, found.scores, found.ltrb, frames[stream])
            result.times = {**shared, **found.seconds, DECODE: time.perf_counter() - decode_started}
            if state.redetection_due():
                result = self._redetect(state, frames[stream], result)
            result.memory_frames = memory_frames[index]
            steps[stream].results[target_id] = result
        for index, (stream, state) in enumerate(joining, start=len(tracked)):
            state.set_initial_feature(features, index)
            target_id = next(self._ids)
            self._targets[target_id] = state
            self._streams[stream].targets.append(target_id)
            steps[stream].added.append(target_id)
        return steps

    def remove_target(self, target_id: int) -> None:
        """Stops tracking a target (its memory is released)."""
        if target_id not in self._targets:
            raise ToMPError(f"No target has id {target_id}; the ids tracked now are {sorted(self._targets)}.")
        del self._targets[target_id]
        for stream in self._streams.values():
            if target_id in stream.targets:
                stream.targets.remove(target_id)

    def remove_stream(self, stream: Hashable) -> list[int]:
        """Forgets a stream that ended, with its targets; returns their ids."""
        removed = self._stream(stream).targets
        for target_id in removed:
            del self._targets[target_id]
        del self._streams[stream]
        return removed

    def _stream(self, stream: Hashable) -> _Stream:
        if stream not in self._streams:
            raise ToMPError(f"No stream {stream!r}; the streams are {list(self._streams)}.")
        return self._streams[stream]

    def _checked_frame(self, stream: Hashable, frame: np.ndarray) -> np.ndarray:
        frame = as_rgb_frame(frame)
        record = self._streams.get(stream)
        if record is not None and frame.shape[:2] != record.frame_shape:
            height, width = record.frame_shape
            raise ToMPError(
                f"Frame {record.frames_seen} of stream {stream!r} is {frame.shape[1]}x{frame.shape[0]} but the stream "
                f"started at {width}x{height}; a stream is one video of one frame size. Resize the frames or "
                "give the new video as another stream."
            )
        return frame

    def _check_capacity(self, joining: int) -> None:
        """Every target may be in one step, so the backend must take them all in one batch."""
        limit, wanted = self.backend.max_batch, len(self._targets) + joining
        if limit is not None and wanted > limit:
            raise ToMPError(
                f"{wanted} targets need batches of {wanted}, but this {self.backend.name} model takes at "
                f"most {limit}; rebuild the engines with 'tomp-deploy build --max-batch {wanted}' "
                "(or track fewer targets)."
            )

    def _redetect(self, state: TargetState, frame: np.ndarray, result: TrackResult) -> TrackResult:
        """Long-term mode's whole-frame search for an absent target (`runtime.long_term`): the tiles as
        batches of crops and of targets sharing its memory, at most `max_batch` a call; its time is
        `TrackResult.times[REDETECT]`."""
        started = time.perf_counter()
        config = self.backend.config
        patches = tile_patches(frame, state.trusted_scale * config.search_size, config.search_size)
        chunk = self.backend.max_batch or len(patches)
        located = []
        for first in range(0, len(patches), chunk):
            part = patches[first : first + chunk]
            features = self._extract(part)
            located += self.backend.locate([state.query(features, index) for index in range(len(part))])
        candidates = tile_candidates(
            patches, located, frame, state.features, config.search_size, config.feature_stride, self.params
        )
        result.candidates = candidates
        candidate = best_candidate(candidates, self.params)
        if candidate is not None:
            result = state.redetected(candidate, result)
        result.times[REDETECT] = time.perf_counter() - started
        return result

    def _extract(self, patches: list[Patch]):
        batch = np.stack([p.pixels.transpose(2, 0, 1) for p in patches]).astype(np.float32)
        return self.backend.extract(batch)
