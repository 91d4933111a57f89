"""A numpy backend whose outputs follow a script, for testing the tracker's decisions in isolation."""

from __future__ import annotations

import numpy as np

from tomp_deploy.runtime.backends.base import HostTracking
from tomp_deploy.runtime.presets import preset


class ScriptedBackend(HostTracking):
    """`backbone` tags each feature with a running id; `head` returns the next scripted score map and
    ltrb boxes of `box_cells` cells around every cell. Every target's predictor inputs are recorded, one
    entry per target and call."""

    name = "scripted"

    def __init__(self, score_maps: list[np.ndarray], box_size: float = 64.0):
        self.config = preset("tiny")
        self.score_maps = list(score_maps)
        self.box_size = box_size
        self.features_made = 0
        self.predictor_calls: list[dict] = []

    def run(self, graph: str, inputs: dict) -> dict:
        return getattr(self, f"_{graph}")(**inputs)

    def _backbone(self, image: np.ndarray) -> dict:
        c, f = self.config.feature_dim, self.config.feature_size
        feats = np.empty((image.shape[0], c, f, f), np.float32)
        for i in range(image.shape[0]):
            self.features_made += 1
            feats[i] = self.features_made
        return {"feat": feats}

    def _predictor(self, train_feat, train_label, train_ltrb, test_feat, key_padding_mask) -> dict:
        for row in range(train_feat.shape[0]):
            self.predictor_calls.append(
                {
                    "memory_ids": train_feat[row, :, 0, 0, 0].copy(),
                    "test_id": float(test_feat[row, 0, 0, 0]),
                    "labels": train_label[row].copy(),
                    "ltrb": train_ltrb[row].copy(),
                    "mask": key_padding_mask[row].copy(),
                }
            )
        targets, c = train_feat.shape[0], self.config.feature_dim
        return {
            "cls_filter": np.zeros((targets, c), np.float32),
            "bbreg_filter": np.zeros((targets, c), np.float32),
            "cls_feat": test_feat,
            "bbreg_feat": test_feat,
        }

    def _head(self, cls_filter, bbreg_filter, cls_feat, bbreg_feat) -> dict:
        targets, f = cls_filter.shape[0], self.config.feature_size
        ltrb = np.full((targets, 4, f, f), self.box_size / 2 / self.config.search_size, np.float32)
        return {"scores": np.stack([self.score_maps.pop(0) for _ in range(targets)]).astype(np.float32), "ltrb": ltrb}


def peak_map(peaks: dict[tuple[int, int], float], size: int = 18) -> np.ndarray:
    scores = np.zeros((size, size), np.float32)
    for (row, col), value in peaks.items():
        scores[row, col] = value
    return scores
