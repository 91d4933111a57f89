"""The backends installed distributions register under the `tomp_deploy.backends` entry-point group, read
from their metadata (no backend module is imported to list them)."""

from __future__ import annotations

import functools
import importlib.util
from importlib.metadata import EntryPoint, entry_points

from tomp_deploy.runtime.backends.options import BackendSpec
from tomp_deploy.runtime.errors import ToMPError

ENTRY_POINT_GROUP = "tomp_deploy.backends"


@functools.cache
def _registered() -> dict[str, list[EntryPoint]]:
    """Backend name -> the entry points registering it, in the order the installed distributions list them."""
    found: dict[str, list[EntryPoint]] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, []).append(entry)
    return found


def backend_names() -> list[str]:
    """Every registered backend, installed or not."""
    return list(_registered())


@functools.cache
def backend_spec(name: str) -> BackendSpec:
    """The registered `BackendSpec` of backend `name`; an unknown name lists the known ones."""
    check_known(name)
    entries = _registered()[name]
    if len({entry.value for entry in entries}) > 1:
        raise ToMPError(
            f"Two installed packages register a backend named {name!r} ({', '.join(e.value for e in entries)}); "
            "uninstall one of them."
        )
    try:
        spec = entries[0].load()
    except (ImportError, AttributeError) as exc:
        raise ToMPError(
            f"The {name} backend's registration ({entries[0].value}) cannot be loaded: {exc}. Reinstall the "
            "package that provides it."
        ) from None
    if not isinstance(spec, BackendSpec):
        raise ToMPError(
            f"The {name} backend's registration ({entries[0].value}) is a {type(spec).__name__}, not a "
            "tomp_deploy BackendSpec; the package that provides it must register one."
        )
    return spec


def installed_backends() -> list[str]:
    """The registered backends whose Python packages are importable (a GPU is checked when one opens). A
    registration that cannot be loaded counts as not installed here; opening that backend says why."""
    return [name for name in backend_names() if _is_installed(name)]


def _is_installed(name: str) -> bool:
    try:
        packages = backend_spec(name).packages
    except ToMPError:
        return False
    return any(importlib.util.find_spec(package) is not None for package in packages)


def check_known(backend: str) -> None:
    if backend not in _registered():
        installed = installed_backends()
        raise ToMPError(
            f"Unknown backend {backend!r}; the backends are {', '.join(backend_names())}, of which "
            f"{', '.join(installed) or 'none'} {'is' if len(installed) == 1 else 'are'} installed here."
        )
