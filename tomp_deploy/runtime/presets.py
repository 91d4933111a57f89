"""Model configurations, tracker parameters and their presets: the one source of truth for constants.

Importing this module needs no torch, so the runtime and `model.json` readers can use it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from tomp_deploy.runtime.errors import ToMPError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

BACKBONE_CHANNELS = {"resnet18": 256, "resnet34": 256, "resnet50": 1024, "resnet101": 1024}
"""Channels of each supported torchvision ResNet's `layer3` output (stride 16)."""


def _from_dict(cls, values: dict, what: str):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ToMPError(
            f"Unknown {what} keys {unknown}; known keys are {sorted(known)}. "
            "The file was written by another version of tomp-deploy or is not a ToMP file."
        )
    return cls(**values)


def _size(default: int, limit: int):
    """A size field of a model config, whole and in 1..`limit`: generous for any ToMP, and a cap on what a
    config read from a file can make the loader allocate."""
    return field(default=default, metadata={"limit": limit})


def _positive(default: float):
    """A tracker parameter that is a size or a scale: a finite number above 0."""
    return field(default=default, metadata={"positive": True})


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of one ToMP network. Every backend and export reads its sizes from here."""

    backbone: str = "resnet50"
    feature_dim: int = _size(256, 4096)
    num_heads: int = _size(8, 64)
    num_encoder_layers: int = _size(6, 64)
    num_decoder_layers: int = _size(6, 64)
    dim_feedforward: int = _size(2048, 65536)
    feature_size: int = _size(18, 64)
    """Cells per side of a frame's feature map: the search area (288 px) over the stride."""
    feature_stride: int = _size(16, 64)
    memory_size: int = _size(2, 16)
    """Training frames the predictor sees: the annotated one and the latest confident one."""
    use_test_frame_encoding: bool = True
    head_filter_size: int = _size(1, 16)
    """The reference's `filter_size`; it only enters the head features' L2-norm scale."""

    def __post_init__(self) -> None:
        for size in (f for f in fields(self) if "limit" in f.metadata):
            name, limit, value = size.name, size.metadata["limit"], getattr(self, size.name)
            if type(value) is not int or not 1 <= value <= limit:
                raise ToMPError(
                    f"{name} = {value!r} is not a whole number in 1..{limit}; the model config is damaged or not a ToMP one."
                )
        if type(self.use_test_frame_encoding) is not bool:
            raise ToMPError(f"use_test_frame_encoding = {self.use_test_frame_encoding!r} is not true or false.")
        if self.backbone not in BACKBONE_CHANNELS:
            raise ToMPError(f"Unsupported backbone {self.backbone!r}; choose one of {sorted(BACKBONE_CHANNELS)}.")
        if self.feature_dim % self.num_heads:
            raise ToMPError(f"feature_dim {self.feature_dim} is not divisible by num_heads {self.num_heads}.")
        if self.feature_dim % 4:
            raise ToMPError(f"feature_dim {self.feature_dim} must be a multiple of 4 (box encoding MLP).")

    @property
    def search_size(self) -> int:
        """Side of the square image crop fed to the backbone (288 for the paper)."""
        return self.feature_size * self.feature_stride

    @property
    def backbone_channels(self) -> int:
        return BACKBONE_CHANNELS[self.backbone]

    @property
    def head_norm_scale(self) -> float:
        return math.sqrt(1.0 / (self.feature_dim * self.head_filter_size * self.head_filter_size))

    @property
    def num_tokens(self) -> int:
        """Tokens in the predictor's sequence: memory frames then the test frame, F*F each."""
        return (self.memory_size + 1) * self.feature_size * self.feature_size

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        return _from_dict(cls, values, "model config")


PRESETS: dict[str, ModelConfig] = {
    "tomp50": ModelConfig(backbone="resnet50"),
    "tomp101": ModelConfig(backbone="resnet101"),
    "tiny": ModelConfig(
        backbone="resnet18",
        feature_dim=64,
        num_heads=4,
        num_encoder_layers=2,
        num_decoder_layers=2,
        dim_feedforward=256,
    ),
}
"""`tomp50`/`tomp101` are the paper's networks; `tiny` runs the same code paths at CPU-test size."""


