"""Inference backends behind one protocol; each is imported only when asked for.

`open_backend("onnxruntime", ...)` never imports torch, so the runtime embeds without it.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

from tomp_deploy.runtime.backends.base import Backend
from tomp_deploy.runtime.backends.fitting import MODEL_FORMS, check_known, fitting_model, form_of, installed_backends
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


def default_backend(model: str | Path, device: str = "cpu") -> tuple[str, str]:
    """The backend a command uses without --backend, and why: the fastest installed torch-free backend that
    runs what `model` names (ONNX Runtime on the CPU, in FP32 like the reference; TensorRT on a GPU where a
    TensorRT library is installed, else torch-cuda); a checkpoint file runs on torch (torch-cuda on a GPU),
    the only backends that load one, and an engine folder on tensorrt. A shipped model's name counts as an
    export (the commands make it once)."""
    on_gpu = device.startswith("cuda")
    form = form_of(Path(model)) if Path(model).exists() else "export"
    if form == "checkpoint":
        return ("torch-cuda" if on_gpu else "torch"), "a checkpoint file runs on the torch backends"
    if form == "engines":
        return "tensorrt", "an engine folder runs on tensorrt"
    if on_gpu:
        if "tensorrt" in installed_backends():
            return "tensorrt", "the fastest torch-free backend on a GPU"
        return "torch-cuda", "no TensorRT library is installed"
    return "onnxruntime", "the fastest torch-free backend on the CPU at FP32 (the reference's numbers)"


GPU_ONLY = ("torch-cuda", "tensorrt")
"""Backends that run only on a CUDA GPU: they take cuda:0 when the device given is the CPU."""


def open_backend(name: str, model: str | Path, device: str = "cpu", **options) -> Backend:
    """Loads `model` into the named backend; `options` go to the backend (e.g. `threads` for onnxruntime)."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise ToMPError(f"--device {device!r} is not a device; use cpu, cuda or cuda:N.")
    if name in GPU_ONLY and not device.startswith("cuda"):
        device = "cuda"
    backend_class = checked_options(name, options)
    return backend_class(fitting_model(name, model), device=device, **options)


def checked_options(name: str, options: dict):
    """The backend's class, once every option given applies to it (the backend's module is imported here)."""
    check_known(name)
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
    return backend_class


__all__ = ["BACKENDS", "MODEL_FORMS", "Backend", "checked_options", "default_backend", "installed_backends", "open_backend",
           "parse_backend_spec"]
