"""The optional GPU packages (TensorRT, pycuda, cuda-python) and the GPU they run on, torch-free.

The TensorRT backend and the engine builder both ask here, so neither imports the other.
"""

from __future__ import annotations

import importlib

from tomp_deploy.engine_manifest import EngineTarget
from tomp_deploy.errors import ToMPError

INSTALL_HINT = ("pip install 'tomp-deploy[tensorrt]' (TensorRT 10 wheels from NVIDIA's package index, pycuda "
                "and cuda-python), on a machine with an NVIDIA GPU and driver")


def require(module: str):
    """Imports TensorRT, pycuda or cuda-python, or says which one is missing and how to get it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ToMPError(f"The Python package '{module.split('.')[0]}' is not installed; {INSTALL_HINT}.") from None


def cuda_device(index: int = 0):
    """pycuda's driver module and the device, or a clear error when CUDA or a GPU is missing."""
    cuda = require("pycuda.driver")
    try:
        cuda.init()
        count = cuda.Device.count()
    except cuda.Error as exc:
        raise ToMPError(f"CUDA cannot be initialised ({exc}); check the NVIDIA driver and CUDA_VISIBLE_DEVICES.") from None
    if index >= count:
        raise ToMPError(f"No CUDA GPU {index} is visible ({count} found); TensorRT engines need an NVIDIA GPU. "
                        "Check the driver and CUDA_VISIBLE_DEVICES, or use --backend onnxruntime.")
    return cuda, cuda.Device(index)


def current_engine_target(index: int = 0) -> EngineTarget:
    """The installed TensorRT and GPU `index`: what an engine built or run here is tied to."""
    trt = require("tensorrt")
    _, device = cuda_device(index)
    major, minor = device.compute_capability()
    return EngineTarget(trt.__version__, device.name(), f"{major}.{minor}")