def preset(name: str) -> ModelConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ToMPError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}.") from None


@dataclass(frozen=True)
class TrackerParams:
    """Online tracking parameters. Defaults are the reference `tomp50` (and `tomp101`) parameter files."""

    search_area_scale: float = _positive(5.0)
    border_mode: str = "inside_major"
    patch_max_scale_change: float = _positive(1.5)
    init_expansion_factor: int = _positive(2)
    """The reference samples the annotated frame at twice the crop size and keeps the centre (its
    `augmentation_expansion_factor`); this changes the crop's rounding, so it is kept."""
    output_sigma_factor: float = _positive(0.25)
    conf_ths: float = 0.9
    target_not_found_threshold: float = 0.25
    distractor_threshold: float = 0.8
    hard_negative_threshold: float = 0.5
    target_neighborhood_scale: float = _positive(2.2)
    displacement_scale: float = _positive(0.8)
    search_area_rescaling_at_occlusion: bool = True
    min_box_size: float = 10.0
    """Smallest width/height of the reported box in pixels when it is clipped to the image."""
    long_term: bool = False
    """Long-term mode (`runtime.long_term`): presence from score and appearance, whole-frame re-detection
    while the target is absent. Off, the tracker is the reference's."""
    lt_presence_threshold: float = 0.5
    """Long-term mode: the least calibrated confidence (`runtime.confidence`) of a frame that shows the target."""
    lt_redetect_after: int = _positive(3)
    """Long-term mode: absent frames (the calibrated confidence low, or the target not found) before the first
    whole-frame search."""
    lt_redetect_every: int = _positive(5)
    """Long-term mode: absent frames between whole-frame searches (bounds their cost)."""
    lt_redetect_threshold: float = 0.5
    """Long-term mode: the least confidence of a re-detection candidate (`runtime.confidence.CANDIDATE`)."""
    lt_calibration_bias: float = 2.55
    """Long-term mode: the logistic model's bias (`runtime.confidence`; `tomp-deploy calibrate` fits it). The
    defaults were fitted for the shipped tiny model on the `longterm` synthetic family as it was before its
    siblings (benchmarks/results/long_term_tiny_cpu.md; refits on the family with siblings did worse on it);
    refit them for other models."""
    lt_weight_peak: float = -1.73
    lt_weight_sidelobe: float = -0.87
    lt_weight_second_peak: float = 0.27
    lt_weight_entropy: float = -5.24
    lt_weight_colour: float = 4.54
    lt_weight_template: float = 0.42
    """Long-term mode: the logistic model's weights, one per feature of `runtime.confidence.FEATURES`."""
    lt_candidate_bias: float = -5.20
    """Long-term mode: the re-detection candidates' logistic model's bias (`runtime.confidence.CANDIDATE`;
    `tomp-deploy calibrate` fits it with the presence model above). The defaults were fitted for the shipped
    tiny model on the candidates of its whole-frame searches over the `longterm` synthetic family (as above)."""
    lt_candidate_weight_peak: float = 1.76
    lt_candidate_weight_sidelobe: float = -0.41
    lt_candidate_weight_second_peak: float = 1.58
    lt_candidate_weight_entropy: float = -6.05
    lt_candidate_weight_colour: float = 10.61
    lt_candidate_weight_template: float = 0.17
    """Long-term mode: the candidates' model's weights, one per feature of `runtime.confidence.FEATURES`."""

    def __post_init__(self) -> None:
        if self.border_mode not in ("inside_major", "inside", "replicate"):
            raise ToMPError(f"Unknown border_mode {self.border_mode!r}; use inside_major, inside or replicate.")
        for parameter in fields(self):
            value, default = getattr(self, parameter.name), parameter.default
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ToMPError(f"Tracker parameter {parameter.name} = {value!r} must be true or false.")
            elif isinstance(default, (int, float)):
                number = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
                if "positive" in parameter.metadata and not (number and value > 0):
                    raise ToMPError(f"Tracker parameter {parameter.name} = {value!r} must be a number above 0.")
                if not number:
                    raise ToMPError(f"Tracker parameter {parameter.name} = {value!r} must be a finite number.")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrackerParams":
        return _from_dict(cls, values, "tracker parameter")
