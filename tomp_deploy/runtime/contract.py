"""The split-graph contract: names, shapes and types of the three graphs' inputs and outputs.

Every graph call is keyed by name: a backend takes a graph's inputs as {name: array} and returns its
outputs the same way, so the predictor's outputs are the head's inputs as they are. Export builds its
example inputs from here (the PyTorch modules take them positionally, in the order listed), backends
check loaded graphs and engines against it with one check (`graph_io_problems`), and the engine builder
derives its optimisation profiles from it. A symbolic dimension is written as a string.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.presets import ModelConfig

GRAPHS = ("backbone", "predictor", "head")
BATCH = "batch"
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

    def concrete_shape(self, batch: int) -> tuple[int, ...]:
        return tuple(batch if d == BATCH else d for d in self.shape)

    def nbytes(self, batch: int) -> int:
        """Bytes of a host or device buffer for this tensor at `batch` (I/O stays float32/bool)."""
        return math.prod(self.concrete_shape(batch)) * DTYPE_BYTES[self.dtype]


def graph_io(config: ModelConfig) -> dict[str, tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]]:
    """graph name -> (inputs, outputs), in contract order."""
    s, f, c, t = config.search_size, config.feature_size, config.feature_dim, config.memory_size
    feat = (1, c, f, f)
    return {
        "backbone": (
            (TensorSpec("image", (BATCH, 3, s, s)),),
            (TensorSpec("feat", (BATCH, c, f, f)),),
        ),
        "predictor": (
            (
                TensorSpec("train_feat", (t, c, f, f)),
                TensorSpec("train_label", (t, f, f)),
                TensorSpec("train_ltrb", (t, 4, f, f)),
                TensorSpec("test_feat", feat),
                TensorSpec("key_padding_mask", (2, config.num_tokens), "bool"),
            ),
            (
                TensorSpec("cls_filter", (1, c)),
                TensorSpec("bbreg_filter", (1, c)),
                TensorSpec("cls_feat", feat),
                TensorSpec("bbreg_feat", feat),
            ),
        ),
        "head": (
            (
                TensorSpec("cls_filter", (1, c)),
                TensorSpec("bbreg_filter", (1, c)),
                TensorSpec("cls_feat", feat),
                TensorSpec("bbreg_feat", feat),
            ),
            (TensorSpec("scores", (1, f, f)), TensorSpec("ltrb", (1, 4, f, f))),
        ),
    }


def graph_feeds(config: ModelConfig, graph: str, inputs: Mapping[str, np.ndarray]) -> Tensors:
    """A graph's inputs as contiguous arrays of the contract's types (float32, the mask bool); an input
    missing or unknown is a programming error in the caller, reported with the names."""
    specs = graph_io(config)[graph][0]
    names = [spec.name for spec in specs]
    if sorted(inputs) != sorted(names):
        raise ToMPError(f"The {graph} graph takes {names}, not {sorted(inputs)}.")
    return {spec.name: np.ascontiguousarray(inputs[spec.name], dtype=np.bool_ if spec.dtype == "bool" else np.float32)
            for spec in specs}


@dataclass(frozen=True)
class GraphTensor:
    """One I/O tensor as a loaded graph or engine reports it; a dynamic dimension is `BATCH`."""

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
            problems.append(f"{graph}'s '{name}' is an {'input' if tensor.is_input else 'output'}, "
                            f"the contract's an {'input' if is_input else 'output'}")
        if tensor.dtype != spec.dtype:
            problems.append(f"{graph}'s '{name}' is {tensor.dtype}, the contract's {spec.dtype}")
        if tuple(tensor.shape) != spec.shape:
            problems.append(f"{graph}'s '{name}' has shape {tuple(tensor.shape)}, the contract's {spec.shape}")
    return problems
