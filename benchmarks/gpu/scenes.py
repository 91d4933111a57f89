"""The run's video: squares scenes (`benchmarks.targets`, drawn with numpy alone, so that a stock GPU image
without matplotlib or scikit-image can make them) written in the LaSOT layout and read back through the
toolkit's own LaSOT reader, for the tracked parity sequence and as training data."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from benchmarks.targets import squares_tracks
from tomp_deploy.evaluation.datasets.readers import read_lasot
from tomp_deploy.evaluation.datasets.sequence import Sequence
from tomp_deploy.runtime.images import read_rgb

CLASS = "squares"
SQUARES_PER_SCENE = 3
"""The tracked square and two others like it (distractors)."""


def write_squares_dataset(root: Path, sequences: int, frames: int, seed: int) -> Path:
    """ROOT/squares/squares-<k>/img/00000001.jpg... with groundtruth.txt: the first square of each scene."""
    for k in range(1, sequences + 1):
        folder = root / CLASS / f"{CLASS}-{k}"
        (folder / "img").mkdir(parents=True, exist_ok=True)
        images, tracks = squares_tracks(SQUARES_PER_SCENE, frames, seed=seed + k)
        for index, image in enumerate(images, start=1):
            cv2.imwrite(str(folder / "img" / f"{index:08d}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        np.savetxt(folder / "groundtruth.txt", tracks[0], fmt="%d", delimiter=",")
    return root


def parity_sequence(work: Path, frames: int) -> tuple[Sequence, list[np.ndarray]]:
    """One written squares sequence and its frames decoded once (every tracker sees the same pixels)."""
    sequence = read_lasot(write_squares_dataset(work / "parity-sequence", 1, frames, seed=100))[0]
    return sequence, [read_rgb(path) for path in sequence.frames]
