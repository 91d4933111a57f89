"""The `patches` family (the toolkit's first synthetic benchmark, unchanged so its seeds write the same
sequences): textured rectangles cut from matplotlib's sample photos and reliefs, moving on sinusoidal
paths over other samples with camera panning; scale and aspect change, partial and full occlusion by a
passing occluder, a recoloured copy as distractor, motion blur and illumination change drawn at random."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from tomp_deploy.evaluation.synth.materials import photo_crop
from tomp_deploy.evaluation.synth.motion import smooth_path
from tomp_deploy.evaluation.synth.photos import matplotlib_samples
from tomp_deploy.evaluation.synth.scene import write_annotations

CLASS_NAME = "synthetic"
"""Its LaSOT class folder (kept from before there were other families)."""
PATCH_ATTRIBUTES = ("IV", "POC", "MB", "CM", "BC", "SV", "FOC", "FM", "ARC")


def _paste(canvas: np.ndarray, patch: np.ndarray, mask: np.ndarray, x: int, y: int) -> None:
    h, w = patch.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, canvas.shape[1]), min(y + h, canvas.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    region = (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))
    alpha = mask[region][..., None]
    canvas[y0:y1, x0:x1] = canvas[y0:y1, x0:x1] * (1 - alpha) + patch[region] * alpha


def _occlude(canvas: np.ndarray, occluder: np.ndarray, box: tuple[int, int, int, int], progress: float, full: bool) -> float:
    """Pastes the occluder over the target box (x, y, w, h): a wide block standing on it (full occlusion) or
    a narrow one sliding across it as `progress` goes 0 -> 1. Returns the fraction of the box covered."""
    x, y, w, h = box
    cover_w = int(w * (1.4 if full else 0.6))
    ox = x - (cover_w - w) // 2 if full else int(x - cover_w + progress * (w + 2 * cover_w))
    oy = y - h // 4
    block = cv2.resize(occluder, (cover_w, int(h * 1.5)))
    _paste(canvas, block, np.ones(block.shape[:2], np.float32), ox, oy)
    overlap_w = max(0, min(ox + cover_w, x + w) - max(ox, x))
    overlap_h = max(0, min(oy + block.shape[0], y + h) - max(oy, y))
    return overlap_w * overlap_h / (w * h)


def _motion_blur(canvas: np.ndarray) -> np.ndarray:
    """A 9-pixel horizontal motion blur."""
    kernel = np.zeros((9, 9), np.float32)
    kernel[4, :] = 1 / 9
    return cv2.filter2D(canvas, -1, kernel)


def write_sequence(folder: Path, rng: np.random.Generator, frames: int, size: tuple[int, int]) -> list[str]:
    """Renders one sequence into `folder` (LaSOT files) and returns its attributes."""
    samples = matplotlib_samples()
    width, height = size
    attributes = [a for a in PATCH_ATTRIBUTES if a != "CM" and rng.random() < 0.5]
    attributes += ["CM"] if rng.random() < 0.6 else []
    order = rng.permutation(len(samples))
    pan = 60 if "CM" in attributes else 0
    background = photo_crop(rng, samples[order[0]], width + 2 * pan, height + 2 * pan)
    base = min(width, height) * rng.uniform(0.15, 0.3)
    texture = photo_crop(rng, samples[order[1]], 128, 128)
    texture = cv2.addWeighted(texture, 0.8, np.full_like(texture, rng.uniform(60, 200)), 0.2, 0)
    path = smooth_path(rng, frames, width, height, "FM" in attributes)
    t = np.linspace(0, 1, frames)
    scale = (
        np.exp(np.log(rng.uniform(1.6, 2.2)) * np.sin(math.pi * t * rng.uniform(0.5, 1.5)))
        if "SV" in attributes
        else np.ones(frames)
    )
    aspect = np.exp(0.35 * np.sin(2 * math.pi * t * rng.uniform(0.5, 1.5))) if "ARC" in attributes else np.ones(frames)
    occlusion_start = rng.integers(frames // 4, frames // 2)
    occlusion_length = max(frames // 8, 3)
    occluder = photo_crop(rng, samples[order[2]], 256, 256)
    distractor_path = smooth_path(rng, frames, width, height, False)
    gain = (
        1 + 0.45 * np.sin(2 * math.pi * t * rng.uniform(0.5, 2.0) + rng.uniform(0, 6)) if "IV" in attributes else np.ones(frames)
    )
    blur_frames = set(rng.choice(frames, size=frames // 5, replace=False).tolist()) if "MB" in attributes else set()
    camera = (
        (np.stack([np.sin(2 * math.pi * t), np.cos(2 * math.pi * t * 0.7)], 1) * pan * 0.9).astype(int)
        if pan
        else np.zeros((frames, 2), int)
    )

    boxes, full_occlusion = [], []
    image_folder = folder / "img"
    image_folder.mkdir(parents=True, exist_ok=True)
    for i in range(frames):
        canvas = background[
            pan + camera[i, 1] : pan + camera[i, 1] + height, pan + camera[i, 0] : pan + camera[i, 0] + width
        ].copy()
        w = max(int(base * scale[i] * math.sqrt(aspect[i])), 12)
        h = max(int(base * scale[i] / math.sqrt(aspect[i])), 12)
        cx, cy = path[i]
        x, y = int(round(cx - w / 2)), int(round(cy - h / 2))
        patch = cv2.resize(texture, (w, h))
        mask = np.ones((h, w), np.float32)
        if "BC" in attributes:
            dx, dy = distractor_path[i]
            shifted = np.clip(patch * rng.uniform(0.9, 1.1, 3).astype(np.float32), 0, 255)
            _paste(canvas, shifted, mask, int(dx - w / 2), int(dy - h / 2))
        _paste(canvas, patch, mask, x, y)
        covered = 0.0
        if ("POC" in attributes or "FOC" in attributes) and occlusion_start <= i < occlusion_start + occlusion_length:
            progress = (i - occlusion_start + 0.5) / occlusion_length
            covered = _occlude(canvas, occluder, (x, y, w, h), progress, full="FOC" in attributes)
        canvas *= gain[i]
        image = np.clip(_motion_blur(canvas) if i in blur_frames else canvas, 0, 255).astype(np.uint8)
        cv2.imwrite(
            str(image_folder / f"{i + 1:08d}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92]
        )
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, width), min(y + h, height)
        boxes.append([x0, y0, max(x1 - x0, 0), max(y1 - y0, 0)])
        full_occlusion.append(int(covered > 0.9))
    write_annotations(folder, np.array(boxes), full_occlusion, "a textured patch moving over a synthetic scene")
    return sorted(attributes)
