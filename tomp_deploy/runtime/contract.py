"""The split-graph contract: names, shapes and types of the three graphs' inputs and outputs.

Every graph call is keyed by name: a backend takes a graph's inputs as {name: array} and returns its
outputs the same way, so the predictor's outputs are the head's inputs as they are. Export builds its
example inputs from here (the PyTorch modules take them positionally, in the order listed), backends
check loaded graphs and engines against it with one check (`graph_io_problems`), and the engine builder
derives its optimisation profiles from it. A symbolic dimension is written as a string: the backbone's
leading dimension is the batch of crops (`BATCH`), the predictor's and head's the batch of targets
(`TARGETS`), each target with its own memory frames, labels, ltrb maps and key padding mask rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.presets import ModelConfig

CROP, BACKBONE, PREDICTOR, HEAD, DECODE = "crop", "backbone", "predictor", "head", "decode"
GRAPHS = (BACKBONE, PREDICTOR, HEAD)
STAGES = (CROP, BACKBONE, PREDICTOR, HEAD, DECODE)
"""Where a frame's tracking time goes, in order (`TrackResult.times`): the crops, the three graphs, and
decoding the boxes."""
REDETECT = "redetect"
"""Long-term mode's whole-frame search, timed apart (in `TrackResult.times` on the frames that run one)."""
MAX_BATCH = 64
"""Most crops (backbone) or targets (predictor, head) one call of an exported graph takes."""
BATCH = "batch"
TARGETS = "targets"
DYNAMIC = "dynamic"
"""How a loaded graph or engine reports a dimension it leaves open, whatever its name."""
DTYPE_BYTES = {"float32": 4, "float16": 2, "bool": 1}
Tensors = dict[str, np.ndarray]
"""A graph's inputs or outputs by name."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @property
    def symbolic(self) -> tuple[int | str, ...]:
        """The shape with every symbolic dimension written as `DYNAMIC`."""
        return tuple(DYNAMIC if isinstance(d, str) else d for d in self.shape)

    def concrete_shape(self, batch: int) -> tuple[int, ...]:
        """The shape at `batch` crops or targets (a graph has one symbolic dimension, its first)."""
        return tuple(batch if isinstance(d, str) else d for d in self.shape)

    def nbytes(self, batch: int) -> int:
        """Bytes of a host or device buffer for this tensor at `batch` (I/O stays float32/bool)."""
        return math.prod(self.concrete_shape(batch)) * DTYPE_BYTES[self.dtype]


def graph_io(config: ModelConfig) -> dict[str, tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]]:
    """graph name -> (inputs, outputs), in contract order."""
    s, f, c, t = config.search_size, config.feature_size, config.feature_dim, config.memory_size
    n = TARGETS
    feat = (n, c, f, f)
    return {
        "backbone": (
            (TensorSpec("image", (BATCH, 3, s, s)),),
            (TensorSpec("feat", (BATCH, c, f, f)),),
        ),
        "predictor": (
            (
                TensorSpec("train_feat", (n, t, c, f, f)),
                TensorSpec("train_label", (n, t, f, f)),
                TensorSpec("train_ltrb", (n, t, 4, f, f)),
                TensorSpec("test_feat", feat),
                TensorSpec("key_padding_mask", (n, 2, config.num_tokens), "bool"),
            ),
            (
                TensorSpec("cls_filter", (n, c)),
                TensorSpec("bbreg_filter", (n, c)),
                TensorSpec("cls_feat", feat),
                TensorSpec("bbreg_feat", feat),
            ),
        ),
        "head": (
            (
                TensorSpec("cls_filter", (n, c)),
                TensorSpec("bbreg_filter", (n, c)),
                TensorSpec("cls_feat", feat),
                TensorSpec("bbreg_feat", feat),
            ),
            (TensorSpec("scores", (n, f, f)), TensorSpec("ltrb", (n, 4, f, f))),
        ),
    }


def graph_feeds(config: ModelConfig, graph: str, inputs: Mapping[str, np.ndarray]) -> Tensors:
    """A graph's inputs as contiguous arrays of the contract's types (float32, the mask bool). An input
    missing or unknown, or shapes that are not the contract's at one batch size, are programming errors in
    the caller, reported with the names and shapes."""
    specs = graph_io(config)[graph][0]
    names = [spec.name for spec in specs]
    if sorted(inputs) != sorted(names):
        raise ToMPError(f"The {graph} graph takes {names}, not {sorted(inputs)}.")
    batch = np.shape(inputs[names[0]])[0] if np.ndim(inputs[names[0]]) else 0
    wrong = [
        f"{spec.name} {np.shape(inputs[spec.name])} (expected {spec.concrete_shape(batch)})"
        for spec in specs
        if np.shape(inputs[spec.name]) != spec.concrete_shape(batch)
    ]
    if wrong:
        raise ToMPError(f"The {graph} graph's inputs do not have the contract's shapes: {', '.join(wrong)}.")
    return {
        spec.name: np.ascontiguousarray(inputs[spec.name], dtype=np.bool_ if spec.dtype == "bool" else np.float32)
        for spec in specs
    }


def batch_size(tensors: Mapping[str, np.ndarray]) -> int:
    """The batch of crops or targets a graph call runs on: the leading dimension its tensors share."""
    return int(next(iter(tensors.values())).shape[0])


@dataclass(frozen=True)
class GraphTensor:
    """One I/O tensor as a loaded graph or engine reports it; a dynamic dimension is `DYNAMIC`."""

    name: str
    is_input: bool
    shape: tuple[int | str, ...]
    dtype: str


def graph_io_problems(config: ModelConfig, graph: str, actual: list[GraphTensor]) -> list[str]:
    """How a loaded graph's or engine's I/O differs from the contract (names, direction, dtype, shape), in
    words; the order of the tensors does not matter, since every call is keyed by name."""
    inputs, outputs = graph_io(config)[graph]
    expected = {spec.name: (True, spec) for spec in inputs} | {spec.name: (False, spec) for spec in outputs}
    found = {tensor.name: tensor for tensor in actual}
    problems = [f"{graph} lacks the tensor '{name}'" for name in expected if name not in found]
    problems += [f"{graph} has an unexpected tensor '{name}'" for name in found if name not in expected]
    for name, (is_input, spec) in expected.items():
        tensor = found.get(name)
        if tensor is None:
            continue
        if tensor.is_input != is_input:
            problems.append(
                f"{graph}'s '{name}' is an {'input' if tensor.is_input else 'output'}, "
                f"the contract's an {'input' if is_input else 'output'}"
            )
        if tensor.dtype != spec.dtype:
            problems.append(f"{graph}'s '{name}' is {tensor.dtype}, the contract's {spec.dtype}")
        if tuple(tensor.shape) != spec.symbolic:
            problems.append(f"{graph}'s '{name}' has shape {tuple(tensor.shape)}, the contract's {spec.shape}")
    return problems
