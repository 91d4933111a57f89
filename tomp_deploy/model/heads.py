"""The `head` graph: ToMP's classifier and dense box regressor applied with the predicted weights."""

from __future__ import annotations

import torch
from torch import nn

from tomp_deploy.runtime.presets import ModelConfig


def correlate(feat: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Per-cell dot product of `feat` [N,C,H,W] with `weights` [N,C] -> [N,H,W] (a 1x1 filter), in FP32
    whatever the model's precision: the score map's peak decides where the target is, and its
    256-term sums are cheap. Written as a product and a channel sum rather than a matrix product:
    TensorRT for RTX cannot compile an FP32 GEMM for Turing (RTX 20xx) GPUs."""
    return (feat.float() * weights.float()[:, :, None, None]).sum(dim=1)


class LinearFilterClassifier(nn.Module):
    """Projects the target model w to classifier weights and correlates them with the test feature."""

    def __init__(self, channels: int):
        super().__init__()
        self.linear = nn.Linear(channels, channels)

    def forward(self, feat: torch.Tensor, target_model: torch.Tensor) -> torch.Tensor:
        return correlate(feat, self.linear(target_model))


class SingleGroupNorm(nn.GroupNorm):
    """`GroupNorm(1, C)` evaluated on x / max|x|, which leaves the value unchanged (the norm is scale
    invariant; eps is rescaled to match) but keeps every intermediate within FP16 range: the variance
    over C*H*W elements of the raw activations overflows 65504 in FP16. Its statistics are computed in
    FP32 in a reduced-precision model (an FP32 island)."""

    def __init__(self, channels: int):
        super().__init__(1, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value = x.float()
        peak = value.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
        unit = value / peak
        centred = unit - unit.mean(dim=(1, 2, 3), keepdim=True)
        variance = (centred * centred).mean(dim=(1, 2, 3), keepdim=True)
        normalised = centred * torch.rsqrt(variance + self.eps / (peak * peak))
        return (normalised * self.weight.float().view(1, -1, 1, 1) + self.bias.float().view(1, -1, 1, 1)).to(x.dtype)


def _conv_gn_relu(channels: int) -> list[nn.Module]:
    return [nn.Conv2d(channels, channels, 3, padding=1), SingleGroupNorm(channels), nn.ReLU(inplace=True)]


class DenseBoxRegressor(nn.Module):
    """Attention = correlation with the projected weights, multiplied into the features, then four
    conv+GroupNorm(1)+ReLU blocks, a 3x3 conv to 4 channels and `exp` -> ltrb per cell.

    `exp` of an FP16 logit overflows above 11.09; ltrb is a distance divided by the crop size, so
    logits are clamped at 10 (ltrb <= 22026 crops), which no valid box reaches: FP32 results are unchanged.
    The correlation and the `exp` run in FP32 in a reduced-precision model (FP32 islands).
    """

    max_logit = 10.0

    def __init__(self, channels: int):
        super().__init__()
        self.linear = nn.Linear(channels, channels)
        self.tower = nn.Sequential(*(layer for _ in range(4) for layer in _conv_gn_relu(channels)))
        self.bbreg_layer = nn.Conv2d(channels, 4, kernel_size=3, padding=1)

    def forward(self, feat: torch.Tensor, target_model: torch.Tensor) -> torch.Tensor:
        attention = correlate(feat, self.linear(target_model)).to(feat.dtype)
        tower = self.tower(attention.unsqueeze(1) * feat)
        return torch.exp(self.bbreg_layer(tower).float().clamp(max=self.max_logit))


class ToMPHead(nn.Module):
    """The reference's `head` module (its parameter names) whose forward is the contract `head` graph.

    It also owns the head feature extractor and the filter predictor, as the reference does, so that
    checkpoint names match; those two run inside the `backbone` and `predictor` graphs.
    """

    def __init__(self, config: ModelConfig, feature_extractor: nn.Module, filter_predictor: nn.Module):
        super().__init__()
        self.feature_extractor = feature_extractor
        self.filter_predictor = filter_predictor
        self.classifier = LinearFilterClassifier(config.feature_dim)
        self.bb_regressor = DenseBoxRegressor(config.feature_dim)

    def forward(
        self,
        cls_filter: torch.Tensor,
        bbreg_filter: torch.Tensor,
        cls_feat: torch.Tensor,
        bbreg_feat: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The predictor's outputs for N targets, in its order -> `scores` [N,F,F], `ltrb` [N,4,F,F]."""
        return self.classifier(cls_feat, cls_filter), self.bb_regressor(bbreg_feat, bbreg_filter)
