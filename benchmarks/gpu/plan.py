"""What a run measures, by device and mode: the full GPU run, or the CPU smoke run (`--quick`, tiny model,
a few frames) that the default test suite runs so that the command cannot rot between GPU days."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from tomp_deploy.runtime.backends import BackendOptions, open_backend
from tomp_deploy.runtime.backends.base import Backend
from tomp_deploy.runtime.shipped import resolve_model

SEED = 0
"""torch's seed for the random weights of ToMP-50/101 (speed and parity do not need trained weights)."""


@dataclass
class Plan:
    device: str
    quick: bool
    work: Path
    """A scratch folder: random-weight checkpoints, the written sequences, training runs."""
    _checkpoints: dict[str, Path] = field(default_factory=dict)

    @property
    def on_gpu(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def precisions(self) -> tuple[str, ...]:
        return ("fp16", "bf16", "fp32") if self.on_gpu else ("fp32",)

    @property
    def cuda_graph_modes(self) -> tuple[bool, ...]:
        return (True, False) if self.on_gpu else (False,)

    @property
    def parity_models(self) -> tuple[str, ...]:
        return ("tiny",) if self.quick else ("tomp50", "tiny")

    @property
    def speed_models(self) -> tuple[str, ...]:
        return ("tiny",) if self.quick else ("tomp50", "tomp101")

    @property
    def batching_model(self) -> str:
        return "tiny" if self.quick else "tomp50"

    @property
    def training_recipes(self) -> tuple[str, ...]:
        return ("tiny",) if self.quick else ("tiny", "tomp50")

    @property
    def parity_frames(self) -> int:
        return 6 if self.quick else 100

    @property
    def speed_frames(self) -> tuple[int, int]:
        """(warm-up frames, timed frames) per speed measurement."""
        return (2, 4) if self.quick else (10, 200)

    @property
    def target_counts(self) -> tuple[int, ...]:
        return (1, 2) if self.quick else (1, 2, 4, 8, 16, 32)

    @property
    def streams(self) -> tuple[int, int]:
        """(streams, targets per stream) of the multi-stream measurement."""
        return (2, 2) if self.quick else (4, 4)

    @property
    def batching_frames(self) -> tuple[int, int]:
        return (2, 3) if self.quick else (5, 40)

    @property
    def not_on_this_device(self) -> tuple[str, str] | None:
        """What a CPU run leaves out, and why."""
        if self.on_gpu:
            return None
        return (
            "fp16, bf16 and CUDA graphs",
            "the torch-cuda backend needs a CUDA GPU, so a CPU run measures the torch backend in fp32",
        )

    def checkpoint(self, model: str) -> Path:
        """The shipped tiny model, or seeded random weights of a preset written once into the scratch folder."""
        if model not in self._checkpoints:
            if model == "tiny":
                self._checkpoints[model] = resolve_model("tiny")
            else:
                from tomp_deploy.model import ToMPNet, save_checkpoint
                from tomp_deploy.model import preset as model_preset

                torch.manual_seed(SEED)
                path = self.work / f"{model}-random.pt"
                save_checkpoint(ToMPNet(model_preset(model)), path)
                self._checkpoints[model] = path
        return self._checkpoints[model]

    def open(self, model: str, precision: str = "fp32", cuda_graphs: bool = False) -> Backend:
        """The backend under test: torch-cuda on a GPU, the torch backend (fp32) on the CPU."""
        if not self.on_gpu:
            return open_backend("torch", self.checkpoint(model))
        return open_backend(
            "torch-cuda", self.checkpoint(model), BackendOptions(device=self.device, precision=precision, cuda_graphs=cuda_graphs)
        )

    def reference(self, model: str) -> Backend:
        """The torch CPU FP32 reference."""
        return open_backend("torch", self.checkpoint(model))
