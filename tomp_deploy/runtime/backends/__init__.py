"""Inference backends behind one protocol; each is imported only when asked for.

`open_backend("onnxruntime", ...)` never imports torch, so the runtime embeds without it.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

from tomp_deploy.runtime.backends.base import Backend
from tomp_deploy.runtime.errors import ToMPError

BACKENDS = {
    "torch": ("tomp_deploy.model.torch_backend", "TorchBackend"),
    "onnxruntime": ("tomp_deploy.runtime.backends.onnxruntime_backend", "OnnxRuntimeBackend"),
    "openvino": ("tomp_deploy.runtime.backends.openvino_backend", "OpenVinoBackend"),
    "torch-cuda": ("tomp_deploy.model.torch_cuda_backend", "TorchCudaBackend"),
    "tensorrt": ("tomp_deploy.runtime.backends.tensorrt_backend", "TensorRTBackend"),
}
"""Backend name -> (module, class). Each class takes (model, device=..., **options): a checkpoint for
torch and torch-cuda, an export folder for onnxruntime and openvino, an engine folder for tensorrt."""

EXTRAS = {"openvino": "openvino", "nncf": "openvino"}
"""Python package -> the tomp-deploy extra that installs it, for backends outside the dependencies."""


def parse_backend_spec(spec: str) -> tuple[str, str]:
    """'backend:path' -> (backend, path), for commands that compare several backends."""
    name, separator, path = spec.partition(":")
    if not separator or not path:
        raise ToMPError(f"{spec!r} is not BACKEND:PATH (e.g. torch:tomp50.pth.tar or onnxruntime:exports/tomp50).")
    return name, path


GPU_ONLY = ("torch-cuda", "tensorrt")
"""Backends that run only on a CUDA GPU: they take cuda:0 when the device given is the CPU."""


def open_backend(name: str, model: str | Path, device: str = "cpu", **options) -> Backend:
    """Loads `model` into the named backend; `options` go to the backend (e.g. `threads` for onnxruntime)."""
    if name not in BACKENDS:
        raise ToMPError(f"Unknown backend {name!r}; available backends: {', '.join(BACKENDS)}.")
    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise ToMPError(f"--device {device!r} is not a device; use cpu, cuda or cuda:N.")
    if name in GPU_ONLY and not device.startswith("cuda"):
        device = "cuda"
    module_name, class_name = BACKENDS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = EXTRAS.get(exc.name or "")
        install = f"pip install -e '.[{extra}]'" if extra else "Install tomp-deploy with its dependencies (pip install -e .)"
        raise ToMPError(f"The {name} backend needs the Python package '{exc.name}', which is not installed. {install}.") from None
    backend_class = getattr(module, class_name)
    accepted = [p for p in list(inspect.signature(backend_class).parameters)[1:] if p != "device"]
    for option in options:
        if option not in accepted:
            raise ToMPError(f"--{option.replace('_', '-')} does not apply to the {name} backend.")
    return backend_class(model, device=device, **options)


__all__ = ["BACKENDS", "Backend", "open_backend", "parse_backend_spec"]
