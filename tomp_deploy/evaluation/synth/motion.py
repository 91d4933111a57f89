"""Motion models, each a pure function of the generator's draws: centre paths in frame pixels."""

from __future__ import annotations

import math

import numpy as np


def smooth_path(rng: np.random.Generator, frames: int, width: int, height: int, fast: bool) -> np.ndarray:
    """A sum of three random sinusoids per axis around the frame centre (the `patches` family's path)."""
    t = np.linspace(0, 1, frames)[:, None]
    amplitude = np.array([width, height]) * (0.35 if fast else 0.2)
    cycles = rng.uniform(0.5, 3.0 if fast else 1.2, (3, 2))
    phases = rng.uniform(0, 2 * math.pi, (3, 2))
    path = sum(np.sin(2 * math.pi * cycles[k] * t + phases[k]) / (k + 1) for k in range(3)) / 1.8
    return np.array([width, height]) / 2 + amplitude * path


def wandering_path(
    rng: np.random.Generator, frames: int, width: int, height: int, speed: float, margin: float = 0.1
) -> np.ndarray:
    """A velocity that drifts as an Ornstein-Uhlenbeck process (speed in pixels per frame), reflected at
    the frame's inner margin: starts, stops and turns at random."""
    low = np.array([width, height]) * margin
    high = np.array([width, height]) * (1 - margin)
    position = rng.uniform(low, high)
    velocity = rng.normal(0, speed, 2)
    path = np.empty((frames, 2))
    for index in range(frames):
        path[index] = position
        velocity = 0.9 * velocity + rng.normal(0, speed * 0.45, 2)
        position = position + velocity
        for axis in range(2):
            if position[axis] < low[axis] or position[axis] > high[axis]:
                position[axis] = np.clip(position[axis], low[axis], high[axis])
                velocity[axis] = -velocity[axis]
    return path


def bouncing_path(rng: np.random.Generator, frames: int, width: int, height: int, radius: float) -> np.ndarray:
    """A thrown object (reaching `radius` from its centre) under gravity that bounces off the floor and the
    side walls, losing some energy at each bounce and thrown again when it comes to rest; it starts inside
    the frame and may fly out of the top (the held-out family's motion, unlike any training path)."""
    gravity = rng.uniform(0.25, 0.7)
    floor = height - radius
    position = np.array([rng.uniform(radius, width - radius), rng.uniform(radius, height * 0.5)])
    velocity = np.array([rng.uniform(2, 6) * rng.choice([-1, 1]), rng.uniform(-4, 0)])
    path = np.empty((frames, 2))
    for index in range(frames):
        path[index] = position
        velocity[1] += gravity
        position = position + velocity
        if position[1] > floor:
            position[1] = floor - (position[1] - floor)
            velocity[1] = -velocity[1] * rng.uniform(0.75, 0.95)
            if abs(velocity[1]) < 2 * gravity:
                velocity[1] = -rng.uniform(6, 11)
        for bound, sign in ((radius, 1), (width - radius, -1)):
            if sign * (position[0] - bound) < 0:
                position[0] = 2 * bound - position[0]
                velocity[0] = -velocity[0]
    return path


def camera_path(
    rng: np.random.Generator, frames: int, center: np.ndarray, pan: float, zoom_range: float, base_zoom: float
) -> np.ndarray:
    """[N, 3] camera centre and zoom: a slow pan of up to `pan` background pixels and a zoom that varies by
    up to a factor `zoom_range` around `base_zoom`."""
    t = np.linspace(0, 1, frames)
    phases = rng.uniform(0, 2 * math.pi, 3)
    cycles = rng.uniform(0.3, 1.0, 3)
    x = center[0] + pan * np.sin(2 * math.pi * cycles[0] * t + phases[0])
    y = center[1] + pan * 0.6 * np.sin(2 * math.pi * cycles[1] * t + phases[1])
    zoom = base_zoom * np.exp(math.log(zoom_range) * np.sin(2 * math.pi * cycles[2] * t + phases[2]))
    return np.stack([x, y, zoom], axis=1)


def roaming_path(
    rng: np.random.Generator, frames: int, width: int, height: int, reach: float, speed: float, first_exit: int
) -> np.ndarray:
    """A wandering centre (wholly in view: at least `reach`, the object's half extent, from every border)
    that, from frame `first_exit` on, now and then heads for a border, leaves the view entirely (its
    centre `reach` beyond the border), stays away for 15 to 60 frames and comes back across a border
    somewhere else: the long-term family's motion."""
    size = np.array([width, height], float)
    low = np.maximum(size * 0.1, reach)
    high = size - low
    position = rng.uniform(low, high)
    velocity = rng.normal(0, speed, 2)
    path = np.empty((frames, 2))
    index = 0
    next_exit = first_exit
    while index < frames:
        path[index] = position
        index += 1
        if index < next_exit:
            velocity = 0.9 * velocity + rng.normal(0, speed * 0.45, 2)
            position = position + velocity
            for axis in range(2):
                if not low[axis] <= position[axis] <= high[axis]:
                    position[axis] = np.clip(position[axis], low[axis], high[axis])
                    velocity[axis] = -velocity[axis]
            continue
        outside = _point_beyond_border(rng, size, reach)
        step = rng.uniform(4, 9)
        while index < frames and np.linalg.norm(outside - position) > step:
            position = position + (outside - position) / np.linalg.norm(outside - position) * step
            path[index] = position
            index += 1
        away = int(rng.integers(15, 61))
        path[index : index + away] = outside
        index += away
        position = _point_beyond_border(rng, size, reach)
        inside = rng.uniform(low, high)
        while index < frames and np.linalg.norm(inside - position) > step:
            position = position + (inside - position) / np.linalg.norm(inside - position) * step
            path[index] = position
            index += 1
        velocity = rng.normal(0, speed, 2)
        next_exit = index + int(rng.integers(30, 90))
    return path


def _point_beyond_border(rng: np.random.Generator, size: np.ndarray, reach: float) -> np.ndarray:
    """A point `reach` beyond a random border of the frame, anywhere along it."""
    border = int(rng.integers(4))
    along = rng.uniform(0.1, 0.9)
    if border == 0:
        return np.array([-reach, along * size[1]])
    if border == 1:
        return np.array([size[0] + reach, along * size[1]])
    if border == 2:
        return np.array([along * size[0], -reach])
    return np.array([along * size[0], size[1] + reach])
