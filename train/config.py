"""Training presets: the one place every training setting comes from; each can be overridden."""

from __future__ import annotations

from dataclasses import dataclass, field

from tomp_deploy.errors import ToMPError
from tomp_deploy.presets import TrackerParams


@dataclass(frozen=True)
class TrainConfig:
    model: str = "tomp50"
    """Model preset (tomp_deploy.presets)."""
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
    """Size of the benchmark `--data synthetic` writes into the run folder."""


PRESETS = {
    "tomp50": TrainConfig(model="tomp50"),
    "tomp101": TrainConfig(model="tomp101"),
    "tiny": TrainConfig(
        model="tiny", pretrained=False, epochs=1, samples_per_epoch=400, batch_size=8, num_workers=2,
        dataset_weights={"synthetic": 1}, lr_head=1e-4, lr_backbone=1e-4, lr_milestones=(30, 40), warmup_steps=50,
        trainable_backbone_layers=("layer1", "layer2", "layer3"), freeze_backbone_batchnorm=False,
        synthetic_sequences=40, synthetic_frames=60,
    ),
}
"""`tomp50`/`tomp101`: the paper's recipe. `tiny`: a CPU-sized run on synthetic data; without ImageNet
weights its backbone stages and BatchNorms train too."""


def preset(name: str) -> TrainConfig:
    if name not in PRESETS:
        raise ToMPError(f"Unknown training preset {name!r}; choose one of {', '.join(PRESETS)}.")
    return PRESETS[name]
