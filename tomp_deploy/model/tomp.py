"""The PyTorch ToMP network: reference parameter names, split into the three contract graphs."""

from __future__ import annotations

from torch import nn

from tomp_deploy.model.backbone import BackboneGraph, build_head_features, build_resnet_trunk
from tomp_deploy.model.heads import ToMPHead
from tomp_deploy.model.predictor import FilterPredictor
from tomp_deploy.runtime.presets import ModelConfig


class ToMPNet(nn.Module):
    """ToMP with the reference implementation's module tree (`feature_extractor`, `head.*`).

    `backbone`, `predictor` and `head` are the split-graph contract's three modules; they share this
    network's parameters, so moving or loading the network moves or loads them too.
    """

    def __init__(self, config: ModelConfig, pretrained_backbone: bool = False):
        super().__init__()
        self.config = config
        self.feature_extractor = build_resnet_trunk(config.backbone, pretrained=pretrained_backbone)
        self.head = ToMPHead(config, build_head_features(config), FilterPredictor(config))
        # A plain dict keeps the graph views out of the module tree (and out of the state dict).
        self._graphs = {"backbone": BackboneGraph(self.feature_extractor, self.head.feature_extractor)}

    @property
    def backbone(self) -> BackboneGraph:
        return self._graphs["backbone"]

    @property
    def predictor(self) -> FilterPredictor:
        return self.head.filter_predictor

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        self._graphs["backbone"]._apply(fn, recurse)  # its normalisation buffers follow device/dtype
        return self

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
