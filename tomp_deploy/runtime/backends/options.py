"""What the registry knows of a backend before importing it (`BackendSpec`), and the one typed set of
options every command that opens a backend builds (`BackendOptions`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from tomp_deploy.runtime.errors import ToMPError

MODEL_FORMS = ("checkpoint", "export", "engines")
"""The forms a model comes in: a checkpoint file, an export folder, an engine folder."""
BACKEND_ARGUMENTS = ("precision", "threads", "cuda_graphs")
"""The options a backend's class takes as keyword arguments, each only where its spec lists it."""


@dataclass(frozen=True)
class BackendSpec:
    """A backend as registered under the `tomp_deploy.backends` entry-point group: the object an entry point
    names lives in a module that imports nothing heavy, so listing backends and checking a model's form
    import no inference library; `load` imports the backend's class when one is opened."""

    model_form: str
    """The form of model the backend loads (`MODEL_FORMS`)."""
    packages: tuple[str, ...]
    """Python packages of which one must be importable for the backend to be installed."""
    load: Callable[[], type]
    """Imports and returns the backend's class, called as cls(model, device=..., **the options it takes)."""
    install: str
    """What a user runs to install the packages, for the error that says one is missing."""
    takes: tuple[str, ...] = ()
    """Which of `BACKEND_ARGUMENTS` the class takes."""
    gpu_only: bool = False
    """Runs on a CUDA GPU only: the CPU as --device means cuda:0."""

    def __post_init__(self):
        if self.model_form not in MODEL_FORMS or not set(self.takes) <= set(BACKEND_ARGUMENTS):
            raise ToMPError(
                f"A backend registers model form {self.model_form!r} and options {self.takes}; a backend "
                f"loads one of {', '.join(MODEL_FORMS)} and takes options among {', '.join(BACKEND_ARGUMENTS)}."
            )


@dataclass(frozen=True)
class BackendOptions:
    """How a command runs its backend, built once from the command line and shared by track, eval, trax,
    bench, parity and demo. None leaves the backend's own default."""

    device: str = "cpu"
    """cpu, cuda or cuda:N."""
    precision: str | None = None
    """The compute precision: openvino auto, fp32, bf16 or int8; torch-cuda fp16, bf16 or fp32. An export's
    precision is the export's own (`model.json`), not an option."""
    threads: int | None = None
    """Compute threads of a CPU backend (`thread_budget`)."""
    cuda_graphs: bool | None = None
    """Replay per-frame calls as CUDA graphs (torch-cuda, tensorrt)."""
    max_batch: int | None = None
    """Crops and targets the engines made on demand for a shipped model take (default: the builder's)."""
    cache_folder: Path | None = None
    """Where a shipped model's export and engines are made once (default: the user cache)."""

    def __post_init__(self):
        if not re.fullmatch(r"cpu|cuda(:\d+)?", self.device):
            raise ToMPError(f"--device {self.device!r} is not a device; use cpu, cuda or cuda:N.")

    def given(self) -> dict:
        """The backend arguments given (not None), by name."""
        return {name: getattr(self, name) for name in BACKEND_ARGUMENTS if getattr(self, name) is not None}

    def arguments_for(self, name: str, spec: BackendSpec) -> dict:
        """The keyword arguments of backend `name`'s class; an option given that it does not take is an error."""
        refused = [option for option in self.given() if option not in spec.takes]
        if refused:
            takes = ", ".join(_flag(option) for option in spec.takes)
            raise ToMPError(f"{_flag(refused[0])} does not apply to the {name} backend{f' (it takes {takes})' if takes else ''}.")
        return self.given()

    def only_for(self, spec: BackendSpec) -> BackendOptions:
        """These options without the backend arguments `spec` does not take: what a command that runs several
        backends (bench) gives each."""
        return replace(self, **{name: None for name in BACKEND_ARGUMENTS if name not in spec.takes})


def _flag(option: str) -> str:
    return "--" + option.replace("_", "-")
