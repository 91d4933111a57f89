"""The real photographs synthetic scenes are made of: those that ship inside matplotlib's and
scikit-image's wheels, read from the installed packages' data folders (nothing is fetched; scikit-image
is not even imported). They are split into a training pool and a held-out pool no training family uses.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.images import read_rgb

TRAINING_PHOTOS = (
    "astronaut.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "color.png",
    "retina.jpg",
    "logo.png",
)
TRAINING_GREY = ("brick.png", "grass.png", "gravel.png", "camera.png", "moon.png", "page.png", "text.png", "cell.png")
"""Single-channel photographs; scenes tint them."""
HELD_OUT_PHOTOS = ("chelsea.png", "coffee.png")
HELD_OUT_COINS = "coins.png"
HELD_OUT_FACES = "lfw_subset.npy"


def _skimage_data() -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise ToMPError(
            "The synthetic scenes use the photographs bundled with scikit-image, which is not installed: "
            "pip install scikit-image."
        )
    return Path(spec.submodule_search_locations[0]) / "data"


def _read(path: Path) -> np.ndarray:
    """RGB float32; transparent pixels become white. Pillow, not OpenCV, reads them: libpng through OpenCV
    prints a warning about one file's colour profile on every read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            rgba = np.asarray(image.convert("RGBA"), np.float32)
    except (OSError, UnidentifiedImageError):
        raise ToMPError(f"The bundled photograph {path} cannot be read; reinstall the package that ships it.") from None
    alpha = rgba[..., 3:] / 255
    return rgba[..., :3] * alpha + 255 * (1 - alpha)


def _colour_mapped_reliefs() -> list[np.ndarray]:
    import matplotlib
    from matplotlib import cbook

    reliefs = []
    for name, key, colormap in (("topobathy.npz", "topo", "terrain"), ("jacksboro_fault_dem.npz", "elevation", "gist_earth")):
        with np.load(cbook.get_sample_data(name, asfileobj=False)) as data:
            relief = data[key].astype(np.float32)
        relief = (relief - relief.min()) / max(float(np.ptp(relief)), 1e-6)
        reliefs.append(matplotlib.colormaps[colormap](relief)[..., :3].astype(np.float32) * 255)
    return reliefs


@functools.lru_cache(maxsize=1)
def matplotlib_samples() -> tuple[np.ndarray, ...]:
    """matplotlib's two sample photos and two colour-mapped reliefs (the `patches` family's material)."""
    from matplotlib import cbook

    photos = [
        read_rgb(Path(cbook.get_sample_data(name, asfileobj=False))).astype(np.float32)
        for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")
    ]
    return tuple(photos + _colour_mapped_reliefs())


@functools.lru_cache(maxsize=1)
def training_photos() -> tuple[np.ndarray, ...]:
    """Colour photographs for training scenes: matplotlib's samples and scikit-image's training pool."""
    folder = _skimage_data()
    return matplotlib_samples() + tuple(_read(folder / name) for name in TRAINING_PHOTOS)


@functools.lru_cache(maxsize=1)
def training_grey() -> tuple[np.ndarray, ...]:
    folder = _skimage_data()
    return tuple(_read(folder / name) for name in TRAINING_GREY)


@functools.lru_cache(maxsize=None)
def skimage_photo(name: str) -> np.ndarray:
    return _read(_skimage_data() / name)


@functools.lru_cache(maxsize=1)
def held_out_photos() -> tuple[np.ndarray, ...]:
    folder = _skimage_data()
    return tuple(_read(folder / name) for name in HELD_OUT_PHOTOS)


@functools.lru_cache(maxsize=1)
def held_out_coins() -> np.ndarray:
    return _read(_skimage_data() / HELD_OUT_COINS)


@functools.lru_cache(maxsize=1)
def held_out_faces() -> np.ndarray:
    """[200, 25, 25] grey faces in 0..255 (Labeled Faces in the Wild)."""
    faces = np.load(_skimage_data() / HELD_OUT_FACES).astype(np.float32)
    return faces * (255 / max(float(faces.max()), 1e-6))
