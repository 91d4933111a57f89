"""`train`: the paper's recipe (or a preset's) with per-epoch checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import TextColumn

from tomp_deploy.cli.app import command, console
from tomp_deploy.cli.options import Device, progress_bar
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.files import ensure_folder


@command()
def train(
    out: Annotated[Path, typer.Option(help="Run folder: checkpoints, latest.pt, metrics.jsonl.")],
    preset: Annotated[str, typer.Option(help="Training preset: tomp50, tomp101 or tiny.")] = "tomp50",
    data: Annotated[
        str,
        typer.Option(
            help="Dataset roots 'lasot=/data/lasot,got10k=...,trackingnet=...,coco=...', "
            "synthetic families 'patches,cutouts,shapes', or 'synthetic' for all of "
            "them."
        ),
    ] = "synthetic",
    epochs: Annotated[int | None, typer.Option(help="Epochs (default: the preset's).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/latest.pt with its optimiser and epoch.")] = False,
    init: Annotated[
        Path | None,
        typer.Option(
            help="Start from this checkpoint's weights (fine-tuning; "
            "fresh optimiser and epochs). A name such as 'tiny' works too."
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a preset setting, key=value (tracker.KEY=value for the crop and label settings)."),
    ] = None,
    no_pretrained: Annotated[bool, typer.Option("--no-pretrained", help="No ImageNet backbone weights.")] = False,
    device: Device = "cpu",
    tensorboard: Annotated[bool, typer.Option(help="Also log to OUT/tensorboard.")] = False,
) -> None:
    """Train ToMP with the paper's recipe (or a preset's), with per-epoch checkpoints. Under torchrun every
    rank trains one shard of each global batch; rank 0 alone prints, logs and saves."""
    from tomp_deploy.runtime.shipped import resolve_model
    from tomp_deploy.train import distributed
    from tomp_deploy.train.data import FrameSampler, load_sources, parse_data_spec
    from tomp_deploy.train.resume import RunStart, check_start
    from tomp_deploy.train.trainer import Trainer

    spec = parse_data_spec(data)
    config = _training_config(preset, set_ or [], epochs, no_pretrained, spec)
    ensure_folder(out, "--out")
    init_path = resolve_model(str(init)) if init is not None else None
    start = RunStart(resume, init_path)
    check_start(out, start, config)
    ranks = distributed.start(device)
    shown = console if ranks.is_main else Console(quiet=True)
    with distributed.main_rank_first(ranks), shown.status("reading the training data") as status:
        sources = load_sources(spec, config, out, progress=lambda name: status.update(f"writing synthetic {name}"))
    sampler = FrameSampler(sources, config.dataset_weights, config)
    columns = (
        TextColumn("loss {task.fields[loss]:.3f} (clf {task.fields[clf]:.4f}, giou {task.fields[giou]:.3f})"),
        TextColumn("lr {task.fields[lr]:.1e}"),
        TextColumn("{task.fields[rate]:.1f} samples/s"),
    )
    with progress_bar(*columns, shown_on=shown) as progress:
        trainer = Trainer(
            config, sampler, out, device=device, start=start, tensorboard=tensorboard, progress=_EpochBar(progress, config.epochs)
        )
        if trainer.start_epoch >= config.epochs:
            raise ToMPError(
                f"{out}/latest.pt already finished epoch {trainer.start_epoch} of {config.epochs}; raise --epochs to continue."
            )
        for note in trainer.notes:
            shown.print(f"[yellow]note:[/] {note}")
        trainer.fit(config.epochs)
    distributed.finish()
    shown.print(f"checkpoint: {out / 'latest.pt'} (load it with load_model, export it with tomp-deploy export)")


class _EpochBar:
    """The training bar, and a line per finished epoch (also in a log, where rich draws no bar)."""

    def __init__(self, progress, epochs: int):
        self.progress, self.epochs = progress, epochs
        self.task = progress.add_task("epoch 0", total=None, loss=0.0, clf=0.0, giou=0.0, lr=0.0, rate=0.0)

    def step(self, epoch, step, steps, losses, rate, lr):
        self.progress.update(
            self.task,
            completed=step,
            total=steps,
            description=f"epoch {epoch + 1}/{self.epochs}",
            loss=losses["loss"],
            clf=losses["clf"],
            giou=losses["giou"],
            lr=lr,
            rate=rate,
        )

    def epoch_done(self, metrics):
        self.progress.console.print(
            f"epoch {metrics['epoch']}: loss {metrics['loss']:.4f}, mean IoU {metrics['iou']:.3f}, "
            f"{metrics['samples_per_s']:.1f} samples/s, checkpoint saved"
        )


def _training_config(preset: str, overrides: list[str], epochs: int | None, no_pretrained: bool, spec: dict):
    """The preset with the command's overrides. Unless --set gives dataset_weights, a synthetic family the
    preset has no weight for is sampled with its default weight (1 for a family without one, `longterm`)."""
    import dataclasses

    from tomp_deploy.runtime.overrides import apply_overrides
    from tomp_deploy.train.config import SYNTHETIC_WEIGHTS
    from tomp_deploy.train.config import preset as train_preset

    config = apply_overrides(train_preset(preset), overrides, "training setting")
    if epochs is not None:
        config = dataclasses.replace(config, epochs=epochs)
    if no_pretrained:
        config = dataclasses.replace(config, pretrained=False)
    weights_set = any(item.partition("=")[0].strip() == "dataset_weights" for item in overrides)
    unweighted = [name for name, root in spec.items() if root is None and name not in config.dataset_weights]
    if unweighted and not weights_set:
        defaults = {name: SYNTHETIC_WEIGHTS.get(name, 1.0) for name in unweighted}
        config = dataclasses.replace(config, dataset_weights={**config.dataset_weights, **defaults})
    return config
