"""Reading a checkpoint file safely, whatever wrote it.

The zip container is checked first (format, unpacked size, every entry's CRC). The pickle is then read
with torch's restricted `weights_only` unpickler: classes of the reference packages `ltr`/`pytracking`
become inert records (attributes only, no code), and a file that asks for any other global is refused
before anything in it is built.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from tomp_deploy.runtime.errors import ToMPError

REFERENCE_PACKAGES = ("ltr.", "pytracking.")


class InertRecord:
    """Stands in for a class of the reference package: keeps the pickled attributes, runs nothing."""

    def __init__(self, *args, **kwargs):
        self.args = args
        self.kwargs = kwargs

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slots state)
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.state = state


def _inert_class(qualified_name: str) -> type:
    module, _, name = qualified_name.rpartition(".")
    return type(name, (InertRecord,), {"__module__": module, "__qualname__": name})


MAX_UNPACK_RATIO = 10
"""PyTorch stores checkpoint entries uncompressed; a file that would unpack to more than this many times
its size is refused before anything is read (a zip bomb would take the machine's memory)."""


def check_container(path: Path) -> None:
    """The zip container of a checkpoint: its format, its unpacked size and every entry's CRC."""
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            head = f.read(2)
        if head[:1] == b"\x80":
            raise ToMPError(
                f"{path} is in PyTorch's legacy (pre-1.6, non-zip) format, which tomp-deploy does not read "
                "safely. If you trust the file, re-save it with a current PyTorch: "
                "torch.save(torch.load(PATH, weights_only=False), NEW_PATH)."
            )
        raise ToMPError(
            f"{path} is not a PyTorch checkpoint (not a zip container): it is truncated, corrupt or "
            "another kind of file. Download or export it again."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(entry.file_size for entry in archive.infolist())
            if unpacked > MAX_UNPACK_RATIO * max(path.stat().st_size, 1 << 20):
                raise ToMPError(
                    f"{path} would unpack to {unpacked / 1e9:.1f} GB from {path.stat().st_size / 1e6:.1f} MB; "
                    "PyTorch writes checkpoints uncompressed, so it is not one. Refusing to read it."
                )
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ToMPError(f"{path} is a damaged checkpoint ({exc}); download or export it again.") from None
    if damaged is not None:
        raise ToMPError(
            f"{path} is damaged: its entry {damaged} fails its CRC check (the file was changed or "
            "corrupted after it was written). Download or export it again."
        )


def read_checkpoint_file(path: Path) -> dict:
    """The checkpoint's unpickled contents, read with torch's restricted unpickler."""
    if not path.exists():
        raise ToMPError(f"Checkpoint {path} does not exist. Check the path.")
    if path.is_dir():
        raise ToMPError(f"{path} is a folder, not a checkpoint file.")
    check_container(path)
    try:
        needed_globals = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except (RuntimeError, zipfile.BadZipFile, pickle.UnpicklingError, EOFError, ValueError) as exc:
        detail = str(exc).split(". ")[0]
        raise ToMPError(
            f"{path} is not a readable PyTorch checkpoint ({detail}): it is truncated, corrupt or not a "
            "checkpoint at all. Download or export it again."
        ) from None
    foreign = sorted(g for g in needed_globals if not g.startswith(REFERENCE_PACKAGES))
    if foreign:
        raise ToMPError(
            f"Refusing to load {path}: its pickle asks for {', '.join(foreign)}, which could run code. "
            "ToMP checkpoints hold only tensors, plain containers and records of the reference package "
            "'ltr'. If you trust the file, re-save just its 'net' and 'constructor' entries."
        )
    records = [(_inert_class(name), name) for name in needed_globals]
    try:
        with torch.serialization.safe_globals(records):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the restricted unpickler raises plain Exceptions for odd content
        raise ToMPError(
            f"{path} could not be read as a checkpoint ({exc.__class__.__name__}: {str(exc).splitlines()[0]}). "
            "The file is corrupt or truncated: fetch or export it again."
        ) from None
