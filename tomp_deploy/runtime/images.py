"""Image files: which files are frames, their order, and reading one as RGB (OpenCV only).

Every reader of frames (video sources, dataset readers, evaluation, bench, training) goes through here.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from tomp_deploy.runtime.errors import ToMPError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})


def natural_key(path: Path) -> list:
    """Sort key that orders `img2.jpg` before `img10.jpg`."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def list_images(folder: Path) -> list[Path]:
    """The image files of `folder` in natural order."""
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)


def to_rgb(image: np.ndarray) -> np.ndarray:
    """OpenCV's BGR/BGRA/grey decode -> RGB uint8 (grey replicated, alpha dropped, 16-bit scaled)."""
    if image.dtype != np.uint8:
        image = cv2.convertScaleAbs(image, alpha=255.0 / max(float(image.max()), 1.0))
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_rgb(path: Path) -> np.ndarray:
    """An image file as RGB uint8 [H, W, 3]; an unreadable file is a `ToMPError` naming it."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise ToMPError(f"{path} cannot be decoded: the image file is missing, corrupt or empty.")
    return to_rgb(image)
