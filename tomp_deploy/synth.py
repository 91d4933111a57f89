"""A synthetic tracking benchmark in the LaSOT layout, deterministic per seed.

Targets are textured patches cut from the sample photographs that ship with matplotlib, moving over
backgrounds made from other samples (photo, terrain relief) with camera panning; each sequence draws
scale and aspect change, partial and full occlusion by a passing occluder, a similar distractor,
motion blur and illumination change at random, and records them as LaSOT attributes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np

from tomp_deploy.images import read_rgb

ATTRIBUTES = {
    "IV": "Illumination Variation", "POC": "Partial Occlusion", "MB": "Motion Blur", "CM": "Camera Motion",
    "BC": "Background Clutter", "SV": "Scale Variation", "FOC": "Full Occlusion", "FM": "Fast Motion",
    "ARC": "Aspect Ratio Change",
}
CLASS_NAME = "synthetic"


def _sample_images() -> list[np.ndarray]:
    """RGB float images from matplotlib's bundled sample data: two photos and two colour-mapped reliefs."""
    import matplotlib
    from matplotlib import cbook

    images = []
    for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png"):
        images.append(read_rgb(Path(cbook.get_sample_data(name, asfileobj=False))).astype(np.float32))
    for name, key, colormap in (("topobathy.npz", "topo", "terrain"), ("jacksboro_fault_dem.npz", "elevation", "gist_earth")):
        with np.load(cbook.get_sample_data(name, asfileobj=False)) as data:
            relief = data[key].astype(np.float32)
        relief = (relief - relief.min()) / max(float(np.ptp(relief)), 1e-6)
        images.append(matplotlib.colormaps[colormap](relief)[..., :3].astype(np.float32) * 255)
    return images


def _trajectory(rng: np.random.Generator, frames: int, width: int, height: int, fast: bool) -> np.ndarray:
    """Smooth centre path inside the frame: a sum of random sinusoids."""
    t = np.linspace(0, 1, frames)[:, None]
    amplitude = np.array([width, height]) * (0.35 if fast else 0.2)
    cycles = rng.uniform(0.5, 3.0 if fast else 1.2, (3, 2))
    phases = rng.uniform(0, 2 * math.pi, (3, 2))
    path = sum(np.sin(2 * math.pi * cycles[k] * t + phases[k]) / (k + 1) for k in range(3)) / 1.8
    return np.array([width, height]) / 2 + amplitude * path


def _paste(canvas: np.ndarray, patch: np.ndarray, mask: np.ndarray, x: int, y: int) -> None:
    h, w = patch.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, canvas.shape[1]), min(y + h, canvas.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    region = (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))
    alpha = mask[region][..., None]
    canvas[y0:y1, x0:x1] = canvas[y0:y1, x0:x1] * (1 - alpha) + patch[region] * alpha


def _crop(rng: np.random.Generator, image: np.ndarray, height: int, width: int) -> np.ndarray:
    scale = max(height / image.shape[0], width / image.shape[1]) * rng.uniform(1.0, 1.6)
    resized = cv2.resize(image, (max(width, int(image.shape[1] * scale) + 1), max(height, int(image.shape[0] * scale) + 1)))
    y = rng.integers(0, resized.shape[0] - height + 1)
    x = rng.integers(0, resized.shape[1] - width + 1)
    return resized[y:y + height, x:x + width].copy()


