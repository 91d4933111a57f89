"""Writes checkpoints in the reference implementation's `.pth.tar` layout without its package.

The parameter names and shapes come from tests/data/reference_state_dict_layout.json (dumped from the
reference implementation); the `ltr.admin.*` classes are defined here and only exist while saving, so
loading must cope with a package that is not installed.
"""

from __future__ import annotations

import json
import sys
import types
from contextlib import contextmanager
from pathlib import Path

import torch

LAYOUT = json.loads((Path(__file__).parent / "data" / "reference_state_dict_layout.json").read_text())["networks"]


class NetConstructor:
    def __init__(self, fun_name, fun_module, args, kwds):
        self.fun_name = fun_name
        self.fun_module = fun_module
        self.args = args
        self.kwds = kwds


class Settings:
    def __init__(self):
        self.description = "ToMP50"
        self.batch_size = 36
        self.env = EnvSettings()


class EnvSettings:
    def __init__(self):
        self.workspace_dir = "/home/user/workspace"


class AverageMeter:
    def __init__(self):
        self.val, self.avg, self.sum, self.count = 0.5, 0.25, 10.0, 40


_LTR_CLASSES = {
    "ltr.admin.model_constructor": [NetConstructor],
    "ltr.admin.settings": [Settings],
    "ltr.admin.environment": [EnvSettings],
    "ltr.admin.stats": [AverageMeter],
}


@contextmanager
def ltr_package_installed():
    """Makes the classes above importable as `ltr.admin.*` for pickling, then removes them again."""
    created = []
    for module_name, classes in _LTR_CLASSES.items():
        for prefix in ("ltr", "ltr.admin", module_name):
            if prefix not in sys.modules:
                sys.modules[prefix] = types.ModuleType(prefix)
                created.append(prefix)
        for cls in classes:
            cls.__module__ = module_name
            setattr(sys.modules[module_name], cls.__name__, cls)
    try:
        yield
    finally:
        for name in created:
            del sys.modules[name]
        for classes in _LTR_CLASSES.values():
            for cls in classes:
                cls.__module__ = __name__


def reference_state_dict(network: str, use_test_frame_encoding: bool, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape, dtype in LAYOUT[f"{network}/test_frame_encoding={use_test_frame_encoding}"]:
        if dtype == "int64":
            state[name] = torch.tensor(7)
        elif name.endswith("running_var"):
            state[name] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[name] = torch.randn(shape, generator=generator) * 0.05
    # The reference registers its foreground embedding under two names: one tensor.
    fg = "head.filter_predictor.query_embed_fg.weight"
    state["head.filter_predictor.query_embed_fg_decoder.weight"] = state[fg]
    return state


def write_reference_checkpoint(
    path: Path,
    network: str = "tompnet50",
    use_test_frame_encoding: bool = True,
    state_dict: dict | None = None,
    fun_name: str | None = None,
    constructor_kwds: dict | None = None,
) -> Path:
    kwds = dict(
        filter_size=1,
        backbone_pretrained=True,
        head_feat_blocks=0,
        head_feat_norm=True,
        final_conv=True,
        out_feature_dim=256,
        feature_sz=18,
        frozen_backbone_layers=["conv1", "bn1", "layer1", "layer2"],
        num_encoder_layers=6,
        num_decoder_layers=6,
        use_test_frame_encoding=use_test_frame_encoding,
    )
    kwds.update(constructor_kwds or {})
    with ltr_package_installed():
        content = {
            "epoch": 300,
            "actor_type": "ToMPActor",
            "net_type": "ToMPnet",
            "net": state_dict if state_dict is not None else reference_state_dict(network, use_test_frame_encoding),
            "net_info": None,
            "constructor": NetConstructor(fun_name or network, "ltr.models.tracking.tompnet", (), kwds),
            "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "weight_decay": 1e-4, "params": [0, 1]}]},
            "stats": {"train": {"Loss/total": AverageMeter()}},
            "settings": Settings(),
        }
        torch.save(content, path)
    return path
