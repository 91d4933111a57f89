"""The accelerated PyTorch path: the model in FP16 (or bf16) on a CUDA GPU, features and memory frames
kept on the GPU, and the per-frame calls replayed as CUDA graphs."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from tomp_deploy.model import ToMPNet
from tomp_deploy.model.torch_backend import TorchBackend
from tomp_deploy.runtime.backends.base import Located, TargetQuery, stacked_inputs
from tomp_deploy.runtime.contract import HEAD, PREDICTOR
from tomp_deploy.runtime.errors import ToMPError

COMPUTE_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
"""The compute precisions torch-cuda runs (`--precision`; the first is its default), as torch dtypes."""
WARMUP_RUNS = 3
"""Eager runs on a side stream before a capture, as PyTorch's CUDA graph notes ask (lazy init, autotuning)."""


class TensorMemory:
    """Memory features of one target as a [T,C,F,F] tensor on the backend's device."""

    def __init__(self, slots: int, feature_shape: tuple[int, ...], device: torch.device, dtype: torch.dtype):
        self.feat = torch.zeros((slots, *feature_shape), device=device, dtype=dtype)

    def store(self, slot: int, features: torch.Tensor, index: int) -> None:
        self.feat[slot].copy_(features[index])


class TensorTracking:
    """The tracking path on tensors of `self.device` / `self.dtype`: a frame's features and the memory
    never leave the device; `locate` brings back only the score and ltrb maps."""

    device: torch.device
    dtype: torch.dtype
    model: ToMPNet

    def _stage_clock(self):
        """Marks stage boundaries: CUDA events on a GPU (no synchronisation between stages), the host clock elsewhere."""
        if self.device.type == "cuda":
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def _seconds(self, start, end) -> float:
        return start.elapsed_time(end) / 1000 if self.device.type == "cuda" else end - start

    def _host_input(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if self.device.type == "cuda":
            tensor = tensor.pin_memory()
        return tensor.to(self.device, non_blocking=True)

    def _float_input(self, array: np.ndarray) -> torch.Tensor:
        return self._host_input(array).to(self.dtype)

    @torch.inference_mode()
    def extract(self, image: np.ndarray) -> torch.Tensor:
        features = self._run_backbone(self._float_input(image))
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()
        return features

    def new_memory(self) -> TensorMemory:
        config = self.config
        shape = (config.feature_dim, config.feature_size, config.feature_size)
        return TensorMemory(config.memory_size, shape, self.device, self.dtype)

    @torch.inference_mode()
    def locate(self, queries: Sequence[TargetQuery]) -> list[Located]:
        start = self._stage_clock()
        train_label, train_ltrb, key_padding_mask = stacked_inputs(queries)
        predicted = self._run_predictor(
            torch.stack([q.memory.feat for q in queries]),
            self._float_input(train_label),
            self._float_input(train_ltrb),
            torch.stack([q.features[q.index] for q in queries]),
            self._host_input(key_padding_mask.astype(bool)),
        )
        middle = self._stage_clock()
        scores, ltrb = self._run_head(*predicted)
        end = self._stage_clock()
        scores, ltrb = scores.float().cpu().numpy(), ltrb.float().cpu().numpy()
        seconds = {PREDICTOR: self._seconds(start, middle), HEAD: self._seconds(middle, end)}
        return [Located(target_scores, target_ltrb, seconds) for target_scores, target_ltrb in zip(scores, ltrb)]

    def _run_backbone(self, image: torch.Tensor) -> torch.Tensor:
        return self.model.backbone(image)

    def _run_predictor(self, train_feat, train_label, train_ltrb, test_feat, key_padding_mask):
        return self.model.predictor(train_feat, train_label, train_ltrb, test_feat, key_padding_mask)

    def _run_head(self, cls_filter, bbreg_filter, cls_feat, bbreg_feat):
        return self.model.head(cls_filter, bbreg_filter, cls_feat, bbreg_feat)


class GraphedCall:
    """One function captured as a CUDA graph over static input tensors; `__call__` copies the new inputs
    into them (on the device) and replays. Outputs are the static output tensors: overwritten by the next call."""

    def __init__(self, function, example_inputs: list[torch.Tensor]):
        self.inputs = [t.clone() for t in example_inputs]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_RUNS):
                function(*self.inputs)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.outputs = function(*self.inputs)

    def __call__(self, *inputs: torch.Tensor):
        for static, value in zip(self.inputs, inputs):
            if static.data_ptr() != value.data_ptr():
                static.copy_(value, non_blocking=True)
        self.graph.replay()
        return self.outputs


