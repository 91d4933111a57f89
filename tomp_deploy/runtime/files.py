"""Output files and folders a user names: checked before any work starts, written atomically, every
filesystem failure turned into a `ToMPError` that names the path."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from tomp_deploy.runtime.errors import ToMPError


def ensure_folder(path: Path, option: str) -> Path:
    """`path` as a folder (created with its parents), or an error naming `option` (e.g. '--out')."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ToMPError(f"{option} {path} is a file, not a folder; name a folder.")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ToMPError(f"{option} {path}: cannot create the folder ({exc.strerror}).") from None
    if not os.access(path, os.W_OK):
        raise ToMPError(f"{option} {path}: the folder is not writable.")
    return path


def check_output_file(path: Path, option: str) -> Path:
    """A file path that can be written: not a folder, its folder created and writable."""
    path = Path(path)
    if path.is_dir():
        raise ToMPError(f"{option} {path} is a folder; give a file name, e.g. {path / 'out.txt'}.")
    ensure_folder(path.parent, option)
    return path


def write_atomically(path: Path, text: str, option: str = "") -> Path:
    """Writes `text` to `path` through a temporary file and a rename: readers see the old file or the new
    one, never a part, and a failed write leaves the old file as it was."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text)
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ToMPError(f"{option + ' ' if option else ''}{path}: cannot write the file ({exc.strerror}).") from None
    return path


STAGE_MARK = ".partial-"
REPLACED_MARK = ".replaced-"


@contextlib.contextmanager
def staged_folder(destination: Path, option: str) -> Iterator[Path]:
    """A new folder beside `destination` to write into. When the block ends without error it replaces
    `destination` whole (an earlier folder stays in place until the new one is complete); when the block
    fails, or the process is killed, `destination` is as it was. Staging beside the destination keeps both
    on one filesystem, so the swap is a rename and never a copy that could fail half-way."""
    destination = Path(destination).absolute()
    parent = ensure_folder(destination.parent, option)
    _recover_abandoned(destination)
    # os.mkdir rather than tempfile.mkdtemp: the folder becomes the output, so it takes the user's umask
    # (mkdtemp's 0700 made every export private to its owner).
    staging = parent / f".{destination.name}{STAGE_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir()
    except OSError as exc:
        raise ToMPError(f"{option} {destination}: cannot create a folder beside it ({exc.strerror}).") from None
    try:
        yield staging
        _swap_in(staging, destination, option)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _swap_in(staging: Path, destination: Path, option: str) -> None:
    """Two renames (Linux has no portable atomic exchange of folders); a kill between them leaves the
    earlier folder under its `.replaced-PID` name, which the next `staged_folder` puts back."""
    replaced = destination.with_name(f".{destination.name}{REPLACED_MARK}{os.getpid()}")
    try:
        if destination.exists():
            os.rename(destination, replaced)
        os.rename(staging, destination)
    except OSError as exc:
        if replaced.exists() and not destination.exists():
            os.rename(replaced, destination)
        raise ToMPError(
            f"{option} {destination}: cannot move the new folder into place ({exc.strerror}); the earlier one is unchanged."
        ) from None
    shutil.rmtree(replaced, ignore_errors=True)


def _recover_abandoned(destination: Path) -> None:
    """Removes the staging folders of runs that were killed, and puts back a folder whose replacement was
    killed between its two renames."""
    for leftover in destination.parent.glob(f".{glob.escape(destination.name)}.*-*"):
        mark, pid = _leftover_owner(leftover, destination.name)
        if pid is None or _process_alive(pid):
            continue
        if mark == REPLACED_MARK and not destination.exists():
            os.rename(leftover, destination)
        else:
            shutil.rmtree(leftover, ignore_errors=True)


def _leftover_owner(path: Path, name: str) -> tuple[str, int | None]:
    for mark in (STAGE_MARK, REPLACED_MARK):
        prefix = f".{name}{mark}"
        if path.name.startswith(prefix):
            digits = path.name[len(prefix) :].split("-")[0]
            return mark, int(digits) if digits.isdigit() else None
    return "", None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
