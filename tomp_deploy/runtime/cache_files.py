"""Verified cache entries: what the runtime compiles once and keeps (OpenVINO's compiled graphs, TensorRT for
RTX's runtime cache).

A cache is read back into an inference library that trusts it: a damaged compiled graph gives wrong boxes
without any error. So each entry is one file holding a header (what it was made from, and the sha256 and
size of its content) followed by the content; it is written under a temporary name and renamed into place
(readers and concurrent writers see a whole entry or none), and it is used only when the header matches
what is asked for and the content its hash. A damaged entry is reported once, through the `tomp_deploy`
logger, and rebuilt by the caller; an entry made from something else is rebuilt without a word.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from pathlib import Path

MAGIC = b"tomp-deploy verified cache 1\n"
CACHE_ENVIRONMENT = "TOMP_DEPLOY_CACHE"
MAX_HEADER_BYTES = 64 * 1024
log = logging.getLogger("tomp_deploy")


def user_cache(*parts: str) -> Path:
    """A folder of the user's cache: $TOMP_DEPLOY_CACHE, else $XDG_CACHE_HOME/tomp-deploy (~/.cache/tomp-deploy)."""
    root = os.environ.get(CACHE_ENVIRONMENT) or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tomp-deploy"
    return Path(root, *parts)


def read_entry(path: Path, made_from: dict) -> bytes | None:
    """The content of the entry at `path` if it was made from `made_from` and is intact; None if there is
    none, it was made from something else, or it is damaged (which is logged)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("The cache entry %s cannot be read (%s); compiling again.", path, exc.strerror)
        return None
    header, content = _split(data)
    if header is None:
        log.warning("The cache entry %s is damaged (no valid header); compiling again and replacing it.", path)
        return None
    if header.get("made_from") != made_from:
        return None
    if header.get("bytes") != len(content) or header.get("sha256") != hashlib.sha256(content).hexdigest():
        log.warning(
            "The cache entry %s is damaged (its content does not match the hash recorded when it was "
            "written); compiling again and replacing it.",
            path,
        )
        return None
    return content


def write_entry(path: Path, content: bytes, made_from: dict) -> bool:
    """Writes the entry whole (temporary name, then rename); False, with a note, when it cannot be written
    (a full disk, a read-only folder): the cache only saves time, so the caller carries on without it."""
    path = Path(path)
    header = json.dumps({"made_from": made_from, "bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}).encode()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temporary, "wb") as file:
            file.write(MAGIC + header + b"\n")
            file.write(content)
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        log.warning("The cache entry %s cannot be written (%s); the next start compiles again.", path, exc.strerror)
        return False
    return True


def _split(data: bytes) -> tuple[dict | None, bytes]:
    if not data.startswith(MAGIC):
        return None, b""
    end = data.find(b"\n", len(MAGIC), len(MAGIC) + MAX_HEADER_BYTES)
    if end < 0:
        return None, b""
    try:
        header = json.loads(data[len(MAGIC) : end])
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, b""
    return (header if isinstance(header, dict) else None), data[end + 1 :]
