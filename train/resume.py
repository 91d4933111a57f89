"""Where a run continues: the newest intact checkpoint of its folder, and whether the settings asked
for now are the ones it was trained with."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from tomp_deploy.model.checkpoint_file import check_container
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.train.config import TrainConfig

LATEST = "latest.pt"
RESUMABLE_CHANGES = frozenset({"epochs", "num_workers"})
"""Settings a resumed run may change: how long it goes on, and how it loads data."""


def _read_training_checkpoint(path: Path) -> dict:
    check_container(path)
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the restricted unpickler raises plain Exceptions for foreign content
        raise ToMPError(f"{path.name} cannot be read ({exc.__class__.__name__})") from None
    training = content.get("training") if isinstance(content, dict) else None
    if not isinstance(training, dict) or not {"optimizer", "epoch"} <= training.keys() or "state_dict" not in content:
        raise ToMPError(f"{path.name} is not a tomp-deploy training checkpoint")
    return content


def resume_point(run_dir: Path) -> tuple[Path, dict, str | None]:
    """(checkpoint, its content, a note when latest.pt could not be used and an epoch checkpoint was)."""
    candidates = [run_dir / LATEST] + sorted((run_dir / "checkpoints").glob("epoch_*.pt"), reverse=True)
    problems = []
    for path in candidates:
        if not path.is_file():
            continue
        try:
            content = _read_training_checkpoint(path)
        except ToMPError as exc:
            problems.append(str(exc))
            continue
        note = f"{LATEST} cannot be used ({problems[0]}); resuming from {path}" if problems else None
        return path, content, note
    found = "; ".join(problems) if problems else "no checkpoint was written yet"
    raise ToMPError(f"--resume: {run_dir} holds no intact checkpoint ({found}); start the run without --resume.")


def changed_settings(saved: dict, config: TrainConfig) -> list[str]:
    """Settings given now that differ from those the run was trained with (`key: saved -> now`)."""
    now = json.loads(json.dumps(dataclasses.asdict(config)))
    return [
        f"{key}: {saved[key]!r} -> {now[key]!r}"
        for key in sorted(now)
        if key in saved and key not in RESUMABLE_CHANGES and saved[key] != now[key]
    ]


def check_resumable(path: Path, content: dict, config: TrainConfig) -> None:
    """A run resumes with the model preset and the settings it was trained with (only epochs may grow)."""
    saved = content.get("meta", {}).get("train_config", {})
    if saved.get("model") != config.model:
        raise ToMPError(
            f"--resume: {path} was trained with the {saved.get('model')!r} model preset, not "
            f"{config.model!r}; resume with the same preset or start a new run folder."
        )
    changed = changed_settings(saved, config)
    if changed:
        raise ToMPError(
            f"--resume: {path} was trained with other settings than asked for now ("
            + "; ".join(changed)
            + "). A resumed run keeps its settings (only epochs may grow): "
            "drop those --set options, or start a new run folder."
        )


@dataclasses.dataclass(frozen=True)
class RunStart:
    """How a run begins: fresh, resumed from its folder's newest intact checkpoint (`resume`), or with the
    weights of another checkpoint (`init`: a fresh optimiser and epoch count)."""

    resume: bool = False
    init: Path | None = None


def check_start(run_dir: Path, start: RunStart, config: TrainConfig) -> None:
    """Fails fast, before any training data is read or written, on a start the trainer would refuse."""
    if start.resume and start.init is not None:
        raise ToMPError("--init and --resume exclude each other: --resume already restores the weights.")
    if start.resume:
        path, content, _ = resume_point(run_dir)
        check_resumable(path, content, config)
    if start.init is not None:
        from tomp_deploy.model import load_checkpoint

        load_checkpoint(start.init)