def write_sequence(folder: Path, rng: np.random.Generator, samples: list[np.ndarray], frames: int,
                   size: tuple[int, int]) -> list[str]:
    """Renders one sequence into `folder` (LaSOT files) and returns its attributes."""
    width, height = size
    attributes = [a for a in ATTRIBUTES if a != "CM" and rng.random() < 0.5]
    attributes += ["CM"] if rng.random() < 0.6 else []
    order = rng.permutation(len(samples))
    pan = 60 if "CM" in attributes else 0
    background = _crop(rng, samples[order[0]], height + 2 * pan, width + 2 * pan)
    base = min(width, height) * rng.uniform(0.15, 0.3)
    texture = _crop(rng, samples[order[1]], 128, 128)
    texture = cv2.addWeighted(texture, 0.8, np.full_like(texture, rng.uniform(60, 200)), 0.2, 0)
    path = _trajectory(rng, frames, width, height, "FM" in attributes)
    t = np.linspace(0, 1, frames)
    scale = np.exp(np.log(rng.uniform(1.6, 2.2)) * np.sin(math.pi * t * rng.uniform(0.5, 1.5))) if "SV" in attributes \
        else np.ones(frames)
    aspect = np.exp(0.35 * np.sin(2 * math.pi * t * rng.uniform(0.5, 1.5))) if "ARC" in attributes else np.ones(frames)
    occlusion_start = rng.integers(frames // 4, frames // 2)
    occlusion_length = max(frames // 8, 3)
    occluder = _crop(rng, samples[order[2]], 256, 256)
    distractor_path = _trajectory(rng, frames, width, height, False)
    gain = 1 + 0.45 * np.sin(2 * math.pi * t * rng.uniform(0.5, 2.0) + rng.uniform(0, 6)) if "IV" in attributes \
        else np.ones(frames)
    blur_frames = set(rng.choice(frames, size=frames // 5, replace=False).tolist()) if "MB" in attributes else set()
    camera = (np.stack([np.sin(2 * math.pi * t), np.cos(2 * math.pi * t * 0.7)], 1) * pan * 0.9).astype(int) \
        if pan else np.zeros((frames, 2), int)

    boxes, full_occlusion = [], []
    image_folder = folder / "img"
    image_folder.mkdir(parents=True, exist_ok=True)
    for i in range(frames):
        canvas = background[pan + camera[i, 1]:pan + camera[i, 1] + height, pan + camera[i, 0]:pan + camera[i, 0] + width].copy()
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
            cover_w = int(w * (1.4 if "FOC" in attributes else 0.6))
            ox = int(x - cover_w + progress * (w + 2 * cover_w)) if "FOC" not in attributes else x - (cover_w - w) // 2
            oy = y - h // 4
            block = cv2.resize(occluder, (cover_w, int(h * 1.5)))
            _paste(canvas, block, np.ones(block.shape[:2], np.float32), ox, oy)
            overlap_w = max(0, min(ox + cover_w, x + w) - max(ox, x))
            overlap_h = max(0, min(oy + block.shape[0], y + h) - max(oy, y))
            covered = overlap_w * overlap_h / (w * h)
        canvas *= gain[i]
        if i in blur_frames:
            kernel = np.zeros((9, 9), np.float32)
            kernel[4, :] = 1 / 9
            canvas = cv2.filter2D(canvas, -1, kernel)
        image = np.clip(canvas, 0, 255).astype(np.uint8)
        cv2.imwrite(str(image_folder / f"{i + 1:08d}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 92])
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, width), min(y + h, height)
        boxes.append([x0, y0, max(x1 - x0, 0), max(y1 - y0, 0)])
        full_occlusion.append(int(covered > 0.9))
    np.savetxt(folder / "groundtruth.txt", np.array(boxes), fmt="%d", delimiter=",")
    (folder / "full_occlusion.txt").write_text(",".join(map(str, full_occlusion)) + "\n")
    out_of_view = [int(b[2] <= 0 or b[3] <= 0) for b in boxes]
    (folder / "out_of_view.txt").write_text(",".join(map(str, out_of_view)) + "\n")
    (folder / "nlp.txt").write_text("a textured patch moving over a synthetic scene\n")
    return sorted(attributes)


def generate_benchmark(out: str | Path, sequences: int, frames: int, seed: int = 0,
                       size: tuple[int, int] = (320, 240), progress=None) -> list[str]:
    """Writes `sequences` sequences of `frames` frames under OUT/synthetic/synthetic-<k>/ plus
    OUT/attributes.json (per-sequence attributes in the reference's attribute-file format)."""
    out = Path(out)
    samples = _sample_images()
    names, attribute_file = [], {"att_name_short": list(ATTRIBUTES), "att_name_long": list(ATTRIBUTES.values())}
    for k in range(1, sequences + 1):
        name = f"{CLASS_NAME}-{k}"
        rng = np.random.default_rng([seed, k])
        attribute_file[name] = write_sequence(out / CLASS_NAME / name, rng, samples, frames, size)
        names.append(name)
        if progress:
            progress(name)
    (out / "attributes.json").write_text(json.dumps(attribute_file, indent=1))
    return names
