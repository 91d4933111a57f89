"""Deterministic synthetic frames from numpy's PCG64 streams (no torch): the same on every machine."""

from __future__ import annotations

import math

import numpy as np


def smooth_texture(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Blocky RGB noise upsampled by nearest neighbour and box-blurred: a texture with structure."""
    coarse = rng.uniform(0, 255, (height // cell + 2, width // cell + 2, 3))
    fine = np.repeat(np.repeat(coarse, cell, axis=0), cell, axis=1)[:height, :width]
    kernel = np.ones(cell) / cell
    for axis in (0, 1):
        fine = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), axis, fine)
    return fine


def moving_target_sequence(seed: int = 0, frames: int = 30, scale: float = 1.0):
    """Frames (uint8 RGB, 320x240 times `scale`) of a textured box moving and growing over a textured
    background, and its boxes."""
    rng = np.random.default_rng(seed)
    height, width = int(240 * scale), int(320 * scale)
    background = smooth_texture(rng, height, width, 16)
    target = smooth_texture(rng, int(120 * scale), int(120 * scale), 6) * 0.5 + 120
    images, boxes = [], []
    for i in range(frames):
        t = i / max(frames - 1, 1)
        w = (40 + 30 * t) * scale
        h = (30 + 10 * math.sin(3 * t)) * scale
        x = (30 + 200 * t + 10 * math.sin(7 * t)) * scale
        y = (60 + 90 * t * t) * scale
        image = background.copy()
        x0, y0 = int(round(x)), int(round(y))
        x1, y1 = min(int(round(x + w)), width), min(int(round(y + h)), height)
        image[y0:y1, x0:x1] = target[: y1 - y0, : x1 - x0]
        images.append(np.clip(image, 0, 255).astype(np.uint8))
        boxes.append([x0, y0, x1 - x0, y1 - y0])
    return images, np.array(boxes, dtype=np.float64)
