"""The Typer application, its consoles and the error handling every command shares."""

from __future__ import annotations

import functools
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.host_heap import keep_freed_memory

app = typer.Typer(
    name="tomp-deploy",
    help="ToMP visual object tracking: PyTorch checkpoints, ONNX graphs, TensorRT engines, tracking.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)


class _LoggedStatus:
    """What `status` gives where the console is no terminal: its message and each update as a line, on
    stderr, so that a command's own output on stdout (`inspect --json`) stays clean when piped."""

    def __init__(self, shown_on: Console, message: str):
        self.shown_on, self.message = shown_on, message

    def __enter__(self) -> _LoggedStatus:
        self.shown_on.print(f"{self.message} ...", highlight=False, markup=False, soft_wrap=True)
        return self

    def __exit__(self, *exception) -> None:
        return None

    def update(self, message: str) -> None:
        if message != self.message:
            self.message = message
            self.shown_on.print(f"{message} ...", highlight=False, markup=False, soft_wrap=True)


class _CommandConsole(Console):
    """rich's status spinner draws nothing without a terminal, so under nohup or in a pipe a command that
    writes training data or exports for minutes showed nothing; there its status prints lines instead."""

    def status(self, status, **spinner):
        if self.is_terminal:
            return super().status(status, **spinner)
        return _LoggedStatus(error_console, str(status))


console = _CommandConsole()
error_console = _CommandConsole(stderr=True)


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
    keep_freed_memory()


def user_errors(command):
    """Prints a `ToMPError` as one line on stderr and exits with code 2, without a traceback. A filesystem
    error no check foresaw (a full disk, a permission changed mid-run) is printed the same way."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except ToMPError as exc:
            _print_error(str(exc))
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            _print_error(f"{exc.strerror or exc}{where}. Check the path, its permissions and the free space.")

    return wrapper


def _print_error(message: str):
    error_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def command(name: str | None = None):
    """Registers a function as a command whose user errors print as one line."""

    def register(function):
        return app.command(name)(user_errors(function))

    return register
