"""The engine libraries (TensorRT, TensorRT for RTX), the CUDA packages (pycuda, cuda-python) and the
GPU they run on; torch-free. The TensorRT backend and the engine builder both ask here, so neither
imports the other.
"""

from __future__ import annotations

import importlib

from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.manifests.engine import EngineTarget

ENGINE_LIBRARIES = {"tensorrt": "tensorrt", "tensorrt-rtx": "tensorrt_rtx"}
"""Engine library name -> Python module. Both are driven through one strongly typed code path."""
WHICH_LIBRARY = (
    "TensorRT for RTX (pip install 'tomp-deploy[tensorrt-rtx]') for GeForce RTX and RTX workstation cards: it "
    "builds portable engines ahead of time, even on a machine without a GPU, and compiles them for the card at "
    "first run; TensorRT 10 or 11 (pip install 'tomp-deploy[tensorrt]', wheels from NVIDIA's package index) for "
    "data-centre GPUs such as A100, H100 or L4, where it builds on the GPU that will run the engines"
)
CUDA_HINT = "pip install 'tomp-deploy[cuda]' (pycuda and cuda-python), on a machine with an NVIDIA GPU and driver"


def require(module: str):
    """Imports pycuda or cuda-python, or says which one is missing and how to get it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ToMPError(f"The Python package '{module.split('.')[0]}' is not installed; {CUDA_HINT}.") from None


def installed_engine_libraries() -> list[str]:
    found = []
    for name, module in ENGINE_LIBRARIES.items():
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        found.append(name)
    return found


def engine_library(name: str | None = None):
    """(name, module) of the engine library `name`, or of the one installed when `name` is None."""
    if name is None:
        installed = installed_engine_libraries()
        if not installed:
            raise ToMPError(f"No TensorRT library is installed. Install {WHICH_LIBRARY}.")
        if len(installed) > 1:
            raise ToMPError(
                "Both TensorRT and TensorRT for RTX are installed; choose one with --library "
                f"tensorrt or --library tensorrt-rtx: {WHICH_LIBRARY}."
            )
        name = installed[0]
    if name not in ENGINE_LIBRARIES:
        raise ToMPError(f"Unknown engine library {name!r}; choose {' or '.join(ENGINE_LIBRARIES)}.")
    try:
        return name, importlib.import_module(ENGINE_LIBRARIES[name])
    except ImportError:
        raise ToMPError(f"The Python package '{ENGINE_LIBRARIES[name]}' is not installed. Install {WHICH_LIBRARY}.") from None


def cuda_device(index: int = 0):
    """pycuda's driver module and the device, or a clear error when CUDA or a GPU is missing."""
    cuda = require("pycuda.driver")
    try:
        cuda.init()
        count = cuda.Device.count()
    except cuda.Error as exc:
        raise ToMPError(f"CUDA cannot be initialised ({exc}); check the NVIDIA driver and CUDA_VISIBLE_DEVICES.") from None
    if index >= count:
        raise ToMPError(
            f"No CUDA GPU {index} is visible ({count} found); TensorRT engines need an NVIDIA GPU. "
            "Check the driver and CUDA_VISIBLE_DEVICES, or use --backend onnxruntime."
        )
    return cuda, cuda.Device(index)


def current_engine_target(library: str, index: int = 0) -> EngineTarget:
    """The engine library installed here and GPU `index`: what an engine built or run here is tied to."""
    name, trt = engine_library(library)
    _, device = cuda_device(index)
    major, minor = device.compute_capability()
    return EngineTarget(name, trt.__version__, device.name(), f"{major}.{minor}")
