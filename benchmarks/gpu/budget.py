"""The run's wall-time budget: each part gets a share of what is left when it starts (time a part leaves
unused passes to the parts after it), and each measurement in a part an equal slice of the part's rest, so
a slow first measurement cannot starve the others."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class Deadline:
    ends: float
    """time.monotonic() at which the time runs out."""

    def left(self) -> float:
        return max(self.ends - time.monotonic(), 0.0)

    def expired(self) -> bool:
        return time.monotonic() >= self.ends

    def slice(self, items_left: int) -> "Deadline":
        """An equal share of what is left for the next of `items_left` measurements."""
        return Deadline(time.monotonic() + self.left() / max(items_left, 1))


class Budget:
    def __init__(self, seconds: float, shares: dict[str, float]):
        self.ends = time.monotonic() + seconds
        self.shares = dict(shares)
        self._started: set[str] = set()

    def part(self, name: str) -> Deadline:
        waiting = sum(share for part, share in self.shares.items() if part not in self._started)
        self._started.add(name)
        left = max(self.ends - time.monotonic(), 0.0)
        return Deadline(time.monotonic() + left * self.shares[name] / waiting)