class TorchCudaBackend(TensorTracking, TorchBackend):
    """`--backend torch-cuda`: the PyTorch model in `precision` on a CUDA GPU under `torch.inference_mode`.

    With `cuda_graphs` the backbone, predictor and head (one graph per batch of crops or targets seen) are
    captured once and replayed every frame, which removes the per-kernel launch cost that dominates a small
    network at batch 1. The contract functions (for parity checks) run eagerly in the same precision.
    """

    name = "torch-cuda"

    def __init__(self, model: ToMPNet | str | Path, device: str = "cuda", precision: str = "fp16", cuda_graphs: bool = True):
        if not torch.cuda.is_available():
            cause = (
                "this PyTorch is a CPU-only build: install a CUDA build"
                if torch.version.cuda is None
                else "check the NVIDIA driver (nvidia-smi) and CUDA_VISIBLE_DEVICES"
            )
            raise ToMPError(
                f"The torch-cuda backend needs an NVIDIA GPU, but PyTorch {torch.__version__} sees none; "
                f"{cause}, or use --backend torch or onnxruntime on this machine."
            )
        if not device.startswith("cuda"):
            raise ToMPError(f"The torch-cuda backend runs on a CUDA device, not {device!r}; use --device cuda[:N].")
        if precision not in COMPUTE_DTYPES:
            raise ToMPError(f"Unknown precision {precision!r} for torch-cuda; choose one of {', '.join(COMPUTE_DTYPES)}.")
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise ToMPError(f"{torch.cuda.get_device_name()} has no bf16 support; use --precision fp16.")
        super().__init__(model, device=device)
        self.dtype = COMPUTE_DTYPES[precision]
        self.precision = precision
        self.model = self.model.to(self.dtype)
        self.cuda_graphs = cuda_graphs
        self._backbone_graphs: dict[int, GraphedCall] = {}
        self._predictor_graphs: dict[int, GraphedCall] = {}
        self._head_graphs: dict[int, GraphedCall] = {}

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        tensor = super()._tensor(array)
        return tensor if tensor.dtype == torch.bool else tensor.to(self.dtype)

    def _run_backbone(self, image: torch.Tensor) -> torch.Tensor:
        if not self.cuda_graphs:
            return super()._run_backbone(image)
        return self._replay(self._backbone_graphs, super()._run_backbone, [image])[0].clone()

    def _run_predictor(self, *inputs: torch.Tensor):
        if not self.cuda_graphs:
            return super()._run_predictor(*inputs)
        return self._replay(self._predictor_graphs, super()._run_predictor, inputs)

    def _run_head(self, *inputs: torch.Tensor):
        if not self.cuda_graphs:
            return super()._run_head(*inputs)
        return self._replay(self._head_graphs, super()._run_head, inputs)

    @staticmethod
    def _replay(graphs: dict[int, GraphedCall], function, inputs) -> tuple[torch.Tensor, ...]:
        """`function` on `inputs` through its CUDA graph for this batch size, captured on first use."""
        batch = inputs[0].shape[0]
        if batch not in graphs:
            graphs[batch] = GraphedCall(function, list(inputs))
        outputs = graphs[batch](*inputs)
        return (outputs,) if isinstance(outputs, torch.Tensor) else outputs

    def close(self) -> None:
        """Drops the captured graphs and the model and returns their GPU memory to the driver."""
        for graphs in (self._backbone_graphs, self._predictor_graphs, self._head_graphs):
            graphs.clear()
        self.model = None
        torch.cuda.synchronize(self.device)
        torch.cuda.empty_cache()
