"""The scene families. Training uses `patches`, `cutouts` and `shapes`; `bouncing` is the held-out family:
other photographs (scikit-image's held-out pool), other objects (faces, coins, a cat) and another motion
model (thrown and bouncing under gravity, spinning), used only to evaluate. `filmed` (objects in real
photographs under a moving camera) is the demo's, in no training mix. `longterm` and `longterm-heldout`
are the long-term families: the target leaves the view and comes back elsewhere, or hides behind a panel,
among look-alikes; the held-out one with the held-out objects and photographs, only to evaluate."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from tomp_deploy.evaluation.synth import patches
from tomp_deploy.evaluation.synth.materials import (
    blob_mask,
    look_alike,
    photo_crop,
    procedural_texture,
    shape_mask,
    text_sprite,
    tinted,
)
from tomp_deploy.evaluation.synth.motion import bouncing_path, camera_path, roaming_path, smooth_path, wandering_path
from tomp_deploy.evaluation.synth.photos import (
    held_out_coins,
    held_out_faces,
    held_out_photos,
    skimage_photo,
    training_grey,
    training_photos,
)
from tomp_deploy.evaluation.synth.scene import Layer, Scene, Sprite, measured_attributes, write_lasot_sequence

SPRITE_RESOLUTION = 96
"""Pixels along a sprite's longer side before it is scaled into the frame."""


