"""Checkpoints: the project's own format and the reference implementation's `.pth.tar` layout.

Own format: one `torch.save` file of plain containers and tensors (loads with `weights_only=True`):
`{"format": "tomp-deploy", "version": 1, "config": {...}, "state_dict": {...}, "meta": {...}}`.

Reference format: a dict with the weights under `net` (the reference parameter names), a `constructor`
record (`NetConstructor`: `fun_name`, `fun_module`, `args`, `kwds`) that decides the architecture, and
training state (`settings`, `stats`, `optimizer`) pickled as classes of the reference package `ltr`.
Both are read safely by `checkpoint_file`.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tomp_deploy.model.checkpoint_file import InertRecord, read_checkpoint_file
from tomp_deploy.model.tomp import ToMPNet
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.manifests.json_files import file_sha256
from tomp_deploy.runtime.presets import ModelConfig, TrackerParams
from tomp_deploy.runtime.shipped import resolve_model

OWN_FORMAT = "tomp-deploy"
OWN_FORMAT_VERSION = 1
REFERENCE_UNUSED_PREFIXES = ("feature_extractor.layer4.", "feature_extractor.fc.")
"""Reference backbones keep `layer4` and the ImageNet classifier; ToMP reads `layer3`, so these
weights are dropped on load (and reported by `tomp-deploy inspect`)."""

# Signatures of the reference constructors `tompnet50` / `tompnet101`, in positional order, with their
# defaults; a checkpoint's constructor arguments override them.
_REFERENCE_CONSTRUCTOR_PARAMS = (
    "filter_size",
    "head_layer",
    "backbone_pretrained",
    "head_feat_blocks",
    "head_feat_norm",
    "final_conv",
    "out_feature_dim",
    "frozen_backbone_layers",
    "nhead",
    "num_encoder_layers",
    "num_decoder_layers",
    "dim_feedforward",
    "feature_sz",
    "use_test_frame_encoding",
)
_REFERENCE_CONSTRUCTORS = {
    "tompnet50": ("resnet50", {"filter_size": 4}),
    "tompnet101": ("resnet101", {"filter_size": 1}),
}
_REFERENCE_DEFAULTS = {
    "head_layer": "layer3",
    "backbone_pretrained": True,
    "head_feat_blocks": 0,
    "head_feat_norm": True,
    "final_conv": True,
    "out_feature_dim": 512,
    "frozen_backbone_layers": (),
    "nhead": 8,
    "num_encoder_layers": 6,
    "num_decoder_layers": 6,
    "dim_feedforward": 2048,
    "feature_sz": 18,
    "use_test_frame_encoding": True,
}
_REQUIRED_HEAD_LAYOUT = {"head_layer": "layer3", "head_feat_blocks": 0, "head_feat_norm": True, "final_conv": True}


@dataclass
class CheckpointInfo:
    """Where a model came from; `tomp-deploy inspect` prints it and export records it."""

    path: str
    format: str
    sha256: str
    meta: dict = field(default_factory=dict)
    dropped_keys: list[str] = field(default_factory=list)

    @property
    def tracker_params(self) -> TrackerParams:
        """The tracker parameters the checkpoint records (`meta["tracker"]`, written by training), else the
        reference's defaults."""
        recorded = self.meta.get("tracker")
        if recorded is None:
            return TrackerParams()
        try:
            return TrackerParams.from_dict(recorded)
        except (TypeError, ValueError) as exc:
            raise ToMPError(f"{self.path} records malformed tracker parameters ({exc}).") from None


def _config_from_constructor(constructor: object, path: Path) -> ModelConfig:
    fun_name = getattr(constructor, "fun_name", None)
    if fun_name not in _REFERENCE_CONSTRUCTORS:
        raise ToMPError(
            f"{path} holds a '{fun_name}' network, not ToMP: tomp-deploy loads tompnet50 and tompnet101 "
            "checkpoints of the reference implementation."
        )
    backbone, specific_defaults = _REFERENCE_CONSTRUCTORS[fun_name]
    kwargs = {**_REFERENCE_DEFAULTS, **specific_defaults}
    kwargs.update(zip(_REFERENCE_CONSTRUCTOR_PARAMS, getattr(constructor, "args", ()) or ()))
    kwargs.update(getattr(constructor, "kwds", {}) or {})
    wrong_layout = {k: kwargs[k] for k, v in _REQUIRED_HEAD_LAYOUT.items() if kwargs.get(k) != v}
    if wrong_layout:
        raise ToMPError(
            f"{path} is a ToMP variant this toolkit does not support ({wrong_layout}); supported is {_REQUIRED_HEAD_LAYOUT}."
        )
    fields = {
        "feature_dim": "out_feature_dim",
        "num_heads": "nhead",
        "num_encoder_layers": "num_encoder_layers",
        "num_decoder_layers": "num_decoder_layers",
        "dim_feedforward": "dim_feedforward",
        "feature_size": "feature_sz",
        "head_filter_size": "filter_size",
    }
    wrong_types = sorted(
        name
        for name in (*fields.values(), "use_test_frame_encoding")
        if type(kwargs[name]) not in ((bool,) if name == "use_test_frame_encoding" else (int,))
    )
    if wrong_types:
        raise ToMPError(
            f"{path}: the constructor arguments {wrong_types} are not of the reference's types "
            "(integers, and a bool for use_test_frame_encoding); the checkpoint is damaged or forged."
        )
    return ModelConfig(
        backbone=backbone,
        use_test_frame_encoding=kwargs["use_test_frame_encoding"],
        **{field: kwargs[name] for field, name in fields.items()},
    )


