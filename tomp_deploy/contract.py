"""The split-graph contract: names, shapes and types of the three graphs' inputs and outputs.

Export builds its example inputs from here, backends check loaded graphs against it, and the engine
builder derives its optimisation profiles from it. A symbolic dimension is written as a string.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tomp_deploy.presets import ModelConfig

GRAPHS = ("backbone", "predictor", "head")
BATCH = "batch"
DTYPE_BYTES = {"float32": 4, "float16": 2, "bool": 1}


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
                TensorSpec("cls_feat", feat),
                TensorSpec("bbreg_filter", (1, c)),
                TensorSpec("bbreg_feat", feat),
            ),
            (TensorSpec("scores", (1, f, f)), TensorSpec("ltrb", (1, 4, f, f))),
        ),
    }
