"""The one interface every inference backend implements: the split-graph contract on numpy arrays."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from tomp_deploy.presets import ModelConfig


@runtime_checkable
class Backend(Protocol):
    """Runs the three contract graphs. Stateless apart from the loaded model: the tracker owns memory.

    All arrays are float32 (the mask bool), shaped as DESIGN.md's contract table says.
    """

    name: str
    config: ModelConfig

    def backbone(self, image: np.ndarray) -> np.ndarray:
        """`image` [B,3,S,S] RGB 0..255 -> `feat` [B,C,F,F]."""
        ...

    def predictor(
        self,
        train_feat: np.ndarray,
        train_label: np.ndarray,
        train_ltrb: np.ndarray,
        test_feat: np.ndarray,
        key_padding_mask: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """-> `cls_filter` [1,C], `bbreg_filter` [1,C], `cls_feat` [1,C,F,F], `bbreg_feat` [1,C,F,F]."""
        ...

    def head(
        self, cls_filter: np.ndarray, cls_feat: np.ndarray, bbreg_filter: np.ndarray, bbreg_feat: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """-> `scores` [1,F,F], `ltrb` [1,4,F,F]."""
        ...
