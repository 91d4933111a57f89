"""The backends this package registers under the `tomp_deploy.backends` entry-point group (pyproject.toml).
A third-party package registers its own the same way. Importing this module imports no inference library
and no torch: each `load` imports its backend's class when the backend is opened."""

from __future__ import annotations

from tomp_deploy.runtime.backends.options import BackendSpec


def _torch():
    from tomp_deploy.model.torch_backend import TorchBackend

    return TorchBackend


def _torch_cuda():
    from tomp_deploy.model.torch_cuda_backend import TorchCudaBackend

    return TorchCudaBackend


def _onnxruntime():
    from tomp_deploy.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend


def _openvino():
    from tomp_deploy.runtime.backends.openvino_backend import OpenVinoBackend

    return OpenVinoBackend


def _tensorrt():
    from tomp_deploy.runtime.backends.tensorrt_backend import TensorRTBackend

    return TensorRTBackend


TORCH = BackendSpec(
    model_form="checkpoint",
    packages=("torch",),
    load=_torch,
    install="pip install -e . (torch is a dependency)",
    takes=("threads",),
)
TORCH_CUDA = BackendSpec(
    model_form="checkpoint",
    packages=("torch",),
    load=_torch_cuda,
    install="a CUDA build of PyTorch (pytorch.org names the wheel for your CUDA)",
    takes=("precision", "cuda_graphs"),
    gpu_only=True,
)
ONNXRUNTIME = BackendSpec(
    model_form="export",
    packages=("onnxruntime",),
    load=_onnxruntime,
    install="pip install -e . (onnxruntime is a dependency)",
    takes=("threads",),
)
OPENVINO = BackendSpec(
    model_form="export",
    packages=("openvino",),
    load=_openvino,
    install="pip install -e '.[openvino]'",
    takes=("precision", "threads"),
)
TENSORRT = BackendSpec(
    model_form="engines",
    packages=("tensorrt", "tensorrt_rtx"),
    load=_tensorrt,
    install="pip install -e '.[tensorrt]' (or '.[tensorrt-rtx,cuda]')",
    takes=("cuda_graphs",),
    gpu_only=True,
)
