"""Turns sampled frames into network inputs and targets: jittered crops, augmentation, labels, ltrb."""

from __future__ import annotations

import math

import cv2
import numpy as np

from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.geometry import encode_ltrb, gaussian_label, sample_patch
from tomp_deploy.runtime.images import read_rgb
from tomp_deploy.runtime.presets import ModelConfig
from tomp_deploy.train.config import TrainConfig
from tomp_deploy.train.data import TrainSequence


def jittered_box(box: np.ndarray, rng: np.random.Generator, scale_jitter: float, center_jitter: float) -> np.ndarray:
    """The reference's jitter: size x exp(N(0,1) * scale_jitter); centre moved uniformly within
    +-0.5 * center_jitter * sqrt(jittered area)."""
    size = box[2:] * np.exp(rng.standard_normal(2) * scale_jitter)
    max_offset = math.sqrt(size.prod()) * center_jitter
    center = box[:2] + 0.5 * box[2:] + max_offset * (rng.random(2) - 0.5)
    return np.concatenate([center - 0.5 * size, size])


def crop_around(
    image: np.ndarray, box: np.ndarray, crop_box: np.ndarray, config: TrainConfig, output_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Crops the search region of `crop_box` (the search area scale x its size) and maps `box` into it."""
    center = np.array([crop_box[1] + crop_box[3] / 2, crop_box[0] + crop_box[2] / 2])
    side = math.sqrt(crop_box[2] * crop_box[3]) * config.tracker.search_area_scale
    patch = sample_patch(
        image,
        center,
        np.array([side, side]),
        output_size,
        mode=config.tracker.border_mode,
        max_scale_change=config.tracker.patch_max_scale_change,
    )
    top, left, bottom, right = patch.coords
    scale_y, scale_x = (bottom - top) / output_size, (right - left) / output_size
    mapped = np.array([(box[0] - left) / scale_x, (box[1] - top) / scale_y, box[2] / scale_x, box[3] / scale_y])
    return patch.pixels, mapped


def away_from_target(box: np.ndarray, crop_box: np.ndarray, rng: np.random.Generator, config: TrainConfig) -> np.ndarray:
    """`crop_box` (its size kept) centred in a random direction from `box` just far enough that its search
    region no longer overlaps it."""
    half_side = math.sqrt(crop_box[2] * crop_box[3]) * config.tracker.search_area_scale / 2
    angle = rng.uniform(0, 2 * math.pi)
    direction = np.array([math.cos(angle), math.sin(angle)])
    centre = box[:2] + box[2:] / 2 + direction * (half_side + box[2:].max()) / np.abs(direction).max()
    return np.concatenate([centre - crop_box[2:] / 2, crop_box[2:]])


def sampling_region(box: np.ndarray, feature_size: int, stride: int, radius: float) -> np.ndarray:
    """[1, F, F] cells whose centre lies within `radius` cells of the box centre and inside the box."""
    centers = (np.arange(feature_size) * stride + stride // 2).astype(np.float64)
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    x1, x2 = max(cx - radius * stride, box[0]), min(cx + radius * stride, box[0] + box[2])
    y1, y2 = max(cy - radius * stride, box[1]), min(cy + radius * stride, box[1] + box[3])
    inside_x = (centers > x1) & (centers < x2)
    inside_y = (centers > y1) & (centers < y2)
    return (inside_y[:, None] & inside_x[None, :]).astype(np.float32)[None]


def training_label(box: np.ndarray, model: ModelConfig, config: TrainConfig) -> np.ndarray:
    """Gaussian of sigma (output_sigma_factor / search_area_scale) * F cells at the box centre."""
    size, cells = model.search_size, model.feature_size
    center = np.array([box[1] + box[3] / 2, box[0] + box[2] / 2])
    sigma = config.tracker.output_sigma_factor / config.tracker.search_area_scale * cells
    return gaussian_label(cells, sigma, cells * (center - size / 2) / size)


def _read(path) -> np.ndarray:
    try:
        return read_rgb(path).astype(np.float32)
    except ToMPError as exc:
        raise ToMPError(f"Training frame {exc} The dataset is incomplete or corrupt.") from None


def _flip(image: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return image[:, ::-1].copy(), np.array([image.shape[1] - box[0] - box[2], box[1], box[2], box[3]])


def process(
    sequence: TrainSequence,
    train_ids: list[int],
    test_ids: list[int],
    rng: np.random.Generator,
    model: ModelConfig,
    config: TrainConfig,
) -> dict[str, np.ndarray]:
    """One training sample: images (0..255, CHW), labels, ltrb targets and the test sampling region. A test
    frame drawn absent (`absent_test_probability`) is cropped off the target: label and region all zero."""
    grey = rng.random() < config.grayscale_probability
    joint_flip = rng.random() < config.flip_probability
    output = {}
    for split, ids, center_jitter, scale_jitter in (
        ("train", train_ids, config.center_jitter_train, config.scale_jitter_train),
        ("test", test_ids, config.center_jitter_test, config.scale_jitter_test),
    ):
        split_flip = rng.random() < config.flip_probability
        images, labels, ltrbs, regions = [], [], [], []
        for frame_id in ids:
            image, box = _read(sequence.frames[frame_id]), sequence.boxes[frame_id].astype(np.float64)
            if grey:
                image = np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
            if joint_flip:
                image, box = _flip(image, box)
            region_box = jittered_box(box, rng, scale_jitter, center_jitter)
            absent = split == "test" and config.absent_test_probability > 0 and rng.random() < config.absent_test_probability
            if absent:
                region_box = away_from_target(box, region_box, rng, config)
            crop, crop_box = crop_around(image, box, region_box, config, model.search_size)
            crop = np.clip(crop * rng.uniform(1 - config.brightness_jitter, 1 + config.brightness_jitter), 0, 255)
            if split_flip:
                crop, crop_box = _flip(crop, crop_box)
            images.append(crop.transpose(2, 0, 1))
            label = training_label(crop_box, model, config)
            region = sampling_region(crop_box, model.feature_size, model.feature_stride, config.center_sampling_radius)
            labels.append(np.zeros_like(label) if absent else label)
            ltrbs.append(encode_ltrb(crop_box, model.feature_size, model.feature_stride))
            regions.append(np.zeros_like(region) if absent else region)
        output[f"{split}_images"] = np.stack(images).astype(np.float32)
        output[f"{split}_label"] = np.stack(labels)
        output[f"{split}_ltrb"] = np.stack(ltrbs)
        output[f"{split}_region"] = np.stack(regions)
    return output
