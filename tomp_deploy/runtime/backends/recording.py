"""A backend wrapper that keeps the inputs of the first calls of each graph: what `bench` and `parity`
replay on other backends, and what INT8 calibration feeds the quantiser."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from tomp_deploy.runtime.backends.base import Backend, HostTracking
from tomp_deploy.runtime.contract import GRAPHS, Tensors

RecordedCalls = dict[str, list[Tensors]]
"""graph -> the inputs of its recorded calls, in call order."""


class RecordingBackend(HostTracking):
    """Passes every contract call through to `inner` and copies the inputs of the first `keep` calls of
    each graph; later calls pass through without a copy, so memory stays bounded however long the run.
    Tracking goes through the contract on the host, so every call a tracker makes is seen."""

    def __init__(self, inner: Backend, keep: int):
        self.inner = inner
        self.keep = keep
        self.name = inner.name
        self.config = inner.config
        self.tracker_params = inner.tracker_params
        self.precision = getattr(inner, "precision", None)
        self.threads = getattr(inner, "threads", None)
        self.calls: RecordedCalls = {graph: [] for graph in GRAPHS}

    def run(self, graph: str, inputs: Mapping[str, np.ndarray]) -> Tensors:
        if len(self.calls[graph]) < self.keep:
            self.calls[graph].append({name: np.array(array, copy=True) for name, array in inputs.items()})
        return self.inner.run(graph, inputs)

    def first_calls(self, count: int) -> RecordedCalls:
        """The inputs of the first `count` (at most `keep`) recorded calls of each graph."""
        return {graph: calls[:count] for graph, calls in self.calls.items()}

    def close(self) -> None:
        self.inner.close()
