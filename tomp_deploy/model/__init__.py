"""PyTorch ToMP: presets, the network split into the contract's graphs, checkpoints."""

from tomp_deploy.model.checkpoint import CheckpointInfo, load_checkpoint, load_model, save_checkpoint
from tomp_deploy.model.tomp import ToMPNet
from tomp_deploy.runtime.presets import PRESETS, ModelConfig, preset

__all__ = [
    "CheckpointInfo",
    "ModelConfig",
    "PRESETS",
    "ToMPNet",
    "load_checkpoint",
    "load_model",
    "preset",
    "save_checkpoint",
]
