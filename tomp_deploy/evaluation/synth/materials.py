"""What sprites and backgrounds are made of: photo crops, irregular soft masks, procedural textures,
shapes and text, and look-alike variants (written by hand: no library makes tracking-scene material)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from tomp_deploy.evaluation.synth.scene import Sprite


def photo_crop(rng: np.random.Generator, photo: np.ndarray, width: int, height: int, zoom: float = 1.6) -> np.ndarray:
    """A random `width` x `height` window of `photo`, scaled so the window fits, zoomed in by up to `zoom`."""
    scale = max(height / photo.shape[0], width / photo.shape[1]) * rng.uniform(1.0, zoom)
    size = (max(width, int(photo.shape[1] * scale) + 1), max(height, int(photo.shape[0] * scale) + 1))
    resized = cv2.resize(photo, size)
    y = rng.integers(0, resized.shape[0] - height + 1)
    x = rng.integers(0, resized.shape[1] - width + 1)
    return resized[y : y + height, x : x + width].copy()


def tinted(rng: np.random.Generator, grey: np.ndarray) -> np.ndarray:
    """A grey image coloured between two random colours (dark to light)."""
    dark, light = rng.uniform(0, 120, 3), rng.uniform(120, 255, 3)
    level = grey[..., :1] / 255
    return (dark + (light - dark) * level).astype(np.float32)


def blob_mask(rng: np.random.Generator, width: int, height: int, roughness: float) -> np.ndarray:
    """An irregular filled outline (a radius with random harmonics) with a soft edge, filling the box."""
    angles = np.linspace(0, 2 * math.pi, 64, endpoint=False)
    radius = np.ones_like(angles)
    for harmonic in range(2, 6):
        radius += roughness / harmonic * rng.uniform(-1, 1) * np.cos(harmonic * angles + rng.uniform(0, 2 * math.pi))
    radius = np.clip(radius, 0.35, None)
    points = np.stack([np.cos(angles) * radius, np.sin(angles) * radius], 1)
    points = (points - points.min(0)) / np.ptp(points, 0)
    points = (points * [width - 3, height - 3] + 1).astype(np.int32)
    mask = np.zeros((height, width), np.float32)
    cv2.fillPoly(mask, [points], 1.0)
    return cv2.GaussianBlur(mask, (0, 0), max(min(width, height) / 60, 0.6))


def shape_mask(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A filled ellipse, regular polygon, star or rounded rectangle, with a soft edge."""
    mask = np.zeros((height, width), np.float32)
    kind = rng.integers(4)
    center = (width / 2, height / 2)
    if kind == 0:
        cv2.ellipse(mask, (int(center[0]), int(center[1])), (width // 2 - 1, height // 2 - 1), 0, 0, 360, 1.0, -1)
    else:
        corners = int(rng.integers(3, 8)) if kind != 3 else 4
        star = kind == 2
        count = corners * (2 if star else 1)
        angles = np.linspace(0, 2 * math.pi, count, endpoint=False) + rng.uniform(0, math.pi)
        radius = np.where(np.arange(count) % 2 == 1, rng.uniform(0.4, 0.65), 1.0) if star else np.ones(count)
        points = np.stack([np.cos(angles) * radius, np.sin(angles) * radius], 1)
        points = (points - points.min(0)) / np.ptp(points, 0)
        cv2.fillPoly(mask, [(points * [width - 3, height - 3] + 1).astype(np.int32)], 1.0)
        if kind == 3:
            mask = (cv2.GaussianBlur(mask, (0, 0), min(width, height) / 8) > 0.5).astype(np.float32)
    return cv2.GaussianBlur(mask, (0, 0), 0.8)


def text_sprite(rng: np.random.Generator, height: int) -> Sprite:
    """A short random word in a random font and colour: the mask is the glyphs (dilated a little)."""
    letters = "ABCDEFGHKMNPRSTUVWXYZ0123456789"
    word = "".join(rng.choice(list(letters), int(rng.integers(2, 5))))
    font = int(
        rng.choice([cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_COMPLEX])
    )
    scale = height / 30
    thickness = max(int(height / 12), 2)
    (text_width, text_height), baseline = cv2.getTextSize(word, font, scale, thickness)
    glyphs = np.zeros((text_height + baseline + 4, text_width + 4), np.uint8)
    cv2.putText(glyphs, word, (2, text_height + 2), font, scale, 255, thickness, cv2.LINE_AA)
    mask = glyphs.astype(np.float32) / 255
    pixels = np.empty(mask.shape + (3,), np.float32)
    pixels[:] = rng.uniform(0, 255, 3)
    return Sprite(pixels, mask)


def procedural_texture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Stripes, a checkerboard, smooth noise or a gradient between random colours."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    kind = rng.integers(4)
    if kind == 0:
        angle = rng.uniform(0, math.pi)
        period = rng.uniform(4, 24)
        level = 0.5 + 0.5 * np.sin(2 * math.pi * (xs * math.cos(angle) + ys * math.sin(angle)) / period)
    elif kind == 1:
        cell = rng.uniform(4, 20)
        level = ((xs // cell + ys // cell) % 2).astype(np.float32)
    elif kind == 2:
        coarse = rng.random((max(height // 8, 2), max(width // 8, 2))).astype(np.float32)
        level = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        level = (level - level.min()) / max(float(np.ptp(level)), 1e-6)
    else:
        angle = rng.uniform(0, 2 * math.pi)
        level = xs * math.cos(angle) + ys * math.sin(angle)
        level = (level - level.min()) / max(float(np.ptp(level)), 1e-6)
    first, second = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    return (first + (second - first) * level[..., None]).astype(np.float32)


def look_alike(rng: np.random.Generator, sprite: Sprite, strength: float) -> Sprite:
    """A similar object, not a copy: colours shifted per channel, contrast changed and the outline redrawn."""
    shift = rng.uniform(-1, 1, 3) * 60 * strength
    contrast = 1 + rng.uniform(-0.3, 0.3) * strength
    mean = sprite.pixels.mean(axis=(0, 1))
    pixels = np.clip((sprite.pixels - mean) * contrast + mean + shift, 0, 255).astype(np.float32)
    if rng.random() < 0.5:
        pixels = pixels[:, ::-1].copy()
    height, width = sprite.alpha.shape
    alpha = sprite.alpha * blob_mask(rng, width, height, 0.2) if rng.random() < 0.5 else sprite.alpha
    return Sprite(pixels, alpha.astype(np.float32))
