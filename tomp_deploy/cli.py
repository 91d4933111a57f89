"""The `tomp-deploy` command line."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tomp_deploy.errors import ToMPError

app = typer.Typer(
    name="tomp-deploy",
    help="ToMP visual object tracking: PyTorch checkpoints, ONNX graphs, TensorRT engines, tracking.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)
console = Console()
error_console = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        from tomp_deploy import __version__

        console.print(f"tomp-deploy {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """ToMP visual object tracking: PyTorch checkpoints, ONNX graphs, TensorRT engines, tracking."""


def user_errors(command):
    """Prints a `ToMPError` as one line on stderr and exits with code 2, without a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except ToMPError as exc:
            error_console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper


@app.command()
@user_errors
def inspect(
    checkpoint: Annotated[Path, typer.Argument(help="A tomp-deploy or reference (.pth.tar) checkpoint.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the same facts as JSON.")] = False,
) -> None:
    """Show a checkpoint's architecture, parameter count and provenance."""
    from tomp_deploy.model import load_model

    model = load_model(checkpoint)
    info = model.checkpoint_info
    config = model.config
    report = {
        "checkpoint": str(checkpoint),
        "format": info.format,
        "sha256": info.sha256,
        "config": config.to_dict(),
        "search_size": config.search_size,
        "parameters": model.num_parameters(),
        "source": info.meta,
        "dropped_unused_weights": len(info.dropped_keys),
    }
    if as_json:
        print(json.dumps(report, indent=2))
        return
    table = Table(title=f"ToMP checkpoint {checkpoint.name}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    rows = {
        "format": info.format,
        "backbone": f"{config.backbone} (layer3, {config.backbone_channels} channels)",
        "search / feature size": f"{config.search_size} px / {config.feature_size}x{config.feature_size} "
        f"(stride {config.feature_stride})",
        "feature dim / heads": f"{config.feature_dim} / {config.num_heads}",
        "encoder / decoder layers": f"{config.num_encoder_layers} / {config.num_decoder_layers}",
        "feed-forward dim": str(config.dim_feedforward),
        "test-frame encoding": "yes" if config.use_test_frame_encoding else "no",
        "memory frames": str(config.memory_size),
        "parameters": f"{report['parameters']:,}",
        "sha256": info.sha256,
    }
    rows.update({f"source: {k}": str(v) for k, v in info.meta.items() if v is not None})
    if info.dropped_keys:
        rows["unused weights dropped"] = f"{len(info.dropped_keys)} tensors of backbone layer4/fc (ToMP reads layer3)"
    for key, value in rows.items():
        table.add_row(key, value)
    console.print(table)
