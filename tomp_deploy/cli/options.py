"""Option definitions shared by several commands, and the helpers that interpret them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tomp_deploy.cli.app import console, error_console
from tomp_deploy.runtime.backends.options import BackendOptions

Device = Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")]
Backend = Annotated[
    str | None,
    typer.Option(
        help="Inference backend: torch, onnxruntime, openvino, torch-cuda or tensorrt. Default: the fastest installed "
        "torch-free backend that runs --model (onnxruntime on the CPU, tensorrt on a GPU); torch (torch-cuda) for "
        "a checkpoint file.",
        show_default=False,
    ),
]
Model = Annotated[
    Path,
    typer.Option(help="Checkpoint, export folder or engine folder (as the backend takes it), or 'tiny' for the shipped model."),
]
TrackerParam = Annotated[
    list[str] | None,
    typer.Option("--tracker-param", help="Override a tracker parameter of the model, key=value (e.g. conf_ths=0.8); repeatable."),
]
LongTerm = Annotated[
    bool,
    typer.Option(
        "--long-term",
        help="Long-term mode: presence from score and appearance, whole-frame re-detection while the target is absent "
        "(the tracker parameter long_term=true).",
    ),
]
Threads = Annotated[
    int | None,
    typer.Option(help="Compute threads of a CPU backend (torch, onnxruntime, openvino). Default: one per physical core."),
]
Precision = Annotated[
    str | None, typer.Option(help="torch-cuda: fp16 (default), bf16 or fp32; openvino: auto (default), fp32, bf16 or int8.")
]
CudaGraphs = Annotated[
    bool | None, typer.Option(help="Replay the per-frame calls as CUDA graphs (torch-cuda: on by default; tensorrt: off).")
]
JsonOut = Annotated[Path | None, typer.Option("--json", help="Write the scores as JSON (percent).")]
Plot = Annotated[Path | None, typer.Option(help="Write success and precision plots (PNG).")]


def progress_bar(*columns, shown_on: Console = console) -> Progress:
    """A progress bar with a description, a count and the elapsed time, plus `columns`; on a console that is
    no terminal (a log, a pipe), a line on stderr per tenth of each task instead."""
    return _ProgressWithLog(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), *columns, TimeElapsedColumn(), console=shown_on
    )


class _ProgressWithLog(Progress):
    """rich draws a bar only on a terminal: written to a log it shows nothing until the bar stops, so a
    14-minute `calibrate` under nohup looked hung. Where the console is no terminal this one draws no bar and
    prints a line whenever a task passes another tenth of its total (per description: training reuses one
    task for every epoch)."""

    def __init__(self, *columns, console: Console):
        super().__init__(*columns, console=console, disable=not console.is_terminal)
        self._tenths_logged: dict[tuple, int] = {}
        self._log_console = console if console.quiet else error_console

    def update(self, task_id, **changes) -> None:
        super().update(task_id, **changes)
        self._log(task_id)

    def advance(self, task_id, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._log(task_id)

    def _log(self, task_id) -> None:
        task = self._tasks[task_id]
        if not self.disable or not task.total:
            return
        tenth = min(10, int(10 * task.completed / task.total))
        key = (task_id, task.description)
        if tenth > self._tenths_logged.get(key, 0):
            self._tenths_logged[key] = tenth
            self._log_console.print(
                f"{task.description}: {task.completed:.0f}/{task.total:.0f} ({100 * task.completed / task.total:.0f}%), "
                f"{task.elapsed or 0:.0f} s",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )


def tracker_overrides(tracker_param: list[str] | None, long_term: bool) -> list[str]:
    """The key=value tracker overrides of --tracker-param, with --long-term's."""
    return [*(tracker_param or ()), *(["long_term=true"] if long_term else [])]


def backend_options(
    device: str = "cpu", threads: int | None = None, precision: str | None = None, cuda_graphs: bool | None = None
) -> BackendOptions:
    """The one options object a command builds from its command line (those left out keep the backends'
    defaults) and hands to every backend it opens."""
    return BackendOptions(device=device, precision=precision, threads=threads, cuda_graphs=cuda_graphs)


def backend_and_model(
    backend: str | None, model: Path | str, options: BackendOptions, say: Console = console
) -> tuple[str, Path]:
    """The backend a command runs (the default rule's choice, said on `say`, where none is given), once the
    `options` given apply to it, and what it loads for `model`: a shipped model's export or engines are made
    once into the user cache."""
    from tomp_deploy.pipeline import model_for_backend
    from tomp_deploy.runtime.backends import backend_spec, default_backend

    if backend is None:
        backend, why = default_backend(model, options.device)
        say.print(f"backend: {backend} ({why}; --backend chooses another)", highlight=False, soft_wrap=True)
    options.arguments_for(backend, backend_spec(backend))
    with error_console.status(f"preparing {model} for {backend}") as status:
        return backend, model_for_backend(model, backend, options, status.update)
