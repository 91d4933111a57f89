"""Backend-against-backend parity: every contract output on identical inputs, and whole-sequence tracking.

One comparator (`compare_outputs`) over outputs keyed by (graph, output name) serves the `parity`
command, `bench` and the FP16 checks; what counts as close enough is data (`Tolerances`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tomp_deploy.runtime.backends.base import Backend
from tomp_deploy.runtime.backends.recording import RecordedCalls
from tomp_deploy.runtime.geometry import iou

OutputKey = tuple[str, str]
"""(graph, output name)."""


@dataclass
class OutputComparison:
    graph: str
    output: str
    max_abs: float
    max_rel: float
    """max |candidate - reference| / max |reference|, the worst over all compared calls."""
    finite: bool
    """Whether every candidate value was finite."""


@dataclass
class SequenceComparison:
    ious: np.ndarray
    centre_errors: np.ndarray

    @property
    def worst_frame(self) -> int:
        return int(np.argmin(self.ious))


@dataclass(frozen=True)
class Tolerances:
    max_rel: float
    """Largest relative error (max |a - b| / max |a|) allowed on any contract output."""
    min_iou: float | None = None
    """Smallest IoU allowed between the two trackers' boxes on any frame; None: not bounded. A bound holds
    only between two FP32 runs: each crop follows the previous box, so a lower precision's small error can
    set its tracker on another object for some frames (benchmarks/results/parity_tolerances.md)."""

    def outputs_within(self, rows: list[OutputComparison]) -> bool:
        return all(row.finite and row.max_rel <= self.max_rel for row in rows)

    def tracking_within(self, tracking: SequenceComparison) -> bool:
        return self.min_iou is None or tracking.ious.size == 0 or float(tracking.ious.min()) >= self.min_iou


FP16_TOLERANCES = Tolerances(max_rel=1e-2)
"""An FP16 copy against its FP32 model, one step on the same inputs: the shipped model's largest relative
error is 1.4e-3; its per-frame IoU is no bound (see `min_iou`)."""


def relative_error(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, float]:
    """(max |a - b|, max |a - b| / max |a|)."""
    reference, candidate = np.asarray(reference, np.float64), np.asarray(candidate, np.float64)
    difference = float(np.abs(reference - candidate).max())
    return difference, difference / max(float(np.abs(reference).max()), 1e-12)


def contract_outputs(backend: Backend, inputs: RecordedCalls) -> dict[OutputKey, list[np.ndarray]]:
    """Runs `backend` on each graph's recorded inputs; outputs keyed by (graph, output name)."""
    outputs: dict[OutputKey, list[np.ndarray]] = {}
    for graph, calls in inputs.items():
        for feeds in calls:
            for name, value in backend.run(graph, feeds).items():
                outputs.setdefault((graph, name), []).append(value)
    return outputs


def compare_outputs(
    reference: dict[OutputKey, list[np.ndarray]], candidate: dict[OutputKey, list[np.ndarray]]
) -> list[OutputComparison]:
    """The worst error of each output of `candidate` against `reference`, over all calls."""
    rows = []
    for (graph, name), references in reference.items():
        errors = [relative_error(a, b) for a, b in zip(references, candidate[(graph, name)])]
        finite = all(bool(np.isfinite(b).all()) for b in candidate[(graph, name)])
        rows.append(OutputComparison(graph, name, max(e[0] for e in errors), max(e[1] for e in errors), finite))
    return rows


def compare_contract(a: Backend, b: Backend, inputs: RecordedCalls) -> list[OutputComparison]:
    """Both backends on the same recorded inputs, every output compared."""
    return compare_outputs(contract_outputs(a, inputs), contract_outputs(b, inputs))


def compare_sequences(boxes_a: np.ndarray, boxes_b: np.ndarray) -> SequenceComparison:
    centres_a = boxes_a[:, :2] + boxes_a[:, 2:] / 2
    centres_b = boxes_b[:, :2] + boxes_b[:, 2:] / 2
    return SequenceComparison(iou(boxes_a, boxes_b), np.linalg.norm(centres_a - centres_b, axis=1))