def _training_image(rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.7:
        photos = training_photos()
        return photos[rng.integers(len(photos))]
    greys = training_grey()
    return tinted(rng, greys[rng.integers(len(greys))])


def _sprite_shape(aspect: float) -> tuple[int, int]:
    if aspect >= 1:
        return SPRITE_RESOLUTION, max(int(SPRITE_RESOLUTION / aspect), 8)
    return max(int(SPRITE_RESOLUTION * aspect), 8), SPRITE_RESOLUTION


def _cutout(rng: np.random.Generator, aspect: float) -> Sprite:
    width, height = _sprite_shape(aspect)
    pixels = photo_crop(rng, _training_image(rng), width, height, zoom=3.0)
    alpha = np.ones((height, width), np.float32) if rng.random() < 0.2 else blob_mask(rng, width, height, rng.uniform(0, 0.5))
    return Sprite(pixels, alpha)


def _shape(rng: np.random.Generator, aspect: float) -> Sprite:
    if rng.random() < 0.2:
        return text_sprite(rng, SPRITE_RESOLUTION // 2)
    width, height = _sprite_shape(aspect)
    if rng.random() < 0.75:
        texture = procedural_texture(rng, width, height)
    else:
        texture = photo_crop(rng, _training_image(rng), width, height)
    return Sprite(texture, shape_mask(rng, width, height))


def _varying(rng: np.random.Generator, frames: int, strength: float, cycles: tuple[float, float]) -> np.ndarray:
    """exp(strength * sin(...)): a smooth factor around 1."""
    t = np.linspace(0, 1, frames)
    return np.exp(strength * np.sin(2 * math.pi * t * rng.uniform(*cycles) + rng.uniform(0, 2 * math.pi)))


def _sizes(rng: np.random.Generator, frames: int, base: float, aspect: float) -> np.ndarray:
    scale = _varying(rng, frames, math.log(rng.uniform(1.5, 2.5)), (0.3, 1.2)) if rng.random() < 0.4 else np.ones(frames)
    stretch = _varying(rng, frames, rng.uniform(0.2, 0.5), (0.5, 1.5)) if rng.random() < 0.3 else np.ones(frames)
    width = base * math.sqrt(aspect) * scale * np.sqrt(stretch)
    height = base / math.sqrt(aspect) * scale / np.sqrt(stretch)
    return np.stack([width, height], 1)


def _gain(rng: np.random.Generator, frames: int, probability: float) -> np.ndarray | None:
    if rng.random() >= probability:
        return None
    level = _varying(rng, frames, rng.uniform(0.25, 0.6), (0.5, 2.0))
    colour = 1 + rng.uniform(-0.12, 0.12, 3) * np.sin(np.linspace(0, math.pi, frames))[:, None]
    return (level[:, None] * colour).astype(np.float32)


def _motion_blur(rng: np.random.Generator, path: np.ndarray, probability: float) -> np.ndarray | None:
    if rng.random() >= probability:
        return None
    velocity = np.gradient(path, axis=0)
    return velocity * rng.uniform(0.6, 1.4)


def _occluders(rng: np.random.Generator, frames: int, target: Layer, material: Callable[[float], Sprite]) -> list[Layer]:
    """Up to one object passing across the target (partial occlusion) and one that hides it for a while
    (full occlusion)."""
    occluders = []
    if rng.random() < 0.35:
        start = int(rng.integers(frames // 5, max(frames // 5 + 1, frames * 3 // 5)))
        length = max(frames // 6, 4)
        shown = np.zeros(frames, bool)
        shown[start : start + length] = True
        side = target.size.max(1, keepdims=True) * rng.uniform(0.6, 1.2)
        direction = rng.choice([-1, 1])
        progress = np.clip((np.arange(frames) - start) / length, 0, 1)[:, None]
        offset = np.concatenate([direction * (2 * progress - 1) * 1.5 * side, rng.uniform(-0.3, 0.3) * side], 1)
        occluders.append(Layer(material(rng.uniform(0.5, 2)), target.center + offset, np.repeat(side, 2, 1), shown=shown))
    if rng.random() < 0.2:
        start = int(rng.integers(frames // 4, max(frames // 4 + 1, frames * 3 // 4)))
        shown = np.zeros(frames, bool)
        shown[start : start + max(frames // 10, 3)] = True
        side = target.size * 1.6
        occluders.append(Layer(material(1.0), target.center.copy(), side, shown=shown))
    return occluders


def _object_scene(
    rng: np.random.Generator,
    frames: int,
    size: tuple[int, int],
    material: Callable[[np.random.Generator, float], Sprite],
    background: np.ndarray,
) -> Scene:
    """A target of `material` moving (wandering or smooth) over `background`, with scale, aspect, rotation
    and shape change, look-alike distractors, occluders, camera pan and zoom, illumination, blur and noise.
    Its path is shifted so that it starts wholly inside the frame (the first box initialises a tracker)."""
    width, height = size
    aspect = float(np.exp(rng.uniform(-0.8, 0.8)))
    small = rng.random() < 0.2
    base = min(width, height) * (rng.uniform(0.06, 0.12) if small else rng.uniform(0.12, 0.4))
    sprite = material(rng, aspect)
    fast = rng.random() < 0.25
    if rng.random() < 0.5:
        path = wandering_path(rng, frames, width, height, rng.uniform(6, 12) if fast else rng.uniform(0.8, 4))
    else:
        path = smooth_path(rng, frames, width, height, fast)
    angle = None
    if rng.random() < 0.3:
        angle = rng.uniform(15, 100) * np.sin(np.linspace(0, 2 * math.pi * rng.uniform(0.3, 1.5), frames) + rng.uniform(0, 6))
    warp = rng.uniform(0.02, 0.07) if rng.random() < 0.35 else 0.0
    sizes = _sizes(rng, frames, base, aspect)
    half_extent = np.hypot(*sizes[0]) / 2 + 2 if angle is not None else sizes[0] / 2 + 2
    path = path + np.clip(path[0], half_extent, np.array([width, height]) - half_extent) - path[0]
    target = Layer(sprite, path, sizes, angle, warp)
    behind, front = [], []
    if rng.random() < 0.5:
        for _ in range(int(rng.integers(1, 4))):
            other = look_alike(rng, sprite, rng.uniform(0.2, 1.0))
            other_path = wandering_path(rng, frames, width, height, rng.uniform(0.8, 5))
            layer = Layer(other, other_path, _sizes(rng, frames, base * rng.uniform(0.8, 1.25), aspect), angle, warp)
            (front if rng.random() < 0.25 else behind).append(layer)
    front += _occluders(rng, frames, target, lambda ratio: material(rng, ratio))
    pan = rng.uniform(0.1, 0.35) * width if rng.random() < 0.6 else 0.0
    zoom_range = rng.uniform(1.05, 1.35) if rng.random() < 0.4 else 1.0
    frame_background = photo_crop(rng, background, int(width * 2), int(height * 2))
    camera = camera_path(rng, frames, np.array([width, height], float), pan, zoom_range, 0.7)
    return Scene(
        frame_background,
        camera,
        target,
        behind,
        front,
        _gain(rng, frames, 0.35),
        _motion_blur(rng, path, 0.3 if not fast else 0.7),
        float(rng.uniform(0, 6)),
    )


def cutouts_scene(rng: np.random.Generator, frames: int, size: tuple[int, int]) -> Scene:
    """Irregular cut-outs of training photographs over other training photographs."""
    scene = _object_scene(rng, frames, size, _cutout, _training_image(rng))
    scene.description = "a piece of a photograph moving over another photograph"
    return scene


def shapes_scene(rng: np.random.Generator, frames: int, size: tuple[int, int]) -> Scene:
    """Textured shapes and words over procedural textures or training photographs."""
    width, height = size
    background = procedural_texture(rng, width * 2, height * 2) if rng.random() < 0.6 else _training_image(rng)
    scene = _object_scene(rng, frames, size, _shape, background)
    scene.description = "a textured shape moving over a textured scene"
    return scene


def _held_out_object(rng: np.random.Generator, kind: int, backdrop: int) -> Sprite:
    """A face, a coin or a piece of a held-out photograph other than the backdrop (a piece of the backdrop
    itself would be camouflaged by construction)."""
    if kind == 0:
        faces = held_out_faces()
        face = cv2.resize(faces[rng.integers(len(faces))], (SPRITE_RESOLUTION, SPRITE_RESOLUTION))
        pixels = np.repeat(face[..., None], 3, axis=2) * np.array([1.0, 0.92, 0.82], np.float32)
        alpha = np.zeros((SPRITE_RESOLUTION, SPRITE_RESOLUTION), np.float32)
        cv2.ellipse(
            alpha,
            (SPRITE_RESOLUTION // 2, SPRITE_RESOLUTION // 2),
            (SPRITE_RESOLUTION * 2 // 5, SPRITE_RESOLUTION // 2 - 1),
            0,
            0,
            360,
            1.0,
            -1,
        )
        return Sprite(pixels.astype(np.float32), cv2.GaussianBlur(alpha, (0, 0), 1.5))
    if kind == 1:
        coins = held_out_coins()
        radius = int(rng.integers(18, 30))
        y, x = int(rng.integers(radius, coins.shape[0] - radius)), int(rng.integers(radius, coins.shape[1] - radius))
        pixels = cv2.resize(coins[y - radius : y + radius, x - radius : x + radius], (SPRITE_RESOLUTION, SPRITE_RESOLUTION))
        pixels = pixels * np.array([1.0, 0.85, 0.6], np.float32)
        alpha = np.zeros((SPRITE_RESOLUTION, SPRITE_RESOLUTION), np.float32)
        cv2.circle(alpha, (SPRITE_RESOLUTION // 2, SPRITE_RESOLUTION // 2), SPRITE_RESOLUTION // 2 - 1, 1.0, -1)
        return Sprite(pixels.astype(np.float32), cv2.GaussianBlur(alpha, (0, 0), 1.0))
    photos = held_out_photos()
    width, height = _sprite_shape(float(np.exp(rng.uniform(-0.5, 0.5))))
    others = [index for index in range(len(photos)) if index != backdrop]
    pixels = photo_crop(rng, photos[others[rng.integers(len(others))]], width, height, zoom=2.5)
    return Sprite(pixels, blob_mask(rng, width, height, rng.uniform(0, 0.4)))


def bouncing_scene(rng: np.random.Generator, frames: int, size: tuple[int, int]) -> Scene:
    """The held-out family: a face, a coin or a piece of a photograph thrown across a held-out photograph,
    bouncing off the floor and walls and spinning; alike objects bounce too; a darkened strip of a photograph
    may stand in front as a pillar (never over the target's first position); the camera zooms slowly."""
    width, height = size
    photos = held_out_photos()
    backdrop = int(rng.integers(len(photos)))
    kind = int(rng.integers(3))
    sprite = _held_out_object(rng, kind, backdrop)
    side = min(width, height) * rng.uniform(0.12, 0.3)
    aspect = sprite.alpha.shape[1] / sprite.alpha.shape[0]
    reach = side * math.hypot(aspect, 1) / math.sqrt(aspect) / 2 + 2
    path = bouncing_path(rng, frames, width, height, reach)
    spin = rng.uniform(-8, 8) * np.arange(frames) if rng.random() < 0.6 else None
    sizes = np.repeat([[side * math.sqrt(aspect), side / math.sqrt(aspect)]], frames, axis=0)
    target = Layer(sprite, path, sizes, spin)
    behind, front = [], []
    for _ in range(int(rng.integers(0, 3))):
        other_path = bouncing_path(rng, frames, width, height, reach)
        behind.append(Layer(_held_out_object(rng, kind, backdrop), other_path, sizes, spin))
    if rng.random() < 0.4:
        pillar_width = int(side * rng.uniform(0.5, 1.2))
        pillar = photo_crop(rng, photos[rng.integers(len(photos))], pillar_width, height) * rng.uniform(0.4, 0.8)
        clear = side / 2 + pillar_width / 2 + 4
        spots = [x for x in np.linspace(clear, width - clear, 16) if abs(x - path[0, 0]) > clear]
        if spots:
            x = float(rng.choice(spots))
            front.append(
                Layer(
                    Sprite(pillar.astype(np.float32), np.ones(pillar.shape[:2], np.float32)),
                    np.full((frames, 2), [x, height / 2]),
                    np.full((frames, 2), [pillar_width, height]),
                )
            )
    background = photo_crop(rng, photos[backdrop], width * 2, height * 2)
    camera = camera_path(rng, frames, np.array([width, height], float), 0.0, rng.uniform(1.0, 1.3), 0.6)
    scene = Scene(
        background,
        camera,
        target,
        behind,
        front,
        _gain(rng, frames, 0.3),
        _motion_blur(rng, path, 0.4),
        float(rng.uniform(0, 5)),
        "an object thrown and bouncing in front of a photograph",
    )
    return scene


def _window(rng: np.random.Generator, source: np.ndarray, outline: np.ndarray) -> Sprite:
    """A random window of `source` in `outline` (its alpha, which sets the window's size)."""
    height, width = outline.shape
    return Sprite(photo_crop(rng, source, width, height, zoom=3.0), outline)


def _sibling(rng: np.random.Generator, source: np.ndarray, sprite: Sprite) -> Sprite:
    """Another window of the image `sprite` was cut from, in `sprite`'s outline (mirrored half the time):
    an object of the same kind, as another face is to a face, that colour alone does not tell apart."""
    return _window(rng, source, sprite.alpha[:, ::-1].copy() if rng.random() < 0.5 else sprite.alpha.copy())


def longterm_scene(rng: np.random.Generator, frames: int, size: tuple[int, int], held_out: bool) -> Scene:
    """The long-term family: a target that wanders, leaves the view and comes back across another border
    (`roaming_path`), may be hidden for 12 to 40 frames behind a panel while it moves on in view, among one to
    three look-alikes that stay in view. Training materials: a window of a training image in an irregular
    or geometric outline over another training image, each look-alike either a sibling (another window of
    the same image in the same outline: the colours alike, the layout not) or a colour-shifted copy. Or,
    `held_out`, the held-out family's objects over held-out photographs, its look-alikes objects of the same
    kind (other faces, other coins)."""
    width, height = size
    side = min(width, height) * rng.uniform(0.12, 0.25)
    if held_out:
        photos = held_out_photos()
        backdrop = int(rng.integers(len(photos)))
        kind = int(rng.integers(3))
        sprite = _held_out_object(rng, kind, backdrop)
        background = photos[backdrop]
    else:
        source = _training_image(rng)
        sprite_width, sprite_height = _sprite_shape(float(np.exp(rng.uniform(-0.6, 0.6))))
        outline = (
            blob_mask(rng, sprite_width, sprite_height, rng.uniform(0, 0.5))
            if rng.random() < 0.5
            else shape_mask(rng, sprite_width, sprite_height)
        )
        sprite = _window(rng, source, outline)
        background = _training_image(rng)
    aspect = sprite.alpha.shape[1] / sprite.alpha.shape[0]
    sizes = np.repeat([[side * math.sqrt(aspect), side / math.sqrt(aspect)]], frames, axis=0)
    reach = float(np.hypot(*sizes[0])) / 2 + 2
    path = roaming_path(rng, frames, width, height, reach, rng.uniform(0.8, 3), int(rng.integers(20, 50)))
    target = Layer(sprite, path, sizes)
    behind = []
    for _ in range(int(rng.integers(1, 4))):
        if held_out:
            other = _held_out_object(rng, kind, backdrop)
        elif rng.random() < 0.5:
            other = _sibling(rng, source, sprite)
        else:
            other = look_alike(rng, sprite, rng.uniform(0.3, 1.0))
        behind.append(Layer(other, wandering_path(rng, frames, width, height, rng.uniform(0.8, 3)), sizes))
    front = []
    length = int(rng.integers(12, 41))
    in_view = np.all((path >= reach) & (path <= np.array([width, height]) - reach), axis=1)
    starts = [k for k in range(20, frames - length) if in_view[k : k + length].all()]
    if starts and rng.random() < 0.7:
        start = int(rng.choice(starts))
        shown = np.zeros(frames, bool)
        shown[start : start + length] = True
        panel = photo_crop(rng, background, int(side * 2), int(side * 2)) * rng.uniform(0.5, 0.9)
        front.append(
            Layer(Sprite(panel.astype(np.float32), np.ones(panel.shape[:2], np.float32)), path.copy(), sizes * 2.2, shown=shown)
        )
    camera = camera_path(rng, frames, np.array([width, height], float), 0.0, rng.uniform(1.0, 1.15), 0.6)
    return Scene(
        photo_crop(rng, background, width * 2, height * 2),
        camera,
        target,
        behind,
        front,
        _gain(rng, frames, 0.3),
        None,
        float(rng.uniform(0, 4)),
        "an object that leaves the view and comes back elsewhere, among look-alikes",
    )


FILMED_OBJECTS = (
    ("astronaut.png", (155, 15, 145, 165), "the astronaut's head"),
    ("astronaut.png", (135, 345, 75, 72), "the mission patch on a space suit"),
    ("coffee.png", (325, 235, 80, 75), "a spoon on a saucer"),
    ("coins.png", (21, 34, 47, 44), "a coin among coins"),
    ("motorcycle_left.png", (548, 296, 133, 148), "a motorcycle's front wheel"),
)
"""Objects in scikit-image's photographs: file, box (x, y, w, h in photo pixels) and name."""


def filmed_scene(rng: np.random.Generator, frames: int, size: tuple[int, int], filmed: tuple) -> Scene:
    """A real photograph filmed by a handheld camera that pans, zooms and shakes, never showing anything
    beyond the photograph; the target is the `filmed` object in it (the demo's scenes: they read as real)."""
    width, height = size
    name, (x, y, w, h), what = filmed
    photo = skimage_photo(name)
    object_center = np.array([x + w / 2, y + h / 2])
    least_zoom = max(width / photo.shape[1], height / photo.shape[0]) * 1.02
    zoom = np.maximum(least_zoom * rng.uniform(1.05, 1.5) * _varying(rng, frames, rng.uniform(0.1, 0.3), (0.3, 1.0)), least_zoom)
    t = np.linspace(0, 1, frames)[:, None]
    sway = np.sin(2 * math.pi * rng.uniform(0.3, 1.0, 2) * t) * rng.choice([-1, 1], 2)
    shake = cv2.GaussianBlur(rng.normal(0, 3, (frames, 2)), (1, 0), 1.5).reshape(frames, 2)
    half_view = np.array([width, height]) / 2 / zoom[:, None]
    center = object_center + sway * half_view * 0.45 + shake / zoom[:, None]
    center = np.clip(center, half_view, np.array(photo.shape[1::-1]) - half_view)
    camera = np.concatenate([center, zoom[:, None]], 1)
    sprite = Sprite(photo[y : y + h, x : x + w].copy(), np.ones((h, w), np.float32))
    placed = (object_center - center) * zoom[:, None] + np.array([width, height]) / 2
    target = Layer(sprite, placed, np.array([w, h]) * zoom[:, None])
    return Scene(
        photo,
        camera,
        target,
        gain=_gain(rng, frames, 0.5),
        blur=_motion_blur(rng, placed, 0.5),
        noise=float(rng.uniform(0, 3)),
        description=f"{what}, filmed with a handheld camera",
    )


SCENES = {
    "cutouts": cutouts_scene,
    "shapes": shapes_scene,
    "bouncing": bouncing_scene,
    "longterm": lambda rng, frames, size: longterm_scene(rng, frames, size, held_out=False),
    "longterm-heldout": lambda rng, frames, size: longterm_scene(rng, frames, size, held_out=True),
}
FAMILIES = ("patches", *SCENES, "filmed")
TRAINING_FAMILIES = ("patches", "cutouts", "shapes")
HELD_OUT_FAMILY = "bouncing"
LONG_TERM_FAMILY = "longterm"
"""Targets leaving the view and coming back elsewhere, with training materials: for training and tuning."""
LONG_TERM_HELD_OUT_FAMILY = "longterm-heldout"
"""The same motion with the held-out family's objects and photographs: only to evaluate."""
DEMO_FAMILY = "filmed"


def class_name(family: str) -> str:
    """The LaSOT class folder a family's sequences are written under."""
    return patches.CLASS_NAME if family == "patches" else family


def write_family_sequence(
    family: str, folder: Path, rng: np.random.Generator, frames: int, size: tuple[int, int], index: int
) -> list[str]:
    """Renders sequence `index` (from 1) of `family` into `folder` (LaSOT files) and returns its
    attributes. `filmed` takes its objects in turn, the astronaut's head first."""
    if family == "patches":
        return patches.write_sequence(folder, rng, frames, size)
    if family == "filmed":
        scene = filmed_scene(rng, frames, size, FILMED_OBJECTS[(index - 1) % len(FILMED_OBJECTS)])
    else:
        scene = SCENES[family](rng, frames, size)
    boxes, hidden = write_lasot_sequence(folder, scene, frames, size, rng, scene.description)
    return measured_attributes(scene, boxes, hidden, size)
