"""Running the command line as a user would, for tests that check what they see: the exit code, stdout
and stderr.

`run_cli` invokes the Typer app in this process (typer's CliRunner): no interpreter start and no second
import of torch, which is most of a short command's time. A failure that would print a traceback adds
it to stderr, as the real command would. `run_cli_process` runs `python -m tomp_deploy` in a child
process, for what only a process shows: imports, signals, resource limits, several runs at once, a Ray
driver of its own.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from tomp_deploy.cli import app


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args, cwd: Path | None = None) -> CliResult:
    with _working_directory(cwd):
        result = CliRunner().invoke(app, [str(arg) for arg in args], prog_name="tomp-deploy")
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return CliResult(result.exit_code, result.stdout, stderr)


def error_message(stderr: str) -> str:
    """The error a failed command printed: the whole of stderr from `error:` on, after nothing but the status
    and progress lines a log shows (`... ...`, `...: 3/4 (75%), 2 s`); never a traceback."""
    before, found, message = stderr.partition("error:")
    assert found and "Traceback" not in stderr, stderr
    assert not before or before.endswith("\n"), stderr
    assert all(line.endswith((" ...", " s")) for line in before.splitlines()), stderr
    return found + message


def run_cli_process(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tomp_deploy", *map(str, args)], capture_output=True, text=True, **kwargs)


@contextlib.contextmanager
def _working_directory(folder: Path | None):
    if folder is None:
        yield
        return
    previous = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)
