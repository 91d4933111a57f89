"""The `backbone` graph: ImageNet normalisation, torchvision ResNet up to `layer3`, head features."""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from tomp_deploy.runtime.presets import IMAGENET_MEAN, IMAGENET_STD, ModelConfig

IMAGENET_WEIGHTS = {
    "resnet18": "ResNet18_Weights.IMAGENET1K_V1",
    "resnet34": "ResNet34_Weights.IMAGENET1K_V1",
    "resnet50": "ResNet50_Weights.IMAGENET1K_V1",
    "resnet101": "ResNet101_Weights.IMAGENET1K_V1",
}
"""The V1 weights are the ones the reference implementation's backbones were initialised from."""


def build_resnet_trunk(name: str, pretrained: bool = False) -> torchvision.models.ResNet:
    """A torchvision ResNet without `layer4`, pooling and classifier (ToMP reads `layer3`).

    `pretrained=True` loads ImageNet weights through torchvision's weights API (a download on first use).
    """
    weights = torchvision.models.get_weight(IMAGENET_WEIGHTS[name]) if pretrained else None
    resnet = torchvision.models.get_model(name, weights=weights)
    del resnet.layer4, resnet.avgpool, resnet.fc
    return resnet


class InstanceL2Norm(nn.Module):
    """Scales each sample so that its mean square over (C, H, W) is `scale**2` (the reference's norm).

    The reference computes `x * scale * sqrt(C*H*W / (sum(x**2) + eps))`. The sum of 256*18*18 squares
    overflows FP16, so this divides by the sample's max magnitude first and takes a mean instead of
    a sum: algebraically the same value in FP32, bounded by 1 in every intermediate under FP16. In a
    reduced-precision model it is computed in FP32 (an FP32 island): its statistics decide the scale of
    every feature the predictor sees.
    """

    def __init__(self, scale: float, eps: float = 1e-5):
        super().__init__()
        self.scale = scale
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        numel = x.shape[1] * x.shape[2] * x.shape[3]
        value = x.float()
        peak = value.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
        unit = value / peak
        mean_square = (unit * unit).mean(dim=(1, 2, 3), keepdim=True)
        return (unit * (self.scale * torch.rsqrt(mean_square + self.eps / (numel * peak * peak)))).to(x.dtype)


def build_head_features(config: ModelConfig) -> nn.Sequential:
    """3x3 conv to `feature_dim` without bias, then instance L2 normalisation (reference layout)."""
    return nn.Sequential(
        nn.Conv2d(config.backbone_channels, config.feature_dim, kernel_size=3, padding=1, bias=False),
        InstanceL2Norm(scale=config.head_norm_scale),
    )


class BackboneGraph(nn.Module):
    """`image` [B,3,S,S] RGB 0..255 -> `feat` [B,C,F,F]: the contract's `backbone` graph."""

    def __init__(self, resnet: torchvision.models.ResNet, head_features: nn.Sequential):
        super().__init__()
        self.resnet = resnet
        self.head_features = head_features
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0, persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        r = self.resnet
        x = (image - self.mean) / self.std
        x = r.maxpool(r.relu(r.bn1(r.conv1(x))))
        x = r.layer3(r.layer2(r.layer1(x)))
        return self.head_features(x)
