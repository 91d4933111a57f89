"""Frame sources (video file, image folder, camera) and result files, through OpenCV."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tomp_deploy.runtime.box_text import format_box, parse_box
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.files import check_output_file
from tomp_deploy.runtime.images import IMAGE_SUFFIXES, check_image_size, list_images, read_rgb, shown_path, to_rgb

GROUNDTRUTH_NAMES = ("groundtruth.txt", "groundtruth_rect.txt")


@dataclass
class Frame:
    index: int
    image: np.ndarray
    """RGB uint8 [H, W, 3]."""
    name: str


class FrameSource:
    """Iterates RGB frames of a video file, a folder of images (sorted by name) or a camera index."""

    def __init__(self, source: str | Path):
        self.source = str(source)
        self.folder: Path | None = None
        self.frame_paths: list[Path] = []
        path = Path(self.source)
        if self.source.isdigit() and not path.exists():
            self.kind = "camera"
        elif path.is_dir():
            self.kind = "folder"
            self.folder = path
            self.frame_paths = list_images(path)
            if not self.frame_paths:
                raise ToMPError(f"The folder {path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}).")
        elif path.is_file():
            self.kind = "video"
        else:
            raise ToMPError(f"{self.source} is neither a video file, a folder of images nor a camera index.")
        self.stopped_early: str | None = None
        """Why iteration ended before the source's announced end (a broken or short video)."""

    def __len__(self) -> int:
        if self.kind == "folder":
            return len(self.frame_paths)
        if self.kind == "video":
            capture = cv2.VideoCapture(self.source)
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            capture.release()
            return max(count, 0)
        return 0

    def __iter__(self) -> Iterator[Frame]:
        if self.kind == "folder":
            yield from self._folder_frames()
        else:
            yield from self._capture_frames()

    @classmethod
    def of_images(cls, paths: list[Path]) -> "FrameSource":
        """The frames of a dataset sequence: these image files, in this order."""
        if not paths:
            raise ToMPError("A sequence needs at least one frame.")
        source = cls(paths[0].parent)
        source.frame_paths = list(paths)
        return source

    def _folder_frames(self) -> Iterator[Frame]:
        for index, path in enumerate(self.frame_paths):
            try:
                image = read_rgb(path)
            except ToMPError as exc:
                raise ToMPError(f"Frame {index}: {exc}") from None
            yield Frame(index, image, path.name)

    def _capture_frames(self) -> Iterator[Frame]:
        capture = cv2.VideoCapture(int(self.source) if self.kind == "camera" else self.source)
        if not capture.isOpened():
            what = "camera" if self.kind == "camera" else "video file"
            raise ToMPError(f"Cannot open {what} {self.source}: OpenCV could not read it (unknown codec or not a video).")
        announced = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if self.kind == "video" else 0
        width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        try:
            check_image_size(width, height, f"The frames of {shown_path(self.source)}")
        except ToMPError:
            capture.release()
            raise
        index = 0
        try:
            while True:
                ok, image = capture.read()
                if not ok or image is None:
                    break
                yield Frame(index, to_rgb(image), f"{index:06d}")
                index += 1
        finally:
            capture.release()
        if index == 0:
            raise ToMPError(f"{self.source} yielded no frame: the video is empty or cannot be decoded.")
        if announced > 0 and index < announced:
            self.stopped_early = f"the video ended after {index} of its {announced} announced frames"


def find_groundtruth(folder: Path) -> Path | None:
    """The annotation file of a LaSOT/OTB-style sequence: beside the images or one level up."""
    for directory in (folder, folder.parent):
        for name in GROUNDTRUTH_NAMES:
            candidate = directory / name
            if candidate.is_file():
                return candidate
    return None


def first_groundtruth_box(path: Path) -> np.ndarray:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            return parse_box(line, f"{path} line {number}")
    raise ToMPError(f"{path} is empty: it should hold one x,y,w,h box per frame.")


class ResultWriter:
    """Writes one `x,y,w,h` line per frame (the reference's result format) into a temporary file beside
    `path`, flushed each time, and renames it to `path` when closed: a run that stops mid-way keeps every
    box written so far, a run that fails before its first frame leaves an existing file untouched, and
    two runs writing one path never interleave (the last to finish wins, whole)."""

    def __init__(self, path: Path, option: str = "--output"):
        self.path = check_output_file(path, option)
        self.option = option
        self.lines = 0
        self._temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self._file = None

    def write(self, box: np.ndarray) -> None:
        try:
            if self._file is None:
                self._file = open(self._temporary, "w")
            self._file.write(format_box(box) + "\n")
            self._file.flush()
        except OSError as exc:
            raise ToMPError(f"{self.option} {self.path}: cannot write the boxes ({exc.strerror}).") from None
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
                f"{self.option} {self.path}: cannot write the boxes ({exc.strerror}); they are in {self._temporary}."
            ) from None


def draw_overlay(
    image: np.ndarray, boxes: list[np.ndarray], scores: list[float], fps: float | None, ground_truth: np.ndarray | None = None
) -> np.ndarray:
    """A BGR copy of an RGB frame with the boxes, their scores, the tracker's frame rate and, where
    known, the ground-truth box (thin white) drawn on it."""
    canvas = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if ground_truth is not None and ground_truth[2] > 0 and ground_truth[3] > 0:
        x, y, w, h = (int(round(v)) for v in ground_truth)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), (255, 255, 255), 1)
    colours = [(0, 255, 0), (0, 128, 255), (255, 0, 255), (255, 255, 0), (0, 0, 255)]
    for i, (box, score) in enumerate(zip(boxes, scores)):
        colour = colours[i % len(colours)]
        x, y, w, h = (int(round(v)) for v in box)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), colour, 2)
        cv2.putText(canvas, f"{score:.2f}", (x, max(y - 5, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
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
