"""Image files: which files are frames, their order, and reading one as RGB (OpenCV only).

Every reader of frames (video sources, dataset readers, evaluation, bench, training, the TraX server) goes
through here, and every frame is bounded in size: a PNG of a few kilobytes can declare 20000 x 20000 pixels
(1.2 GB once decoded as RGB), so an image file's size is read from its header (Pillow, which reads
headers without decoding; OpenCV has no such call) and checked before it is decoded.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from tomp_deploy.runtime.errors import ToMPError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
MAX_IMAGE_PIXELS_VARIABLE = "TOMP_DEPLOY_MAX_IMAGE_PIXELS"
DEFAULT_MAX_IMAGE_PIXELS = 1 << 26
"""67 megapixels: an 8K frame (33 Mpx) fits twice; the tracker holds a frame as uint8 RGB (200 MB here)."""
SHOWN_PATH_CHARACTERS = 200


def max_image_pixels() -> int:
    """The largest frame (width x height) any command reads: TOMP_DEPLOY_MAX_IMAGE_PIXELS, else 2**26."""
    text = os.environ.get(MAX_IMAGE_PIXELS_VARIABLE)
    if text is None:
        return DEFAULT_MAX_IMAGE_PIXELS
    if not text.strip().isdigit() or int(text) < 1:
        raise ToMPError(f"{MAX_IMAGE_PIXELS_VARIABLE}={text[:40]!r} is not a whole number of pixels above 0.")
    return int(text)


def shown_path(path) -> str:
    """A path as a message shows it: cut in the middle beyond SHOWN_PATH_CHARACTERS (a client may send any)."""
    text = str(path)
    if len(text) <= SHOWN_PATH_CHARACTERS:
        return text
    half = SHOWN_PATH_CHARACTERS // 2
    return f"{text[:half]}...({len(text) - 2 * half} characters)...{text[-half:]}"


def check_image_size(width: int, height: int, what: str) -> None:
    """Refuses a frame larger than `max_image_pixels()`, naming the setting that raises the bound."""
    limit = max_image_pixels()
    if width * height > limit:
        raise ToMPError(
            f"{what} is {width}x{height} ({width * height / 1e6:.0f} megapixels), above the bound of "
            f"{limit / 1e6:.0f} megapixels; downscale it, or raise the bound with "
            f"{MAX_IMAGE_PIXELS_VARIABLE}=PIXELS."
        )


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
    """An image file as RGB uint8 [H, W, 3]; an unreadable or oversized file is a `ToMPError` naming it."""
    _check_declared_size(Path(path))
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise ToMPError(f"{shown_path(path)} cannot be decoded: the image file is missing, corrupt or empty.")
    check_image_size(image.shape[1], image.shape[0], shown_path(path))
    return to_rgb(image)


def _check_declared_size(path: Path) -> None:
    """The size the file's header declares, checked before anything is decoded. A file Pillow cannot
    identify is left to OpenCV (which refuses what it cannot decode) and checked after decoding."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
    except Image.DecompressionBombError:  # Pillow refuses to say the size above its own bound (179 Mpx)
        pillow_bound = 2 * Image.MAX_IMAGE_PIXELS
        if max_image_pixels() >= pillow_bound:
            return
        raise ToMPError(
            f"{shown_path(path)} declares more than {pillow_bound / 1e6:.0f} megapixels, above the bound of "
            f"{max_image_pixels() / 1e6:.0f} megapixels; downscale it, or raise the bound with "
            f"{MAX_IMAGE_PIXELS_VARIABLE}=PIXELS."
        ) from None
    except (OSError, ValueError):
        return
    check_image_size(width, height, shown_path(path))
