"""Long-term mode (opt-in: `TrackerParams(long_term=True)`): knowing when the target is gone and finding it
again anywhere in the frame.

Presence. A frame shows the target when the localisation found it (not `not_found`) and the calibrated
confidence (`runtime.confidence.PRESENCE`: a logistic model over the score map's shape and the box's colours
and layout against the target's) is at least `lt_presence_threshold`. The colour and layout checks are
computed on the host from the frame, and cost the same on every backend.

Re-detection. After `lt_redetect_after` absent frames, and then every `lt_redetect_every` absent frames,
the whole frame is tiled into search crops at the target's scale on its newest memory frame (a frame only
reported present may be on a look-alike of another size) and at twice it; the tiles go through the
backend's tracking path as one batch of crops and one batch of targets sharing the target's memory (chunked
to the backend's `max_batch`); each tile's peak box is a candidate with the features of a tracked frame,
scored by the candidates' own model (`runtime.confidence.CANDIDATE`), and the most confident one becomes
the target's position when its confidence reaches `lt_redetect_threshold` and beats the frame's own.
Numpy and OpenCV only, like the rest of the runtime.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tomp_deploy.runtime.confidence import CANDIDATE
from tomp_deploy.runtime.geometry import Patch, argmax2d, clip_box, decode_ltrb, sample_location, sample_patch

TILE_SCALES = (1.0, 2.0)
"""Search-crop sizes of a re-detection, in multiples of the crop at the target's scale on its newest memory frame."""
TILE_STEP = 0.5
"""Distance between neighbouring tiles' centres, as a fraction of the tile: every point of the frame lies
in the inner half of some tile, where a crop's score map is most reliable."""


@dataclass
class Candidate:
    box: np.ndarray
    """(x, y, w, h) in image pixels."""
    confidence: float
    """Candidate confidence (`runtime.confidence.CANDIDATE`): the probability that the box is on the target."""
    features: np.ndarray
    """The confidence's features, in `runtime.confidence.FEATURES` order."""


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


def tile_candidates(
    patches: list[Patch], located: list, frame: np.ndarray, features_of, search_size: int, stride: int, params
) -> list[Candidate]:
    """Each tile's peak box with its features and candidate confidence (`runtime.confidence.CANDIDATE`); a
    tile whose maps are not finite gives none. `features_of(scores, box, frame, sample_scale)` gives a box's
    features."""
    height, width = frame.shape[:2]
    candidates = []
    for patch, found in zip(patches, located):
        if not (np.isfinite(found.scores).all() and np.isfinite(found.ltrb).all()):
            continue
        _, cell = argmax2d(found.scores)
        box = decode_ltrb(found.ltrb, tuple(cell), patch.coords, search_size, stride)
        box = clip_box(box, width, height, params.min_box_size)
        features = features_of(found.scores, box, frame, sample_location(patch.coords, search_size)[1])
        candidates.append(Candidate(box, CANDIDATE.probability(features, params), features))
    return candidates


def best_candidate(candidates: list[Candidate], params) -> Candidate | None:
    """The most confident candidate, when its confidence reaches `lt_redetect_threshold`; None otherwise."""
    best = max(candidates, key=lambda candidate: candidate.confidence, default=None)
    return best if best is not None and best.confidence >= params.lt_redetect_threshold else None
