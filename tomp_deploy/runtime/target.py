"""One target of ToMP's two-stage online tracker: its state, crops, memory and per-frame update (numpy +
OpenCV only; no torch). The backend calls are left to the trackers (`tracker`, `streams`), so that the
targets of a step share one batched backbone call and one batched predictor and head call.

It reproduces the reference tracker (pytracking's `tomp` with the `tomp50`/`tomp101` parameters):
crops at 5x the target, a memory of the annotated frame plus the newest confident frame (features
cached, never recomputed), one predictor call for both stages through the key padding mask, advanced
localisation, the box read from the ltrb map at the score peak, search-area rescaling after a loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from tomp_deploy.runtime.backends.base import FeatureMemory, TargetQuery
from tomp_deploy.runtime.confidence import PRESENCE, Appearance, score_map_features
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.geometry import (
    Patch,
    box_in_crop,
    center_crop,
    clip_box,
    decode_ltrb,
    encode_ltrb,
    gaussian_label,
    sample_location,
    sample_patch,
)
from tomp_deploy.runtime.images import check_image_size
from tomp_deploy.runtime.localization import NOT_FOUND, UNCERTAIN, Localization, default_confidence, localize
from tomp_deploy.runtime.long_term import Candidate
from tomp_deploy.runtime.presets import ModelConfig, TrackerParams

MAX_BOX_TO_FRAME = 4
MIN_BOX_SIDE = 1.0
"""An initial box narrower or lower than a pixel has no appearance to learn; its search region would be
a fraction of a pixel scaled up to the whole crop."""
"""An initial box may be at most this many times the frame in width and height: its search region
(5x the target, sampled at twice that for the first frame) must still map onto the image."""


@dataclass
class TrackResult:
    box: np.ndarray
    """(x, y, w, h) in image pixels."""
    score: float
    """Maximum of the score map."""
    flag: str
    """Localisation outcome: normal, hard_negative, uncertain or not_found."""
    score_map: np.ndarray
    """[F, F] classifier scores over the search region."""
    search_region: np.ndarray
    """(x, y, w, h) of the search region in image pixels."""
    confidence: float
    """How sure the tracker is that the target is in `box`, in [0, 1] (`localization.default_confidence`)."""
    present: bool
    """Whether the tracker found the target on this frame; False whenever the score is not finite."""
    times: dict[str, float] = field(default_factory=dict)
    """Seconds spent per stage (crop, backbone, predictor, head, decode)."""
    memory_frames: int = 0
    """Memory frames the predictor saw for this frame (the annotated one, plus recent ones once confident)."""
    confidence_features: np.ndarray | None = None
    """Long-term mode: the features `confidence` was calibrated from (`runtime.confidence.FEATURES`); None in
    the default mode and where the scores were not finite."""
    candidates: list[Candidate] = field(default_factory=list)
    """Long-term mode: the whole-frame search's candidates on a frame where one ran (`runtime.long_term`),
    whether or not one was taken; empty on every other frame."""


def as_rgb_frame(frame: np.ndarray) -> np.ndarray:
    """A uint8 frame as RGB [H, W, 3] (a view where it can be): grey-scale (H x W or H x W x 1) is replicated
    and alpha dropped; the crops convert to float. Any other dtype is refused rather than guessed at: float
    frames come in 0..1 as often as in 0..255, and uint16, bool or complex ones have no single meaning."""
    if not isinstance(frame, np.ndarray):
        raise ToMPError(f"A frame is a numpy array (H x W x 3, uint8 RGB); got {type(frame).__name__}.")
    if frame.dtype != np.uint8:
        raise ToMPError(
            f"A frame must be uint8 RGB (0..255); got dtype {frame.dtype}. Convert it first: float frames in 0..1 "
            "with (frame * 255).round().astype(np.uint8), float frames in 0..255 with "
            "np.clip(frame, 0, 255).round().astype(np.uint8), 16-bit ones with (frame >> 8).astype(np.uint8)."
        )
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if frame.ndim != 3 or frame.shape[2] not in (1, 3, 4) or min(frame.shape[:2]) < 1:
        raise ToMPError(f"A frame must be H x W (grey), H x W x 3 (RGB) or H x W x 4 (RGBA); got shape {frame.shape}.")
    check_image_size(frame.shape[1], frame.shape[0], "A frame")
    if frame.shape[2] == 1:
        frame = np.repeat(frame, 3, axis=2)
    elif frame.shape[2] == 4:
        frame = frame[:, :, :3]
    return frame


def validate_box(box, frame_shape: tuple[int, ...]) -> np.ndarray:
    """Checks an initial (x, y, w, h) box against the frame; returns it as float64."""
    try:
        values = np.asarray(box, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ToMPError(f"A box is four numbers x,y,w,h; got {box!r}.") from None
    if values.shape != (4,):
        raise ToMPError(f"A box is four numbers x,y,w,h; got {box!r}.")
    if not np.isfinite(values).all():
        raise ToMPError(f"The initial box {values.tolist()} contains NaN or infinity.")
    x, y, w, h = values
    if w < MIN_BOX_SIDE or h < MIN_BOX_SIDE:
        raise ToMPError(
            f"The initial box {values.tolist()} is smaller than {MIN_BOX_SIDE:g} pixel in width or height; "
            "give x,y,w,h in pixels with w,h >= 1."
        )
    height, width = frame_shape[:2]
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise ToMPError(
            f"The initial box {values.tolist()} lies outside the {width}x{height} frame; boxes are x,y,w,h "
            "in pixels from the top-left corner."
        )
    if w > MAX_BOX_TO_FRAME * width or h > MAX_BOX_TO_FRAME * height:
        raise ToMPError(
            f"The initial box {values.tolist()} is more than {MAX_BOX_TO_FRAME} times the {width}x{height} frame; "
            "boxes are x,y,w,h in pixels of this frame (not of another resolution)."
        )
    return values


class TargetState:
    """Everything the tracker knows about one target; the backend calls are left to the caller so that
    several targets share one batched backbone call and one batched predictor and head call."""

    def __init__(
        self, config: ModelConfig, params: TrackerParams, frame_shape: tuple[int, ...], box: np.ndarray, memory: FeatureMemory
    ):
        self.config = config
        self.params = params
        self.frame_shape = frame_shape[:2]
        box = validate_box(box, frame_shape)
        self.pos = np.array([box[1] + (box[3] - 1) / 2, box[0] + (box[2] - 1) / 2])
        self.target_size = np.array([box[3], box[2]])
        size = config.search_size
        self.target_scale = math.sqrt(np.prod(self.target_size * params.search_area_scale)) / size
        self.base_target_size = self.target_size / self.target_scale
        self.sigma = math.sqrt(np.prod(config.feature_size / size * self.base_target_size)) * params.output_sigma_factor
        self.target_scales: list[float] = []
        self.not_found_count = 0
        self.appearance: Appearance | None = None
        """Long-term mode: the target's look on the annotated frame and the newest memory frame."""
        self.absent_frames = 0
        """Long-term mode: consecutive frames without the target."""
        self.trusted_scale = self.target_scale
        """The target's scale on the newest frame stored in the memory (the annotated one at first): long-term
        mode's re-detection tiles at it. A frame merely reported present may be on a look-alike of another
        size, and tiles at that size miss the target."""

        slots = config.memory_size
        cells = config.feature_size
        self.memory = memory
        self.memory_label = np.zeros((slots, cells, cells), np.float32)
        self.memory_box = np.zeros((slots, 4), np.float64)
        self.memory_valid = np.zeros(slots, bool)
        self._next_recent_slot = 1

    # --- initial frame ---
    def initial_patch(self, frame: np.ndarray) -> Patch:
        """The annotated frame's crop, sampled at `init_expansion_factor` times the size and centre-cropped."""
        self.init_sample_pos = np.round(self.pos)
        if self.params.long_term:
            self.appearance = Appearance(frame, self.output_box())
        size = self.config.search_size
        expanded = size * self.params.init_expansion_factor
        patch = sample_patch(frame, self.init_sample_pos, np.full(2, self.target_scale * expanded), expanded)
        return Patch(center_crop(patch.pixels, size), patch.coords)

    def set_initial_feature(self, features, index: int) -> None:
        self._store(0, features, index, self.pos, self.init_sample_pos, self.target_scale)

    def _store(self, slot: int, features, index: int, pos: np.ndarray, sample_pos: np.ndarray, sample_scale: float) -> None:
        size = self.config.search_size
        center = self.config.feature_size * (pos - sample_pos) / (sample_scale * size)
        self.memory.store(slot, features, index)
        self.memory_label[slot] = gaussian_label(self.config.feature_size, self.sigma, center)
        self.memory_box[slot] = box_in_crop(pos, self.target_size, sample_pos, sample_scale, size)
        self.memory_valid[slot] = True

    # --- every later frame ---
    def search_patch(self, frame: np.ndarray) -> Patch:
        config = self.config
        # The reference centres the crop half a cell off the target for an even feature size.
        half_cell = ((config.feature_size + 1) % 2) * self.target_scale * config.search_size / (2 * config.feature_size)
        return sample_patch(
            frame,
            self.pos + half_cell,
            np.full(2, self.target_scale * config.search_size),
            config.search_size,
            mode=self.params.border_mode,
            max_scale_change=self.params.patch_max_scale_change,
        )

    def query(self, features, index: int) -> TargetQuery:
        """This target's share of a `locate` call on feature `index` of `features` (its search crop)."""
        return TargetQuery(self.memory, features, index, *self.predictor_inputs())

    def predictor_inputs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """This target's `train_label`, `train_ltrb` and `key_padding_mask` rows for its current memory."""
        config = self.config
        cells = config.feature_size * config.feature_size
        ltrb = np.stack([encode_ltrb(b, config.feature_size, config.feature_stride) for b in self.memory_box])
        mask = np.zeros((2, config.num_tokens), bool)
        for slot in range(config.memory_size):
            hidden_in_cls = not self.memory_valid[slot]
            hidden_in_bbreg = hidden_in_cls or slot > 0  # the box regressor sees the annotated frame only
            mask[0, slot * cells : (slot + 1) * cells] = hidden_in_cls
            mask[1, slot * cells : (slot + 1) * cells] = hidden_in_bbreg
        return self.memory_label, ltrb, mask

    def update(self, patch: Patch, features, index: int, scores: np.ndarray, ltrb: np.ndarray, frame: np.ndarray) -> TrackResult:
        """Where the target is on `frame`, from its crop's score and ltrb maps; moves the target there and
        stores the frame in the memory when confident (in long-term mode, only where the frame shows it)."""
        config, params = self.config, self.params
        size = config.search_size
        sample_pos, sample_scale = sample_location(patch.coords, size)
        previous_offset = (self.pos - sample_pos) / ((size / config.feature_size) * sample_scale)
        if np.isfinite(scores).all() and np.isfinite(ltrb).all():
            found = localize(scores, self.target_size, previous_offset, sample_scale, size, params)
        else:  # a backend that returns NaN or infinity has not found the target, whatever its peak says
            found = Localization(NOT_FOUND, np.zeros(2, int), math.nan)

        box = decode_ltrb(ltrb, tuple(found.cell), patch.coords, size, config.feature_stride)
        box = clip_box(box, self.frame_shape[1], self.frame_shape[0], params.min_box_size)
        confidence, present = default_confidence(found)
        if params.long_term:
            cues, confidence, present = self._long_term_presence(found, scores, frame, box, sample_scale)
        if found.flag != NOT_FOUND:
            self._move_to(box)
        elif params.search_area_rescaling_at_occlusion:
            self._rescale_search_area()

        confident = found.flag not in (NOT_FOUND, UNCERTAIN) and found.max_score > params.conf_ths and present
        if confident:
            self._store(self._replace_slot(), features, index, self.pos, sample_pos, sample_scale)
            self.trusted_scale = self.target_scale
            if params.long_term:
                self.appearance.remember(frame, box)

        region = np.array(
            [patch.coords[1], patch.coords[0], patch.coords[3] - patch.coords[1] - 1, patch.coords[2] - patch.coords[0] - 1]
        )
        result = TrackResult(self.output_box(), found.max_score, found.flag, scores, region, confidence, present)
        if params.long_term:
            result.confidence_features = cues
        return result

    def output_box(self) -> np.ndarray:
        """The target's (x, y, w, h) as the tracker reports it."""
        return np.array(
            [
                self.pos[1] - (self.target_size[1] - 1) / 2,
                self.pos[0] - (self.target_size[0] - 1) / 2,
                self.target_size[1],
                self.target_size[0],
            ]
        )

    def _move_to(self, box: np.ndarray) -> None:
        self.pos = np.array([box[1] + box[3] / 2, box[0] + box[2] / 2])
        self.target_size = np.array([box[3], box[2]])
        self.target_scale = math.sqrt(np.prod(self.target_size) / np.prod(self.base_target_size))
        self.target_scales.append(self.target_scale)

    def _long_term_presence(
        self, found: Localization, scores: np.ndarray, frame: np.ndarray, box: np.ndarray, sample_scale: float
    ) -> tuple[np.ndarray | None, float, bool]:
        """Long-term mode's confidence features, calibrated confidence and presence (`runtime.long_term`);
        counts the absent frames. A frame whose scores are not finite has no features and confidence 0."""
        if math.isfinite(found.max_score):
            features = self.features(scores, box, frame, sample_scale)
            confidence = PRESENCE.probability(features, self.params)
        else:
            features, confidence = None, 0.0
        present = found.flag != NOT_FOUND and confidence >= self.params.lt_presence_threshold
        self.absent_frames = 0 if present else self.absent_frames + 1
        return features, confidence, present

    def features(self, scores: np.ndarray, box: np.ndarray, frame: np.ndarray, sample_scale: float) -> np.ndarray:
        """The confidence features (`runtime.confidence.FEATURES`) of a box read from a finite score map of a
        crop at `sample_scale`."""
        config = self.config
        neighbourhood = (
            self.params.target_neighborhood_scale * (self.target_size / sample_scale) * (config.feature_size / config.search_size)
        )
        return np.concatenate([score_map_features(scores, neighbourhood), self.appearance.similarity(frame, box)])

    def redetection_due(self) -> bool:
        """Long-term mode: whether this frame's whole-frame search is due (the target absent long enough)."""
        after, every = int(self.params.lt_redetect_after), int(self.params.lt_redetect_every)
        return self.params.long_term and self.absent_frames >= after and (self.absent_frames - after) % every == 0

    def redetected(self, candidate: Candidate, result: TrackResult) -> TrackResult:
        """Moves the target to a verified re-detection more confident than the frame's own result, and
        reports it there."""
        if candidate.confidence <= result.confidence:
            return result
        self._move_to(candidate.box)
        self.not_found_count = 0
        self.absent_frames = 0
        result.box = self.output_box()
        result.confidence, result.present = candidate.confidence, True
        result.confidence_features = candidate.features
        return result

    def _replace_slot(self) -> int:
        """The annotated frame (slot 0) is kept; the newest confident frame replaces the oldest recent
        one (with the reference's memory of two: always slot 1)."""
        slot = self._next_recent_slot
        self._next_recent_slot = slot % (self.config.memory_size - 1) + 1
        return slot

    def _rescale_search_area(self) -> None:
        """After a loss, widen the search to the mean of recent scales at least as large as the last."""
        if not self.target_scales:
            return
        self.not_found_count += 1
        count = max(2, min(30, self.not_found_count))
        history = np.array(self.target_scales[-60:])
        history = history[history >= history[-1]][-count:]
        self.target_scale = float(history.mean())
