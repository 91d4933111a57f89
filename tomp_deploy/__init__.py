"""tomp-deploy: ToMP tracking from PyTorch training to FP16 TensorRT engines.

The package root imports no torch: `load_model` is resolved on first use, so the torch-free runtime
(tracker, ONNX Runtime / TensorRT backends) can be embedded without it.
"""

from tomp_deploy.runtime.errors import ToMPError

__version__ = "0.1.0"
__all__ = ["ToMPError", "load_model", "__version__"]


def __getattr__(name: str):
    if name == "load_model":
        from tomp_deploy.model.checkpoint import load_model

        return load_model
    raise AttributeError(f"module 'tomp_deploy' has no attribute {name!r}")
