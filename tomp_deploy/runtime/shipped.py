"""Model arguments: a path, or the name of a model that ships with the package."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from tomp_deploy.runtime.errors import ToMPError

SHIPPED = {"tiny": "tiny.pt"}
"""Models inside the package: name -> file in tomp_deploy/data (see tomp_deploy/data/README.md)."""


def resolve_model(model: str | Path) -> Path:
    """A path as given, or the file of a shipped model named `model` when no such path exists."""
    path = Path(model)
    if path.exists() or str(model) not in SHIPPED:
        return path
    shipped = Path(str(resources.files("tomp_deploy") / "data" / SHIPPED[str(model)]))
    if not shipped.is_file():
        raise ToMPError(f"The shipped model {model!r} is missing from this installation ({shipped}); reinstall tomp-deploy.")
    return shipped
