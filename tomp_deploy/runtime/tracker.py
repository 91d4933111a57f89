"""ToMP's two-stage online tracker over any backend (numpy + OpenCV only; no torch): one target
(`ToMPTracker`) or several in one video (`MultiTargetTracker`). Both run on `MultiStreamTracker` with
one stream; what a target does each frame is in `target.TargetState`.
"""

from __future__ import annotations

import numpy as np

from tomp_deploy.runtime.backends.base import Backend
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.presets import TrackerParams
from tomp_deploy.runtime.streams import MultiStreamTracker
from tomp_deploy.runtime.target import TrackResult, as_rgb_frame

VIDEO = "video"
"""The one stream of a single-video tracker."""


class MultiTargetTracker:
    """Several independent targets in one video: a view of `MultiStreamTracker` with one stream. Their crops
    go through one batched backbone call and the targets through one batched predictor and head call.
    `params` overrides the tracker parameters the backend's model records (`backend.tracker_params`)."""

    def __init__(self, backend: Backend, params: TrackerParams | None = None):
        self._streams = MultiStreamTracker(backend, params)
        self._frame_shape: tuple[int, int] | None = None
        self.frame_index = 0

    @property
    def params(self) -> TrackerParams:
        return self._streams.params

    def initialize(self, frame: np.ndarray, boxes) -> None:
        if len(boxes) == 0:
            raise ToMPError("No target to track: give at least one initial box.")
        frame = as_rgb_frame(frame)
        streams = MultiStreamTracker(self._streams.backend, self.params)
        streams.step({VIDEO: frame}, {VIDEO: boxes})
        self._streams, self._frame_shape = streams, frame.shape[:2]
        self.frame_index = 0

    def track(self, frame: np.ndarray) -> list[TrackResult]:
        """Where each target is on `frame`, in the order of the initial boxes."""
        if self._frame_shape is None:
            raise ToMPError("track() was called before initialize(frame, box).")
        frame = as_rgb_frame(frame)
        if frame.shape[:2] != self._frame_shape:
            (height, width), index = self._frame_shape, self.frame_index + 1
            raise ToMPError(
                f"Frame {index} is {frame.shape[1]}x{frame.shape[0]} but the video started at {width}x{height}; a "
                "tracker follows one video of one frame size. Resize the frames or start a new tracker."
            )
        step = self._streams.step({VIDEO: frame})[VIDEO]
        self.frame_index = step.frame_index
        return [step.results[target_id] for target_id in self._streams.targets(VIDEO)]


class ToMPTracker:
    """Single-target ToMP tracking: `initialize(frame, box)`, then `track(frame)` per frame; a view of
    `MultiTargetTracker` with one target.

    Frames are uint8 RGB arrays (H x W x 3; grey-scale H x W and RGBA are converted; any other dtype is
    refused with the conversion to apply).
    `params` overrides the tracker parameters the backend's model records (`backend.tracker_params`).
    """

    def __init__(self, backend: Backend, params: TrackerParams | None = None):
        self._targets = MultiTargetTracker(backend, params)

    @property
    def params(self) -> TrackerParams:
        return self._targets.params

    def initialize(self, frame: np.ndarray, box) -> None:
        self._targets.initialize(frame, [box])

    def track(self, frame: np.ndarray) -> TrackResult:
        return self._targets.track(frame)[0]
