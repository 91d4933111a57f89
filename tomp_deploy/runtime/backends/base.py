"""The one interface every inference backend implements.

Two levels: the split-graph contract on numpy arrays (`run(graph, inputs)`, keyed by name: what parity
checks compare), and the tracking path the tracker drives (`extract`, `new_memory`, `locate`), which
lets a GPU backend keep features and memory frames on the device and hand back only score maps and
boxes. `locate` takes every target of a step at once and runs one predictor and one head call over
them (the contract's target batch). `HostTracking` implements the tracking path over the contract for backends that work on
host arrays. Every backend is a context manager: `close()` releases what it holds (GPU memory and
contexts, sessions), and the tracker takes its parameters from `tracker_params`, the ones its model
records.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tomp_deploy.runtime.contract import HEAD, PREDICTOR, GraphTensor, Tensors, graph_feeds, graph_io_problems
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.manifests.export import ExportFolder
from tomp_deploy.runtime.presets import ModelConfig, TrackerParams


@dataclass
class Located:
    """What `locate` returns for one target: the score map [F,F], the ltrb map [4,F,F] (host float32)
    and the seconds spent in the predictor and the head (by the whole batch it ran in)."""

    scores: np.ndarray
    ltrb: np.ndarray
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class TargetQuery:
    """One target's share of a `locate` call: its memory, the feature of its search crop (`index` of an
    `extract` batch) and its predictor inputs (`train_label` [T,F,F], `train_ltrb` [T,4,F,F],
    `key_padding_mask` [2,L]: one target's rows of the contract's predictor inputs)."""

    memory: "FeatureMemory"
    features: Any
    index: int
    train_label: np.ndarray
    train_ltrb: np.ndarray
    key_padding_mask: np.ndarray


def stacked_inputs(queries: Sequence[TargetQuery]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The predictor's `train_label`, `train_ltrb` and `key_padding_mask` of a batch of targets."""
    return (
        np.stack([q.train_label for q in queries]),
        np.stack([q.train_ltrb for q in queries]),
        np.stack([q.key_padding_mask for q in queries]),
    )


class FeatureMemory(Protocol):
    """The memory frames' features of one target, held where the backend computes."""

    def store(self, slot: int, features: Any, index: int) -> None:
        """Copies feature `index` of an `extract` batch into memory slot `slot`."""
        ...


@runtime_checkable
class Backend(Protocol):
    """Runs the three contract graphs. Stateless apart from the loaded model: the tracker owns memory.

    Contract arrays are float32 (the mask bool), shaped as `contract.graph_io` says.
    """

    name: str
    config: ModelConfig
    tracker_params: TrackerParams
    """The tracker parameters the model records (export's model.json, a checkpoint's meta)."""

    def run(self, graph: str, inputs: Mapping[str, np.ndarray]) -> Tensors:
        """One contract graph on host arrays, inputs and outputs keyed by name (`contract.graph_io`):
        backbone `image` -> `feat`; predictor `train_feat`, `train_label`, `train_ltrb`, `test_feat`,
        `key_padding_mask` -> `cls_filter`, `bbreg_filter`, `cls_feat`, `bbreg_feat`; head those four ->
        `scores`, `ltrb`."""
        ...

    def extract(self, image: np.ndarray) -> Any:
        """Backbone features of the crops `image` [B,3,S,S], left where the backend keeps them; only
        `FeatureMemory.store` and `locate` read them. Returns when they are ready."""
        ...

    def new_memory(self) -> FeatureMemory:
        """An empty memory of `config.memory_size` slots for one target."""
        ...

    max_batch: int | None
    """The most crops one `extract` and the most targets one `locate` take (engines are built for a
    range); None when unbounded."""

    def locate(self, queries: Sequence[TargetQuery]) -> list[Located]:
        """Predictor and head for every query at once (one call of each over the batch of targets), one
        `Located` per query, in order."""
        ...

    def close(self) -> None:
        """Releases the model and whatever the backend holds; the backend is unusable afterwards."""
        ...


