"""A layered scene and its renderer: a background seen by a moving, zooming camera, sprites (pixels with
an alpha mask) placed per frame by centre, size, angle and a non-rigid warp, then illumination, motion
blur and sensor noise. The ground-truth box is the bounding box of the target's rendered mask inside
the frame, as annotators draw it (occluders in front do not shrink it)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

ATTRIBUTES = {
    "IV": "Illumination Variation",
    "POC": "Partial Occlusion",
    "DEF": "Deformation",
    "MB": "Motion Blur",
    "CM": "Camera Motion",
    "ROT": "Rotation",
    "BC": "Background Clutter",
    "SV": "Scale Variation",
    "FOC": "Full Occlusion",
    "FM": "Fast Motion",
    "OV": "Out-of-View",
    "LR": "Low Resolution",
    "ARC": "Aspect Ratio Change",
}
"""LaSOT's attributes (less viewpoint change), in LaSOT's order."""


@dataclass
class Sprite:
    pixels: np.ndarray
    """float32 [H, W, 3] RGB 0..255."""
    alpha: np.ndarray
    """float32 [H, W] in 0..1."""


@dataclass
class Layer:
    sprite: Sprite
    center: np.ndarray
    """[N, 2] x, y in frame pixels."""
    size: np.ndarray
    """[N, 2] width and height the sprite is scaled to."""
    angle: np.ndarray | None = None
    """[N] degrees, counter-clockwise."""
    warp: float = 0.0
    """Non-rigid deformation: displacement amplitude as a fraction of the sprite size."""
    shown: np.ndarray | None = None
    """[N] bool: frames the layer is drawn in (all when None)."""


@dataclass
class Scene:
    background: np.ndarray
    """float32 RGB, larger than the frame."""
    camera: np.ndarray
    """[N, 3]: x and y of the frame centre in background pixels, and zoom (frame pixels per background pixel)."""
    target: Layer
    behind: list[Layer] = field(default_factory=list)
    """Drawn before the target (distractors it passes over)."""
    front: list[Layer] = field(default_factory=list)
    """Drawn after the target (occluders)."""
    gain: np.ndarray | None = None
    """[N, 3] per-channel illumination gain."""
    blur: np.ndarray | None = None
    """[N, 2] motion-blur streak (dx, dy) in pixels."""
    noise: float = 0.0
    """Standard deviation of the sensor noise, in 0..255 units."""
    description: str = ""


def _sprite_matrix(sprite: Sprite, center, size, angle: float) -> np.ndarray:
    height, width = sprite.alpha.shape
    scale_x, scale_y = size[0] / width, size[1] / height
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    linear = np.array([[cos, sin], [-sin, cos]]) @ np.diag([scale_x, scale_y])
    offset = np.asarray(center, np.float64) - linear @ np.array([width / 2, height / 2])
    return np.hstack([linear, offset[:, None]])


def _warped(sprite: Sprite, amplitude: float, phase: float) -> Sprite:
    """A smooth sinusoidal displacement field: bending and breathing, not a rigid motion."""
    height, width = sprite.alpha.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    map_x = xs + amplitude * width * np.sin(2 * math.pi * ys / height + phase).astype(np.float32)
    map_y = ys + amplitude * height * np.sin(2 * math.pi * xs / width + 1.7 * phase).astype(np.float32)
    return Sprite(
        cv2.remap(sprite.pixels, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT),
        cv2.remap(sprite.alpha, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0),
    )


def _place(canvas: np.ndarray, layer: Layer, index: int) -> np.ndarray:
    """Composites the layer's sprite for frame `index` onto `canvas`; returns its alpha in frame coordinates."""
    sprite = layer.sprite
    if layer.warp:
        sprite = _warped(sprite, layer.warp, 0.35 * index)
    angle = float(layer.angle[index]) if layer.angle is not None else 0.0
    matrix = _sprite_matrix(sprite, layer.center[index], layer.size[index], angle)
    frame_size = (canvas.shape[1], canvas.shape[0])
    pixels = cv2.warpAffine(sprite.pixels, matrix, frame_size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    alpha = cv2.warpAffine(sprite.alpha, matrix, frame_size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    canvas *= 1 - alpha[..., None]
    canvas += pixels * alpha[..., None]
    return alpha


def _camera_view(scene: Scene, index: int, size: tuple[int, int]) -> np.ndarray:
    x, y, zoom = scene.camera[index]
    matrix = np.array([[zoom, 0, size[0] / 2 - zoom * x], [0, zoom, size[1] / 2 - zoom * y]])
    return cv2.warpAffine(scene.background, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _streak(image: np.ndarray, streak: np.ndarray) -> np.ndarray:
    length = int(round(float(np.hypot(*streak))))
    if length < 2:
        return image
    kernel = np.zeros((2 * length + 1, 2 * length + 1), np.float32)
    direction = streak / np.hypot(*streak)
    for step in np.linspace(-0.5, 0.5, 2 * length + 1):
        x, y = length + step * length * direction
        kernel[int(round(y)), int(round(x))] = 1
    return cv2.filter2D(image, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)


def render_frame(
    scene: Scene, index: int, size: tuple[int, int], rng: np.random.Generator
) -> tuple[np.ndarray, list[int], float]:
    """Frame `index` as uint8 RGB, the target's box [x, y, w, h] (zeros when out of view) and the
    fraction of the target hidden by occluders."""
    canvas = _camera_view(scene, index, size)
    for layer in scene.behind:
        if layer.shown is None or layer.shown[index]:
            _place(canvas, layer, index)
    target_alpha = _place(canvas, scene.target, index)
    hidden = np.zeros_like(target_alpha)
    for layer in scene.front:
        if layer.shown is None or layer.shown[index]:
            alpha = _place(canvas, layer, index)
            hidden = np.maximum(hidden, alpha)
    area = float(target_alpha.sum())
    covered = float((target_alpha * hidden).sum()) / area if area > 0 else 0.0
    if scene.gain is not None:
        canvas *= scene.gain[index]
    if scene.blur is not None:
        canvas = _streak(canvas, scene.blur[index])
    if scene.noise:
        canvas += rng.normal(0, scene.noise, canvas.shape).astype(np.float32)
    ys, xs = np.nonzero(target_alpha > 0.5)
    box = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)] if len(xs) else [0] * 4
    return np.clip(canvas, 0, 255).astype(np.uint8), box, covered


def write_lasot_sequence(
    folder: Path, scene: Scene, frames: int, size: tuple[int, int], rng: np.random.Generator, description: str
) -> tuple[np.ndarray, list[float]]:
    """Renders every frame into FOLDER/img/ and writes LaSOT's annotation files; returns the boxes and
    the hidden fractions."""
    image_folder = folder / "img"
    image_folder.mkdir(parents=True, exist_ok=True)
    boxes, hidden = [], []
    for index in range(frames):
        image, box, covered = render_frame(scene, index, size, rng)
        cv2.imwrite(
            str(image_folder / f"{index + 1:08d}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92]
        )
        boxes.append(box)
        hidden.append(covered)
    write_annotations(folder, np.array(boxes), [int(c > 0.9) for c in hidden], description)
    return np.array(boxes), hidden


def write_annotations(folder: Path, boxes: np.ndarray, full_occlusion: list[int], description: str) -> None:
    np.savetxt(folder / "groundtruth.txt", boxes, fmt="%d", delimiter=",")
    (folder / "full_occlusion.txt").write_text(",".join(map(str, full_occlusion)) + "\n")
    out_of_view = [int(b[2] <= 0 or b[3] <= 0) for b in boxes]
    (folder / "out_of_view.txt").write_text(",".join(map(str, out_of_view)) + "\n")
    (folder / "nlp.txt").write_text(description + "\n")


def measured_attributes(scene: Scene, boxes: np.ndarray, hidden: list[float], size: tuple[int, int]) -> list[str]:
    """LaSOT attributes read off what was rendered, with LaSOT's definitions where they are numeric."""
    found = _box_attributes(boxes) | _scene_attributes(scene, hidden, size)
    return [a for a in ATTRIBUTES if a in found]


def _box_attributes(boxes: np.ndarray) -> set[str]:
    """Out of view, scale variation, aspect ratio change, low resolution and fast motion: the box track's."""
    seen = boxes[(boxes[:, 2] > 0) & (boxes[:, 3] > 0)]
    if not len(seen):
        return {"OV"}
    areas, ratios = seen[:, 2] * seen[:, 3], seen[:, 2] / seen[:, 3]
    centers = seen[:, :2] + seen[:, 2:] / 2
    steps = np.hypot(*np.diff(centers, axis=0).T)
    present = {
        "OV": len(seen) < len(boxes),
        "SV": np.any((areas / areas[0] > 4) | (areas / areas[0] < 0.25)),
        "ARC": np.any((ratios / ratios[0] > 2) | (ratios / ratios[0] < 0.5)),
        "LR": np.any(areas < 1000),
        "FM": np.any(steps > np.sqrt(areas[1:])),
    }
    return {attribute for attribute, holds in present.items() if holds}


def _scene_attributes(scene: Scene, hidden: list[float], size: tuple[int, int]) -> set[str]:
    """Occlusions, illumination, blur, camera motion, background clutter, deformation and rotation: the scene's."""
    camera_moves = np.ptp(scene.camera[:, :2], axis=0).max() > 0.05 * max(size) or np.ptp(scene.camera[:, 2]) > 0.1
    present = {
        "POC": any(0.1 < c <= 0.9 for c in hidden),
        "FOC": any(c > 0.9 for c in hidden),
        "IV": scene.gain is not None and np.ptp(scene.gain) > 0.3,
        "MB": scene.blur is not None and np.any(np.hypot(*scene.blur.T) >= 2),
        "CM": camera_moves,
        "BC": bool(scene.behind),
        "DEF": scene.target.warp > 0,
        "ROT": scene.target.angle is not None and np.ptp(scene.target.angle) > 30,
    }
    return {attribute for attribute, holds in present.items() if holds}
