"""Training presets: the one place every training setting comes from; each can be overridden."""

from __future__ import annotations

from dataclasses import dataclass, field

from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.presets import TrackerParams


@dataclass(frozen=True)
class TrainConfig:
    model: str = "tomp50"
    """Model preset (tomp_deploy.runtime.presets)."""
    pretrained: bool = True
    """ImageNet backbone through torchvision's weights API."""
    epochs: int = 300
    samples_per_epoch: int = 40000
    batch_size: int = 36
    num_workers: int = 8
    seed: int = 0
    dataset_weights: dict[str, float] = field(default_factory=lambda: {"lasot": 1, "got10k": 1, "trackingnet": 1, "coco": 1})
    num_train_frames: int = 2
    num_test_frames: int = 1
    max_gap: int = 200
    tracker: TrackerParams = field(default_factory=TrackerParams)
    """The crop and label settings training shares with tracking (search area, border mode, largest
    aspect change of a crop, label sigma); saved in every checkpoint, so its tracker uses the same."""
    center_jitter_train: float = 0.0
    center_jitter_test: float = 4.5
    scale_jitter_train: float = 0.0
    scale_jitter_test: float = 0.5
    center_sampling_radius: float = 1.0
    grayscale_probability: float = 0.05
    flip_probability: float = 0.5
    absent_test_probability: float = 0.0
    """How often a test frame is a search region without the target (its crop moved off the target, as the
    tracker's crops are once the target has gone): the classifier's label is all zero there and no box is
    regressed, so the score falls where the target is not (what long-term mode's presence and re-detection
    read). 0 keeps the reference's sampling."""
    brightness_jitter: float = 0.2
    hinge_threshold: float = 0.05
    weight_clf: float = 100.0
    weight_giou: float = 1.0
    lr_head: float = 1e-4
    lr_backbone: float = 2e-5
    weight_decay: float = 1e-4
    lr_milestones: tuple[int, ...] = (150, 250)
    lr_gamma: float = 0.2
    warmup_steps: int = 0
    """Steps over which the learning rates ramp up linearly from 0 at the start of training."""
    trainable_backbone_layers: tuple[str, ...] = ("layer3",)
    """Backbone stages trained at `lr_backbone`; the others stay frozen."""
    freeze_backbone_batchnorm: bool = True
    """Keep every backbone BatchNorm at its (ImageNet) statistics, as the paper does. A backbone trained
    from scratch needs them learning instead."""
    mixed_precision: tuple[str, ...] = ("cuda",)
    """Device types on which training runs under fp16 autocast with a gradient scaler (`cpu` works too,
    but is slower than fp32 on most CPUs)."""
    synthetic_sequences: int = 60
    synthetic_frames: int = 100
    """Sequences per synthetic family, and their length, written into the run folder."""

    def __post_init__(self) -> None:
        positive = (
            "epochs",
            "samples_per_epoch",
            "batch_size",
            "num_train_frames",
            "num_test_frames",
            "max_gap",
            "synthetic_sequences",
        )
        wrong = [
            f"{name}={getattr(self, name)!r} (must be 1 or more)"
            for name in positive
            if type(getattr(self, name)) is not int or getattr(self, name) < 1
        ]
        wrong += [
            f"{name}={getattr(self, name)!r} (must be above 0)"
            for name in ("lr_head", "lr_backbone")
            if not getattr(self, name) > 0
        ]
        wrong += [
            f"{name}={getattr(self, name)!r} (must be in 0..1)"
            for name in ("grayscale_probability", "flip_probability", "absent_test_probability")
            if not 0 <= getattr(self, name) <= 1
        ]
        if type(self.num_workers) is not int or self.num_workers < 0:
            wrong.append(f"num_workers={self.num_workers!r} (must be 0 or more)")
        if type(self.synthetic_frames) is not int or self.synthetic_frames < 2:
            wrong.append(f"synthetic_frames={self.synthetic_frames!r} (must be 2 or more)")
        if not wrong and self.batch_size > self.samples_per_epoch:
            wrong.append(f"batch_size={self.batch_size} (more than samples_per_epoch={self.samples_per_epoch})")
        if wrong:
            raise ToMPError("Invalid training settings: " + ", ".join(wrong) + ".")


SYNTHETIC_WEIGHTS = {"patches": 1.0, "cutouts": 2.0, "shapes": 1.0}
"""How often each synthetic training family is sampled (cut-outs of real photographs most)."""

PRESETS = {
    "tomp50": TrainConfig(model="tomp50"),
    "tomp101": TrainConfig(model="tomp101"),
    "tiny": TrainConfig(
        model="tiny",
        pretrained=False,
        epochs=1,
        samples_per_epoch=400,
        batch_size=8,
        num_workers=2,
        dataset_weights=dict(SYNTHETIC_WEIGHTS),
        lr_head=1e-4,
        lr_backbone=1e-4,
        lr_milestones=(30, 40),
        warmup_steps=50,
        trainable_backbone_layers=("layer1", "layer2", "layer3"),
        freeze_backbone_batchnorm=False,
        synthetic_sequences=40,
        synthetic_frames=60,
    ),
}
"""`tomp50`/`tomp101`: the paper's recipe. `tiny`: a CPU-sized run on synthetic data; without ImageNet
weights its backbone stages and BatchNorms train too."""


def preset(name: str) -> TrainConfig:
    if name not in PRESETS:
        raise ToMPError(f"Unknown training preset {name!r}; choose one of {', '.join(PRESETS)}.")
    return PRESETS[name]
