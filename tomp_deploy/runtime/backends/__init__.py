"""Inference backends behind one protocol, found through the `tomp_deploy.backends` entry-point group.

The registry names no backend: every installed distribution registers its own (`BackendSpec`, pyproject's
entry points), this package's five among them, and a backend's class is imported only when it is opened,
so `open_backend("onnxruntime", ...)` never imports torch and the runtime embeds without it.
"""

from __future__ import annotations

from pathlib import Path

from tomp_deploy.runtime.backends.base import Backend
from tomp_deploy.runtime.backends.fitting import fitting_model, form_of
from tomp_deploy.runtime.backends.options import BackendOptions, BackendSpec
from tomp_deploy.runtime.backends.registry import backend_names, backend_spec, installed_backends
from tomp_deploy.runtime.errors import ToMPError


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


def open_backend(name: str, model: str | Path, options: BackendOptions | None = None) -> Backend:
    """Loads `model` into the named backend with `options` (`BackendOptions`: device, precision, threads,
    CUDA graphs); an option given that the backend does not take is an error. A GPU-only backend given the
    CPU as device runs on cuda:0."""
    options = options or BackendOptions()
    spec = backend_spec(name)
    arguments = options.arguments_for(name, spec)
    device = "cuda" if spec.gpu_only and not options.device.startswith("cuda") else options.device
    try:
        backend_class = spec.load()
    except ImportError as exc:
        raise ToMPError(
            f"The {name} backend needs the Python package '{exc.name}', which is not installed: {spec.install}."
        ) from None
    return backend_class(fitting_model(name, model), device=device, **arguments)


__all__ = [
    "Backend",
    "BackendOptions",
    "BackendSpec",
    "backend_names",
    "backend_spec",
    "default_backend",
    "installed_backends",
    "open_backend",
    "parse_backend_spec",
]
