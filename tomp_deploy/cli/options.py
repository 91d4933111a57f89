"""Option definitions shared by several commands, and the helpers that interpret them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tomp_deploy.cli.app import console

Device = Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")]
Backend = Annotated[str, typer.Option(help="Inference backend: torch, onnxruntime, openvino, torch-cuda or tensorrt.")]
Model = Annotated[Path, typer.Option(help="Checkpoint, export folder or engine folder (as the backend takes it), "
                                          "or 'tiny' for the shipped model.")]
TrackerParam = Annotated[list[str] | None, typer.Option(
    "--tracker-param", help="Override a tracker parameter of the model, key=value (e.g. conf_ths=0.8); repeatable.")]
Threads = Annotated[int | None, typer.Option(help="Intra-op threads (onnxruntime and openvino backends).")]
Precision = Annotated[str | None, typer.Option(
    help="torch-cuda: fp16 (default), bf16 or fp32; openvino: auto (default), fp32, bf16 or int8.")]
CudaGraphs = Annotated[bool | None, typer.Option(
    help="Replay the per-frame calls as CUDA graphs (torch-cuda: on by default; tensorrt: off).")]
JsonOut = Annotated[Path | None, typer.Option("--json", help="Write the scores as JSON (percent).")]
Plot = Annotated[Path | None, typer.Option(help="Write success and precision plots (PNG).")]


def progress_bar(*columns, shown_on: Console = console) -> Progress:
    """A progress bar with a description, a count and the elapsed time, plus `columns`."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), *columns,
                    TimeElapsedColumn(), console=shown_on)


def backend_options(threads: int | None, precision: str | None, cuda_graphs: bool | None) -> dict:
    """The backend options given on the command line (those left out keep the backend's defaults)."""
    given = {"threads": threads, "precision": precision, "cuda_graphs": cuda_graphs}
    return {name: value for name, value in given.items() if value is not None}
