"""What `track` and `demo` write: result files, and videos with the boxes drawn on the frames (OpenCV)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.files import check_output_file


class ResultWriter:
    """Writes one line per frame (`x,y,w,h`, the reference's result format, or a confidence) into a temporary file beside
    `path`, flushed each time, and renames it to `path` when closed: a run that stops mid-way keeps every
    box written so far, a run that fails before its first frame leaves an existing file untouched, and
    two runs writing one path never interleave (the last to finish wins, whole)."""

    def __init__(self, path: Path, option: str = "--output", what: str = "boxes"):
        self.path = check_output_file(path, option)
        self.option = option
        self.what = what
        self.lines = 0
        self._temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self._file = None

    def write(self, line: str) -> None:
        try:
            if self._file is None:
                self._file = open(self._temporary, "w")
            self._file.write(line + "\n")
            self._file.flush()
        except OSError as exc:
            raise ToMPError(f"{self.option} {self.path}: cannot write the {self.what} ({exc.strerror}).") from None
        self.lines += 1

    def close(self) -> None:
        if self._file is None:
            return
        try:
            self._file.close()
        except OSError:
            pass  # the write that failed was reported; what reached the disk is still kept below
        self._file = None
        try:
            os.replace(self._temporary, self.path)
        except OSError as exc:
            raise ToMPError(
                f"{self.option} {self.path}: cannot write the {self.what} ({exc.strerror}); they are in {self._temporary}."
            ) from None


def draw_overlay(
    image: np.ndarray,
    boxes: list[np.ndarray],
    scores: list[float],
    fps: float | None,
    ground_truth: np.ndarray | None = None,
    present: list[bool] | None = None,
) -> np.ndarray:
    """A BGR copy of an RGB frame with the boxes, their scores (or confidences), the tracker's frame rate
    and, where known, the ground-truth box (thin white) drawn on it; a box whose target the tracker reports
    absent (`present`) is drawn thin and labelled so."""
    canvas = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if ground_truth is not None and ground_truth[2] > 0 and ground_truth[3] > 0:
        x, y, w, h = (int(round(v)) for v in ground_truth)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), (255, 255, 255), 1)
    colours = [(0, 255, 0), (0, 128, 255), (255, 0, 255), (255, 255, 0), (0, 0, 255)]
    for i, (box, score) in enumerate(zip(boxes, scores)):
        colour = colours[i % len(colours)]
        shown = present is None or present[i]
        x, y, w, h = (int(round(v)) for v in box)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), colour, 2 if shown else 1)
        label = f"{score:.2f}" if shown else f"absent {score:.2f}"
        cv2.putText(canvas, label, (x, max(y - 5, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    if fps is not None:
        cv2.putText(
            canvas,
            f"tracker {fps:.1f} FPS",
            (8, canvas.shape[0] - 10),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.6,
            (255, 255, 255),
            2,
            cv2.LINE_AA,
        )
    return canvas


class VideoWriter:
    """MP4 output of annotated frames."""

    def __init__(self, path: Path, frame_size: tuple[int, int], fps: float = 30.0):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, frame_size)
        if not self._writer.isOpened():
            raise ToMPError(f"Cannot write the video {path}: OpenCV has no MP4 encoder here or the folder is not writable.")

    def write(self, bgr: np.ndarray) -> None:
        self._writer.write(bgr)

    def close(self) -> None:
        self._writer.release()
