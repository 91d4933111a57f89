"""The PyTorch reference backend (fp32, CPU or CUDA)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from tomp_deploy.model import ToMPNet, load_model
from tomp_deploy.runtime.backends.base import HostTracking, thread_budget
from tomp_deploy.runtime.contract import Tensors, graph_feeds, graph_io
from tomp_deploy.runtime.errors import ToMPError


class TorchBackend(HostTracking):
    """Runs a `ToMPNet` in fp32 under `torch.inference_mode`; numpy in, numpy out.

    On the CPU the convolutions run channels-last (oneDNN's native layout): ToMP-50's backbone 88 -> 78 ms
    on two AMD EPYC cores, outputs equal up to float rounding (2e-6 relative).

    `threads` is the thread budget (`thread_budget`), set with `torch.set_num_threads`, which holds for the
    whole process. PyTorch's OpenMP threads keep their default of waiting actively between operations: on
    two idle AMD EPYC cores the tiny model's bench row is 20.6 FPS so, 16.6 with passive waiting
    (OMP_WAIT_POLICY=PASSIVE, read once when torch loads) and 13.1 on one thread; with one core busy with
    other work the active wait falls to 9.9 while passive waiting gives 12.0 and one thread 13.0
    (benchmarks/results/thread_fairness_tiny_cpu.md). Under load, `threads` 1 is the remedy."""

    name = "torch"
    precision = "fp32"

    def __init__(self, model: ToMPNet | str | Path, device: str = "cpu", threads: int | None = None):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ToMPError("--device cuda was asked for, but PyTorch sees no CUDA GPU. Use --device cpu.")
        self.threads = thread_budget(threads)
        torch.set_num_threads(self.threads)
        self.device = torch.device(device)
        network = model if isinstance(model, ToMPNet) else load_model(model)
        self.model = network.to(self.device).eval()
        self.image_layout = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        self.model.to(memory_format=self.image_layout)
        self.config = self.model.config
        info = getattr(network, "checkpoint_info", None)
        if info is not None:
            self.tracker_params = info.tracker_params

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device)

    @staticmethod
    def _numpy(*tensors: torch.Tensor) -> tuple[np.ndarray, ...]:
        return tuple(np.ascontiguousarray(t.float().cpu().numpy()) for t in tensors)

    @torch.inference_mode()
    def run(self, graph: str, inputs: Mapping[str, np.ndarray]) -> Tensors:
        """The graph's module on the inputs in contract order (the order the modules take them)."""
        output_specs = graph_io(self.config)[graph][1]
        arrays = [self._tensor(array) for array in graph_feeds(self.config, graph, inputs).values()]
        if graph == "backbone":
            arrays = [arrays[0].contiguous(memory_format=self.image_layout)]
        outputs = getattr(self.model, graph)(*arrays)
        outputs = (outputs,) if isinstance(outputs, torch.Tensor) else outputs
        return {spec.name: array for spec, array in zip(output_specs, self._numpy(*outputs))}
