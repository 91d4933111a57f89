"""Evaluation on a Ray cluster: one task per sequence, on one GPU or on N CPUs of any node.

The tasks return their result files as text and the driver writes them as they arrive (whole, atomic),
so a killed run resumes like any `eval`. Every node reads the model and the dataset at the paths the
driver gives (shared storage), which are made absolute here.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

from tomp_deploy.evaluation.datasets import Sequence
from tomp_deploy.evaluation.sequence_jobs import SequenceFailure, SequenceResult, TrackerSetup, track_or_fail
from tomp_deploy.runtime.backends.registry import backend_spec
from tomp_deploy.runtime.errors import ToMPError


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ToMPError("--ray needs the 'ray' package: pip install -e '.[ray]' (on the driver and every node).") from None
    return ray


def _check_reachable(address: str) -> None:
    """Ray retries an unreachable HOST:PORT for minutes; a plain TCP connection tells at once."""
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # [IPv6]:PORT
    if not host or not port.isdigit():
        raise ToMPError(f"--ray {address!r} is not 'auto', HOST:PORT ([IPv6]:PORT) or ray://HOST:PORT.")
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as exc:
        raise ToMPError(
            f"--ray {address}: nothing answers there ({exc.strerror or exc}); give the address "
            "'ray start --head' printed on the head node, or 'auto' on that node."
        ) from None


def _track_task(setup: TrackerSetup, sequence: Sequence) -> SequenceResult | SequenceFailure:
    backend, params = setup.open()
    with backend:
        return track_or_fail(backend, sequence, params=params)


class RayCluster:
    """The Ray cluster at `address` ('auto': the one running on this machine, 'ray://HOST:10001' or
    'HOST:6379'); a process already connected to Ray keeps its connection. Each task takes one GPU when the
    device is CUDA, else `cpus_per_task` CPUs (and as many ONNX Runtime or OpenVINO threads)."""

    def __init__(self, address: str, cpus_per_task: int = 1):
        if cpus_per_task < 1:
            raise ToMPError(f"--ray-cpus-per-task {cpus_per_task}: give 1 or more.")
        self.ray = _import_ray()
        self.cpus_per_task = cpus_per_task
        self.connected_here = not self.ray.is_initialized()
        if self.connected_here:
            _check_reachable(address)
            try:
                self.ray.init(address=address, logging_level=logging.WARNING)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise ToMPError(
                    f"--ray {address}: no Ray cluster reached ({exc}). Start one with 'ray start --head' "
                    "(then --ray auto on that machine) or give the cluster's address."
                ) from None
            except ImportError as exc:
                raise ToMPError(
                    f"--ray {address}: Ray Client needs 'ray[client]' ({exc.name} is missing): pip install -e '.[ray]'."
                ) from None

    def check_room(self, on_gpu: bool) -> None:
        """Refuses tasks no node of the cluster can take (Ray would wait for such a node forever)."""
        resource, wanted = ("GPU", 1) if on_gpu else ("CPU", self.cpus_per_task)
        largest = max((node.get("Resources", {}).get(resource, 0) for node in self.ray.nodes() if node.get("Alive")), default=0)
        if largest < wanted:
            option = "--device cpu" if on_gpu else f"--ray-cpus-per-task {int(largest)} or fewer"
            raise ToMPError(
                f"Each task needs {wanted} {resource}(s), and the largest node of the Ray cluster has "
                f"{largest:g}; the tasks would wait forever. Use {option}."
            )

    def __enter__(self) -> RayCluster:
        return self

    def __exit__(self, *_) -> None:
        if self.connected_here:
            self.ray.shutdown()

    def track(self, todo: list[Sequence], setup: TrackerSetup) -> Iterator[SequenceResult | SequenceFailure]:
        """Submits every sequence, then yields each result as its task finishes."""
        on_gpu = setup.options.device.startswith("cuda")
        self.check_room(on_gpu)
        task = self.ray.remote(_track_task).options(num_gpus=1 if on_gpu else 0, num_cpus=1 if on_gpu else self.cpus_per_task)
        options = setup.options
        if not on_gpu and options.threads is None and "threads" in backend_spec(setup.backend).takes:
            options = dataclasses.replace(options, threads=self.cpus_per_task)
        # Ray gives a GPU task its GPU as the only visible one: cuda:N of the driver would not exist there.
        task_setup = dataclasses.replace(
            setup,
            model=str(Path(setup.model).resolve()),
            options=dataclasses.replace(options, device="cuda") if on_gpu else options,
        )
        pending = [
            task.remote(task_setup, dataclasses.replace(sequence, frames=[Path(f).resolve() for f in sequence.frames]))
            for sequence in todo
        ]
        while pending:
            done, pending = self.ray.wait(pending, num_returns=1)
            try:
                yield self.ray.get(done[0])
            except self.ray.exceptions.RayTaskError as exc:
                for remaining in pending:
                    self.ray.cancel(remaining)
                cause = exc.cause if isinstance(exc.cause, ToMPError) else exc
                raise ToMPError(f"A Ray task failed: {cause}") from None
