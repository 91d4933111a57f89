"""Crop sampling, training-target encodings and box arithmetic of the ToMP tracker (numpy + OpenCV).

Positions and sizes are (y, x) and (h, w) pairs, as in the reference tracker; boxes are
(x, y, w, h). Every rounding step follows the reference implementation, so that crops land on the
same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class Patch:
    pixels: np.ndarray
    """[S, S, 3] float32 RGB."""
    coords: np.ndarray
    """(top, left, bottom, right) of the sampled region in image pixels (bottom/right exclusive)."""


def _trunc(value: np.ndarray) -> np.ndarray:
    return np.trunc(value).astype(np.int64)


def sample_patch(
    image: np.ndarray,
    pos: np.ndarray,
    sample_size: np.ndarray,
    output_size: int,
    mode: str = "replicate",
    max_scale_change: float | None = None,
) -> Patch:
    """Samples a `sample_size` (h, w) region centred at `pos` (y, x), resized to output_size x output_size.

    - `inside`/`inside_major`: the region shrinks (by at most `max_scale_change`) so that it fits the
      image in both / in its major direction, then shifts inside the image;
    - large regions are first decimated by an integer factor (the reference's pre-downsampling);
    - pixels outside the image replicate the border; resampling is bilinear with pixel centres aligned
      (the same mapping as PyTorch's `interpolate(mode="bilinear")`).
    """
    height, width = image.shape[:2]
    pos_int = _trunc(pos)
    sample_size = np.asarray(sample_size, dtype=np.float64)

    if mode in ("inside", "inside_major"):
        shrink = sample_size / np.array([height, width], dtype=np.float64)
        shrink = shrink.max() if mode == "inside" else shrink.min()
        shrink = min(max(shrink, 1.0), max_scale_change if max_scale_change is not None else np.inf)
        sample_size = _trunc(sample_size / shrink).astype(np.float64)

    resize_factor = float(np.min(sample_size / output_size))
    decimation = int(max(int(resize_factor - 0.1), 1))
    size = sample_size / decimation

    if decimation > 1:
        offset = pos_int % decimation
        pos_grid = (pos_int - offset) / decimation
        source = image[offset[0] :: decimation, offset[1] :: decimation]
    else:
        pos_grid = pos_int.astype(np.float64)
        source = image

    crop_size = np.maximum(np.round(size), 2).astype(np.int64)
    top_left = pos_grid - (crop_size - 1) / 2
    bottom_right = pos_grid + crop_size / 2 + 1

    if mode in ("inside", "inside_major"):
        source_size = np.array(source.shape[:2], dtype=np.float64)
        shift = np.clip(-top_left, 0, None) - np.clip(bottom_right - source_size, 0, None)
        top_left, bottom_right = top_left + shift, bottom_right + shift
        outside = (np.clip(-top_left, 0, None) + np.clip(bottom_right - source_size, 0, None)) // 2
        shift = (-top_left - outside) * (outside > 0)
        top_left, bottom_right = top_left + shift, bottom_right + shift

    start = -_trunc(-top_left)
    stop = _trunc(bottom_right)
    rows = np.clip(np.arange(start[0], stop[0]), 0, source.shape[0] - 1)
    cols = np.clip(np.arange(start[1], stop[1]), 0, source.shape[1] - 1)
    patch = source[rows[:, None], cols[None, :]].astype(np.float32)
    if patch.shape[:2] != (output_size, output_size):
        patch = cv2.resize(patch, (output_size, output_size), interpolation=cv2.INTER_LINEAR)
    coords = decimation * np.concatenate([top_left, bottom_right])
    return Patch(np.ascontiguousarray(patch), coords)


def center_crop(pixels: np.ndarray, size: int) -> np.ndarray:
    """The central size x size window of a larger square patch."""
    margin = (pixels.shape[0] - size) // 2
    return np.ascontiguousarray(pixels[margin : margin + size, margin : margin + size])


def sample_location(coords: np.ndarray, sample_size: int) -> tuple[np.ndarray, float]:
    """Centre (y, x) and scale (image pixels per crop pixel) of a sampled region."""
    sample_pos = 0.5 * (coords[:2] + coords[2:] - 1)
    sample_scale = float(np.sqrt(np.prod((coords[2:] - coords[:2]) / sample_size)))
    return sample_pos, sample_scale


def box_in_crop(pos, target_size, sample_pos, sample_scale, sample_size: int) -> np.ndarray:
    """The target (centre `pos`, size (h, w)) as an (x, y, w, h) box in crop pixels."""
    center = (pos - sample_pos) / sample_scale + (sample_size - 1) / 2
    size = target_size / sample_scale
    top_left = center - (size - 1) / 2
    return np.array([top_left[1], top_left[0], size[1], size[0]])


def gaussian_label(feature_size: int, sigma: float, center: np.ndarray) -> np.ndarray:
    """[F, F] Gaussian with its peak at `center` (y, x), in cells from the map's middle."""
    k = np.arange(-(feature_size - 1) / 2, (feature_size + 1) / 2)
    gy = np.exp(-0.5 / sigma**2 * (k - center[0]) ** 2)
    gx = np.exp(-0.5 / sigma**2 * (k - center[1]) ** 2)
    return (gy[:, None] * gx[None, :]).astype(np.float32)


def cell_centers(feature_size: int, stride: int) -> np.ndarray:
    """Crop-pixel coordinates of the cell centres: [F] values stride*i + stride//2."""
    return (np.arange(feature_size) * stride + stride // 2).astype(np.float64)


def encode_ltrb(box: np.ndarray, feature_size: int, stride: int) -> np.ndarray:
    """[4, F, F] distances from each cell centre to the left, top, right, bottom box edges / crop size."""
    centers = cell_centers(feature_size, stride)
    xs, ys = centers[None, :], centers[:, None]
    x1, y1, w, h = box
    ltrb = np.stack(np.broadcast_arrays(xs - x1, ys - y1, x1 + w - xs, y1 + h - ys))
    return (ltrb / (feature_size * stride)).astype(np.float32)


def decode_ltrb(ltrb: np.ndarray, cell: tuple[int, int], coords: np.ndarray, sample_size: int, stride: int) -> np.ndarray:
    """Box (x, y, w, h) in image pixels from the ltrb map [4, F, F] at `cell` (row, col)."""
    row, col = cell
    center_y, center_x = row * stride + stride // 2, col * stride + stride // 2
    left, top, right, bottom = ltrb[:, row, col].astype(np.float64) * sample_size
    scale_y = (coords[2] - coords[0]) / sample_size
    scale_x = (coords[3] - coords[1]) / sample_size
    x1 = (center_x - left) * scale_x + coords[1]
    y1 = (center_y - top) * scale_y + coords[0]
    x2 = (center_x + right) * scale_x + coords[1]
    y2 = (center_y + bottom) * scale_y + coords[0]
    return np.array([x1, y1, x2 - x1, y2 - y1])


def clip_box(box: np.ndarray, width: int, height: int, min_size: float) -> np.ndarray:
    """Clips an (x, y, w, h) box to the image, keeping at least `min_size` pixels in each direction."""
    x1 = max(0.0, min(box[0], width - min_size))
    y1 = max(0.0, min(box[1], height - min_size))
    x2 = max(x1 + min_size, min(box[0] + box[2], width))
    y2 = max(y1 + min_size, min(box[1] + box[3], height))
    return np.array([x1, y1, x2 - x1, y2 - y1])


def argmax2d(scores: np.ndarray) -> tuple[float, np.ndarray]:
    """Maximum of a 2-D map and its (row, col); on ties the first column, then the first row in it
    (the reference's `max2d` order)."""
    col = int(np.argmax(scores.max(axis=0)))
    row = int(np.argmax(scores[:, col]))
    return float(scores[row, col]), np.array([row, col])


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of (x, y, w, h) boxes, row-wise for [N, 4] arrays."""
    a, b = np.atleast_2d(a).astype(np.float64), np.atleast_2d(b).astype(np.float64)
    x1 = np.maximum(a[:, 0], b[:, 0])
    y1 = np.maximum(a[:, 1], b[:, 1])
    x2 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y2 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    intersection = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - intersection
    overlap = np.where(union > 0, intersection / np.where(union > 0, union, 1), 0.0)
    # (x + w) - x can differ from w in the last bit: identical boxes get exactly 1.
    return np.where((a == b).all(axis=1) & (union > 0), 1.0, overlap)
