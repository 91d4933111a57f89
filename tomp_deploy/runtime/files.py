"""Output files and folders a user names: checked before any work starts, written atomically, every
filesystem failure turned into a `ToMPError` that names the path."""

from __future__ import annotations

import os
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
