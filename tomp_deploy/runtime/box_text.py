"""Boxes as text: one row of numbers separated by commas, tabs or spaces ('NaN' allowed), the format of
`--init-box`, groundtruth files and result files alike."""

from __future__ import annotations

import re

import numpy as np

from tomp_deploy.runtime.errors import ToMPError


def parse_row(text: str, origin: str) -> np.ndarray:
    """The numbers of one line as float64; `origin` (file and line, or the option) names it in errors."""
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    try:
        return np.array([float(p) for p in parts], dtype=np.float64)
    except ValueError:
        raise ToMPError(f"{origin}: {text.strip()!r} is not a row of numbers x,y,w,h.") from None


def parse_box(text: str, origin: str = "box") -> np.ndarray:
    """x,y,w,h as four numbers."""
    values = parse_row(text, origin)
    if values.shape != (4,):
        raise ToMPError(f"{origin}: expected four numbers x,y,w,h, got {len(values)} in {text.strip()!r}.")
    return values


def as_trax_sends(box) -> np.ndarray:
    """The rectangle a TraX server receives when a client such as the VOT toolkit sends `box`: libtrax holds
    rectangles as float32 and writes them as text with four decimals, which the server reads back into
    float32. A box given with two decimals thus arrives up to about 1e-5 px away. Written by hand (five
    lines of libtrax's behaviour) so that `track` can start where a toolkit run starts without the `vot`
    extra; tests/test_vot.py checks it against libtrax itself."""
    return np.array([np.float32(f"{float(np.float32(value)):.4f}") for value in box], np.float64)


def format_box(box) -> str:
    """A result file's line for one box."""
    return ",".join(f"{v:.4f}" for v in box)
