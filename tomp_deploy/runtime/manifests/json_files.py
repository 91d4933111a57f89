"""Reading and writing the versioned JSON manifests of export and engine folders, and file hashes.

Both `model.json` (export) and `manifest.json` (engines) are `{"format": ..., "version": ..., ...}`
objects; one reader checks that shape and turns every defect into a `ToMPError` naming the fix.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from tomp_deploy.runtime.errors import ToMPError


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


MAX_MANIFEST_BYTES = 16 << 20
"""A manifest holds sizes, hashes and node names: ToMP-50's FP16 model.json is tens of kilobytes."""
MAX_MANIFEST_DEPTH = 16
"""Nesting of a manifest's objects and lists (the deepest written is 5)."""


def read_manifest_json(path: Path, file_format: str, version: int, what: str, remedy: str) -> dict:
    """The fields of the manifest (`what`, for messages) without `format`/`version`, or an error ending in
    `remedy` (what to run). Its size and nesting are bounded before and while it is parsed."""
    if not path.is_file():
        raise ToMPError(f"{path.name} is missing from {path.parent}; {remedy}.")
    size = path.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise ToMPError(f"{path} is {size / 1e6:.0f} MB, and a manifest is at most {MAX_MANIFEST_BYTES >> 20} MiB; {remedy}.")
    too_deep = ToMPError(f"{path} is nested deeper than a manifest ever is ({MAX_MANIFEST_DEPTH} levels); {remedy}.")
    try:
        content = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ToMPError(f"{path} is not valid JSON ({exc}); {remedy}.") from None
    except RecursionError:
        raise too_deep from None
    if _depth(content) > MAX_MANIFEST_DEPTH:
        raise too_deep
    if not isinstance(content, dict) or content.get("format") != file_format:
        raise ToMPError(f"{path} is not a {what}; {remedy}.")
    if type(content.get("version")) is not int or content["version"] != version:
        raise ToMPError(
            f"{path} is a {what} of version {content.get('version')}, and this tomp-deploy reads version {version}; {remedy}."
        )
    return {k: v for k, v in content.items() if k not in ("format", "version")}


def _depth(value) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        deepest = max(deepest, depth)
        if depth > MAX_MANIFEST_DEPTH:
            break
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        pending.extend((child, depth + 1) for child in children)
    return deepest


def checked_field(
    value,
    field: str,
    kind: type | tuple[type, ...],
    low: float | None = None,
    high: float | None = None,
    choices: tuple | None = None,
):
    """`value` if it is of `kind` (a bool is not a number here), finite and in low..high, and one of
    `choices` when given; else a ValueError naming `field`, which the manifest readers turn into a
    `ToMPError` with the remedy."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        raise ValueError(f"{field} = {_shown(value)} is not {' or '.join(k.__name__ for k in kinds)}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value) or (low is not None and value < low) or (high is not None and value > high):
            raise ValueError(f"{field} = {_shown(value)} is outside {low}..{high}")
    if choices is not None and value not in choices:
        raise ValueError(f"{field} = {_shown(value)} is not one of {', '.join(map(str, choices))}")
    return value


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def confined_file(folder: Path, name, what: str, remedy: str) -> Path:
    """`folder / name` for a plain file name whose resolved path (symbolic links followed) stays inside
    `folder`: a manifest never makes a reader open a file elsewhere."""
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise ToMPError(f"{what} names {_shown(name)}, which is not a file name inside its folder; {remedy}.")
    path = Path(folder) / name
    if not path.resolve().is_relative_to(Path(folder).resolve()):
        raise ToMPError(
            f"{what} names {name}, which leads out of {folder} (a symbolic link to "
            f"{path.resolve()}); a folder's files must lie inside it; {remedy}."
        )
    return path


def write_manifest_json(path: Path, file_format: str, version: int, fields: dict) -> Path:
    path.write_text(json.dumps({"format": file_format, "version": version, **fields}, indent=2))
    return path