def _check_weights(config: ModelConfig, state_dict: dict, path: Path) -> None:
    """Names, shapes and values of the stored weights against the architecture the file declares,
    checked on a network built on the meta device: nothing is allocated for a declared size that the
    stored tensors do not back."""
    with torch.device("meta"):
        model = ToMPNet(config)
    expected = model.state_dict()
    not_tensors = sorted(k for k, v in state_dict.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise ToMPError(f"{path}: the weights {not_tensors[:5]} are not tensors; the checkpoint is damaged.")
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = sorted(
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(state_dict)
        if tuple(state_dict[k].shape) != tuple(expected[k].shape)
    )
    problems = []
    for title, names in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
        if names:
            shown = "\n    ".join(names[:20]) + (f"\n    ... and {len(names) - 20} more" if len(names) > 20 else "")
            problems.append(f"  {title} ({len(names)}):\n    {shown}")
    if problems:
        raise ToMPError(
            f"The weights in {path} do not fit the {config.backbone} ToMP architecture its config "
            "describes:\n" + "\n".join(problems) + "\nThe checkpoint is damaged or of another architecture."
        )
    not_finite = sorted(k for k, v in state_dict.items() if v.is_floating_point() and not torch.isfinite(v).all())
    if not_finite:
        raise ToMPError(
            f"{path} holds NaN or infinite weights ({', '.join(not_finite[:5])}"
            f"{' ...' if len(not_finite) > 5 else ''}): the file is damaged, or it was saved from a run "
            "that diverged. Use an earlier checkpoint."
        )


PLAIN_DEPTH = 8
"""How deep reported metadata goes; a record nested deeper (a forged file) is cut there."""


def _plain(value: object, depth: int = 0) -> object:
    """Reference records turned into plain data for reporting."""
    if depth >= PLAIN_DEPTH and isinstance(value, (InertRecord, dict, list, tuple)):
        return "..."
    if isinstance(value, InertRecord):
        return {k: _plain(v, depth + 1) for k, v in vars(value).items()}
    if isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def load_checkpoint(path: str | Path) -> tuple[ModelConfig, dict, CheckpointInfo]:
    """Reads either checkpoint format -> (config, state dict with this model's names, provenance)."""
    path = Path(path)
    content = read_checkpoint_file(path)
    if not isinstance(content, dict):
        raise ToMPError(f"{path} is a PyTorch file but not a ToMP checkpoint (it holds a {type(content).__name__}).")
    digest = file_sha256(path)
    if content.get("format") == OWN_FORMAT:
        if content.get("version") != OWN_FORMAT_VERSION:
            raise ToMPError(
                f"{path} is tomp-deploy checkpoint version {content.get('version')}; this release reads "
                f"version {OWN_FORMAT_VERSION}. Upgrade tomp-deploy."
            )
        config = ModelConfig.from_dict(content["config"])
        info = CheckpointInfo(str(path), OWN_FORMAT, digest, meta=dict(content.get("meta", {})))
        return config, content["state_dict"], info
    if "net" in content and isinstance(content["net"], dict):
        constructor = content.get("constructor")
        if constructor is None:
            raise ToMPError(
                f"{path} has reference-format weights but no 'constructor' record, so its architecture "
                "is unknown. Re-save it with the constructor of the network that produced it."
            )
        config = _config_from_constructor(constructor, path)
        weights = content["net"]
        dropped = sorted(k for k in weights if k.startswith(REFERENCE_UNUSED_PREFIXES))
        state_dict = {k: v for k, v in weights.items() if not k.startswith(REFERENCE_UNUSED_PREFIXES)}
        settings = content.get("settings")
        meta = {
            "epoch": content.get("epoch"),
            "net_type": content.get("net_type"),
            "constructor": f"{getattr(constructor, 'fun_module', '?')}.{constructor.fun_name}",
            "constructor_kwargs": _plain(getattr(constructor, "kwds", {})),
            "description": getattr(settings, "description", None),
        }
        return config, state_dict, CheckpointInfo(str(path), "reference", digest, meta, dropped)
    raise ToMPError(
        f"{path} is a PyTorch file but not a ToMP checkpoint: it has neither tomp-deploy's 'format' "
        f"nor the reference's 'net' entry (keys: {sorted(map(str, content))[:10]})."
    )


def load_model(path: str | Path, device: str = "cpu") -> ToMPNet:
    """Loads a ToMP checkpoint of either format (or a shipped model by name, e.g. "tiny") into an eval-mode
    `ToMPNet` on `device`.

    The network's `checkpoint_info` tells where it came from.
    """
    path = resolve_model(path)
    config, state_dict, info = load_checkpoint(path)
    _check_weights(config, state_dict, Path(path))
    model = ToMPNet(config)
    model.load_state_dict(state_dict, strict=True)
    model.checkpoint_info = info
    return model.eval().to(device)


def save_checkpoint(model: ToMPNet, path: str | Path, meta: dict | None = None, training: dict | None = None) -> Path:
    """Writes `model` in the project's own format, atomically (a kill never leaves a partial file).

    `training` (optimiser state, epoch) is kept for resuming; `load_model` ignores it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {
        "format": OWN_FORMAT,
        "version": OWN_FORMAT_VERSION,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
    }
    if training is not None:
        content["training"] = training
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(content, tmp_name)
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return path
