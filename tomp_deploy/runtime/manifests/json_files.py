"""Reading and writing the versioned JSON manifests of export and engine folders, and file hashes.

Both `model.json` (export) and `manifest.json` (engines) are `{"format": ..., "version": ..., ...}`
objects; one reader checks that shape and turns every defect into a `ToMPError` naming the fix.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tomp_deploy.runtime.errors import ToMPError


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest_json(path: Path, file_format: str, version: int, what: str, remedy: str) -> dict:
    """The fields of the manifest (`what`, for messages) without `format`/`version`, or an error ending in
    `remedy` (what to run)."""
    if not path.is_file():
        raise ToMPError(f"{path.name} is missing from {path.parent}; {remedy}.")
    try:
        content = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ToMPError(f"{path} is not valid JSON ({exc}); {remedy}.") from None
    if not isinstance(content, dict) or content.get("format") != file_format:
        raise ToMPError(f"{path} is not a {what}; {remedy}.")
    if content.get("version") != version:
        raise ToMPError(f"{path} is a {what} of version {content.get('version')}, and this tomp-deploy reads version "
                        f"{version}; {remedy}.")
    return {k: v for k, v in content.items() if k not in ("format", "version")}


def write_manifest_json(path: Path, file_format: str, version: int, fields: dict) -> Path:
    path.write_text(json.dumps({"format": file_format, "version": version, **fields}, indent=2))
    return path
