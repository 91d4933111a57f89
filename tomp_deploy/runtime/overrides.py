"""`key=value` overrides of a frozen dataclass: training settings (`train --set`) and tracker parameters
(`--tracker-param`) alike. Values are converted to the field's type; a dotted key (`tracker.conf_ths`)
reaches into a nested dataclass."""

from __future__ import annotations

import dataclasses
import math

from tomp_deploy.runtime.errors import ToMPError


def _convert(text: str, example):
    if isinstance(example, bool):
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"{text!r} is not a boolean")
        return text.lower() in ("true", "1", "yes")
    if isinstance(example, int):
        return int(text)
    if isinstance(example, float):
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"{text!r} is not a finite number")
        return value
    if isinstance(example, tuple):
        items = [p for p in text.split(",") if p]
        return tuple(_convert(p, example[0]) if example else p for p in items)
    if isinstance(example, dict):
        pairs = [p.split(":", 1) for p in text.split(",") if p]
        if any(len(pair) != 2 for pair in pairs):
            raise ValueError(f"{text!r} is not key:value,key:value")
        return {k: float(v) for k, v in pairs}
    return text


def apply_overrides(config, overrides: list[str], what: str = "setting"):
    """A copy of the dataclass `config` with each `key=value` applied; an unknown key or a bad value is a
    `ToMPError` naming it (the dataclass's own checks included)."""
    changes: dict[str, object] = {}
    nested: dict[str, list[str]] = {}
    known = {f.name for f in dataclasses.fields(config)}
    for item in overrides:
        key, separator, value = item.partition("=")
        if not separator:
            raise ToMPError(f"Override {item!r} is not key=value.")
        head, dot, rest = key.partition(".")
        if head not in known or (dot and not dataclasses.is_dataclass(getattr(config, head))):
            raise ToMPError(f"Unknown {what} {key!r}; known: {', '.join(sorted(known))}.")
        if dot:
            nested.setdefault(head, []).append(f"{rest}={value}")
            continue
        try:
            changes[key] = _convert(value, getattr(config, key))
        except (ValueError, TypeError) as exc:
            raise ToMPError(f"Override {item!r}: {exc}.") from None
    for head, items in nested.items():
        changes[head] = apply_overrides(getattr(config, head), items, f"{what} {head}.*")
    try:
        return dataclasses.replace(config, **changes)
    except (ValueError, TypeError) as exc:
        raise ToMPError(f"Overrides {overrides}: {exc}.") from None


def overridden_tracker_params(recorded, overrides: list[str] | None):
    """`recorded` tracker parameters with `--tracker-param` overrides applied, or None when there are none
    (the tracker then uses what the model records)."""
    return apply_overrides(recorded, list(overrides), "tracker parameter") if overrides else None