class BackendLifecycle:
    """Defaults every backend shares: reference tracker parameters unless the model records others, and
    use as a context manager that closes the backend."""

    tracker_params: TrackerParams = TrackerParams()
    max_batch: int | None = None

    def close(self) -> None:
        """Nothing to release beyond what garbage collection frees."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class HostMemory:
    """Memory features as one numpy array [T,C,F,F], the predictor's `train_feat` as is."""

    def __init__(self, config: ModelConfig):
        cells = config.feature_size
        self.feat = np.zeros((config.memory_size, config.feature_dim, cells, cells), np.float32)

    def store(self, slot: int, features: np.ndarray, index: int) -> None:
        self.feat[slot] = features[index]


class HostTracking(BackendLifecycle):
    """The tracking path over the numpy contract, for backends whose arrays live on the host."""

    def extract(self, image: np.ndarray) -> np.ndarray:
        return self.run("backbone", {"image": image})["feat"]

    def new_memory(self) -> HostMemory:
        return HostMemory(self.config)

    def locate(self, queries: Sequence[TargetQuery]) -> list[Located]:
        started = time.perf_counter()
        train_label, train_ltrb, key_padding_mask = stacked_inputs(queries)
        predicted = self.run(
            "predictor",
            {
                "train_feat": np.stack([q.memory.feat for q in queries]),
                "train_label": train_label,
                "train_ltrb": train_ltrb,
                "test_feat": np.stack([q.features[q.index] for q in queries]),
                "key_padding_mask": key_padding_mask,
            },
        )
        middle = time.perf_counter()
        located = self.run("head", predicted)
        seconds = {PREDICTOR: middle - started, HEAD: time.perf_counter() - middle}
        return [Located(scores, ltrb, seconds) for scores, ltrb in zip(located["scores"], located["ltrb"])]


class ExportedGraphs(HostTracking):
    """The contract for backends that run the three exported graphs on host arrays: `_run(graph, feeds)`
    takes and returns arrays keyed by name; loaded graphs are checked with `_check_graph_io`."""

    exported: ExportFolder

    def _run(self, graph: str, feeds: Tensors) -> Tensors:
        raise NotImplementedError

    def _check_graph_io(self, graph: str, actual: list[GraphTensor]) -> None:
        """Refuses a loaded graph whose inputs and outputs are not the contract's."""
        problems = graph_io_problems(self.config, graph, actual)
        if problems:
            raise ToMPError(
                f"The {graph} graph in {self.exported.folder} does not follow its model.json's contract ("
                f"{'; '.join(problems)}): the folder mixes files of different models. Export the model again."
            )

    @property
    def max_batch(self) -> int:
        """The largest batch the export's graphs were exported for."""
        return self.exported.manifest.max_batch

    def run(self, graph: str, inputs: Mapping[str, np.ndarray]) -> Tensors:
        return self._run(graph, graph_feeds(self.config, graph, inputs))


THREADS_PER_CPU = 4
"""The most threads a backend may be given per CPU of this machine: beyond it every thread waits for a core,
and a typo (--threads 100000) would start that many."""


def physical_cores() -> int:
    """The physical cores among the CPUs this process may run on (its affinity), counted from the kernel's
    CPU topology in /sys. Written by hand because `os.cpu_count()` counts logical CPUs (two per core with SMT,
    where a second compute thread per core slows dense kernels) and ignores the affinity a container or
    `taskset` sets; the logical count is the answer where /sys does not tell."""
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    cores = set()
    for cpu in allowed:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topology / "physical_package_id").read_text().strip(), (topology / "core_id").read_text().strip()))
        except OSError:
            return len(allowed)
    return max(len(cores), 1)


def thread_budget(threads: int | None) -> int:
    """The compute threads a CPU backend runs with: `threads` where given (checked: a whole number from 1 to
    4 per CPU, else a ToMPError saying so), else OMP_NUM_THREADS where it holds a positive whole number (the
    budget schedulers such as Ray and SLURM scripts hand a process), else one per physical core this process
    may use. Every CPU backend takes the same budget, so `--threads` means the same for all."""
    if threads is None:
        inherited = os.environ.get("OMP_NUM_THREADS", "").strip()
        return int(inherited) if inherited.isdigit() and int(inherited) > 0 else physical_cores()
    limit = THREADS_PER_CPU * (os.cpu_count() or 1)
    if type(threads) is not int or not 1 <= threads <= limit:
        raise ToMPError(
            f"--threads {threads!r}: give a whole number from 1 to {limit} ({THREADS_PER_CPU} per CPU of "
            f"this machine, which has {os.cpu_count()})."
        )
    return threads
