"""Frame sources (video file, image folder, camera) and their ground truth, through OpenCV."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tomp_deploy.runtime.box_text import parse_box
from tomp_deploy.runtime.errors import ToMPError
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
