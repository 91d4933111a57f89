"""The `Sequence` type and the annotation-file parsing every reader shares."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tomp_deploy.runtime.box_text import parse_row
from tomp_deploy.runtime.errors import ToMPError


@dataclass
class Sequence:
    name: str
    frames: list[Path]
    ground_truth: np.ndarray
    """[N, 4] x, y, w, h per frame; NaN where the frame is not annotated."""
    target_visible: np.ndarray | None = None
    """[N] bool where the dataset flags absence/occlusion/out-of-view; None where it has no flags."""
    attributes: list[str] = field(default_factory=list)
    """Short attribute names of the sequence (e.g. 'FOC', 'SV'), where the dataset has them."""
    dataset: str = "folder"

    def __post_init__(self) -> None:
        if len(self.frames) != len(self.ground_truth):
            raise ToMPError(
                f"Sequence {self.name}: {len(self.frames)} frames but {len(self.ground_truth)} annotation lines; "
                "the dataset folder is incomplete or in another layout."
            )

    @property
    def init_box(self) -> np.ndarray:
        return self.ground_truth[0]

    @property
    def target_present(self) -> np.ndarray:
        """Frames where the target is in view: annotated with a box of positive size and not flagged absent."""
        sizes = np.nan_to_num(self.ground_truth[:, 2:], nan=0.0)
        present = (sizes > 0).all(axis=1)
        if self.target_visible is not None:
            present &= self.target_visible
        return present

    @property
    def valid(self) -> np.ndarray:
        """Frames that count in the metrics: annotated with positive coordinates and size (the reference
        analysis' rule, which also drops boxes touching x = 0 or y = 0) and visible where flagged."""
        valid = (np.nan_to_num(self.ground_truth, nan=-1.0) > 0).sum(axis=1) == 4
        if self.target_visible is not None:
            valid &= self.target_visible
        return valid


def load_boxes(path: Path, columns: int = 4, allow_short: bool = False) -> np.ndarray:
    """Rows of numbers separated by commas, tabs or spaces; 'NaN' allowed. Errors name file and line."""
    rows = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        values = parse_row(line, f"{path} line {number}")
        if len(values) != columns and not (allow_short and len(values) < columns):
            raise ToMPError(f"{path} line {number}: expected {columns} numbers, found {len(values)}.")
        rows.append(values.tolist())
    if not rows:
        raise ToMPError(f"{path} holds no boxes.")
    return np.array(rows, dtype=np.float64)


def load_flags(path: Path) -> np.ndarray:
    """A 0/1 flag per frame: comma-separated on one line (LaSOT) or one per line (GOT-10k)."""
    text = Path(path).read_text().strip()
    try:
        return np.array([int(float(v)) for v in re.split(r"[,\s]+", text) if v], dtype=np.int64)
    except ValueError:
        raise ToMPError(f"{path} is not a list of 0/1 flags.") from None


def polygon_to_box(values: np.ndarray) -> np.ndarray:
    """VOT polygons (x1,y1,...,x4,y4) -> x,y,w,h of the same centre and area (the 'preserve_area' rule)."""
    xs, ys = values[:, 0::2], values[:, 1::2]
    x1, x2, y1, y2 = xs.min(1), xs.max(1), ys.min(1), ys.max(1)
    cx, cy = xs.mean(1), ys.mean(1)
    a1 = np.linalg.norm(values[:, 0:2] - values[:, 2:4], axis=1) * np.linalg.norm(values[:, 2:4] - values[:, 4:6], axis=1)
    a2 = (x2 - x1) * (y2 - y1)
    s = np.sqrt(np.divide(a1, a2, out=np.ones_like(a1), where=a2 > 0))
    w, h = s * (x2 - x1) + 1, s * (y2 - y1) + 1
    return np.stack([cx - w / 2, cy - h / 2, w, h], axis=1)
