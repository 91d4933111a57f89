"""Long-term mode (opt-in: `TrackerParams(long_term=True)`): knowing when the target is gone and finding it
again anywhere in the frame.

Presence. A frame shows the target when the localisation found it without doubt (not `not_found`, not
`uncertain`), its score peak is at least `lt_presence_threshold`, and the reported box looks like the
annotated target: the Bhattacharyya coefficient of their colour histograms is at least
`lt_appearance_threshold`. The whole-frame search of the tiny model finds target-like patches everywhere
(any compact textured patch scores 0.6 to 0.9), and the default tracker drifts onto such patches at scores
0.3 to 0.6 without reporting a loss; the colour check, computed on the host from the frame, catches both and
costs the same on every backend. Confidence is the clipped score peak times that coefficient.

Re-detection. After `lt_redetect_after` absent frames, and then every `lt_redetect_every` absent frames,
the whole frame is tiled into search crops at the target's last scale and at twice it; the tiles go through
the backend's tracking path as one batch of crops and one batch of targets sharing the target's memory
(chunked to the backend's `max_batch`), and the best candidate whose peak reaches
`lt_redetect_threshold` and whose colours pass the appearance check becomes the target's position.
Numpy and OpenCV only, like the rest of the runtime.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from tomp_deploy.runtime.geometry import Patch, argmax2d, clip_box, decode_ltrb, sample_patch

HISTOGRAM_BINS = 8
"""Bins per RGB channel of the appearance histogram: coarse enough to ignore noise and blur, fine enough to
tell a colour-shifted look-alike from the target."""
TILE_SCALES = (1.0, 2.0)
"""Search-crop sizes of a re-detection, in multiples of the crop at the target's last scale."""
TILE_STEP = 0.5
"""Distance between neighbouring tiles' centres, as a fraction of the tile: every point of the frame lies
in the inner half of some tile, where a crop's score map is most reliable."""


def colour_histogram(frame: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    """Normalised RGB histogram of the part of `box` (x, y, w, h) inside the frame; None when none is."""
    height, width = frame.shape[:2]
    x1, y1 = max(int(math.floor(box[0])), 0), max(int(math.floor(box[1])), 0)
    x2, y2 = min(int(math.ceil(box[0] + box[2])), width), min(int(math.ceil(box[1] + box[3])), height)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    region = np.ascontiguousarray(frame[y1:y2, x1:x2])
    counts = cv2.calcHist([region], [0, 1, 2], None, [HISTOGRAM_BINS] * 3, [0, 256] * 3).ravel()
    return counts / counts.sum()


def appearance_similarity(reference: np.ndarray, frame: np.ndarray, box: np.ndarray) -> float:
    """Bhattacharyya coefficient (1: the same colours, 0: none shared) of `box`'s colours against `reference`."""
    histogram = colour_histogram(frame, box)
    if histogram is None:
        return 0.0
    return float(np.sqrt(reference * histogram).sum())


@dataclass
class Candidate:
    box: np.ndarray
    """(x, y, w, h) in image pixels."""
    score: float
    similarity: float

    @property
    def confidence(self) -> float:
        return long_term_confidence(self.score, self.similarity)


def long_term_confidence(score: float, similarity: float) -> float:
    """Long-term mode's confidence: the score peak clipped to [0, 1] times the colour similarity; 0 for a
    score that is not finite."""
    return min(max(score, 0.0), 1.0) * similarity if math.isfinite(score) else 0.0


def tile_patches(frame: np.ndarray, crop_side: float, search_size: int) -> list[Patch]:
    """Search crops covering the whole frame, at `crop_side` image pixels and at the larger `TILE_SCALES`."""
    height, width = frame.shape[:2]
    patches = []
    for factor in TILE_SCALES:
        side = crop_side * factor
        step = side * TILE_STEP
        rows = _centres(height, side, step)
        cols = _centres(width, side, step)
        for y in rows:
            for x in cols:
                patches.append(sample_patch(frame, np.array([y, x]), np.full(2, side), search_size, mode="replicate"))
    return patches


def _centres(extent: int, side: float, step: float) -> list[float]:
    """Tile centres along one axis: one in the middle when a tile covers the extent, else evenly spaced from
    half a step inside the first edge to half a step inside the last."""
    if side * (1 - TILE_STEP) >= extent:
        return [(extent - 1) / 2]
    count = max(int(math.ceil((extent - step) / step)) + 1, 2)
    return list(np.linspace(step / 2, extent - 1 - step / 2, count))


def best_candidate(
    patches: list[Patch], located: list, frame: np.ndarray, similarity, search_size: int, stride: int, params
) -> Candidate | None:
    """The tile peak with the highest confidence among those scoring at least `lt_redetect_threshold` and
    passing the appearance check (`similarity(frame, box)`); None when no tile has one."""
    height, width = frame.shape[:2]
    best = None
    for patch, found in zip(patches, located):
        if not (np.isfinite(found.scores).all() and np.isfinite(found.ltrb).all()):
            continue
        score, cell = argmax2d(found.scores)
        if score < params.lt_redetect_threshold:
            continue
        box = decode_ltrb(found.ltrb, tuple(cell), patch.coords, search_size, stride)
        box = clip_box(box, width, height, params.min_box_size)
        candidate = Candidate(box, float(score), similarity(frame, box))
        if candidate.similarity >= params.lt_appearance_threshold and (best is None or candidate.confidence > best.confidence):
            best = candidate
    return best
