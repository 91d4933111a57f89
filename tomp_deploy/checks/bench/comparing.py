"""Comparing `bench` runs: accuracy, agreement with the reference, and speed statistics of one backend."""

from __future__ import annotations

import numpy as np

from tomp_deploy.checks.bench.running import BackendRun
from tomp_deploy.evaluation.datasets import Sequence
from tomp_deploy.evaluation.metrics import average, sequence_curves
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.geometry import iou


def accuracy(run: BackendRun, sequences: list[Sequence], name: str = "") -> dict:
    """Success AUC, precision and normalised precision over all sequences."""
    return average([sequence_curves(run.boxes[s.name], s, name) for s in sequences]).summary()


def agreement(run: BackendRun, curves: dict, reference_run: BackendRun, reference: dict, sequences: list[Sequence]) -> dict:
    """Differences from the reference's accuracy and per-frame IoU with its boxes (initial frames left out)."""
    ious = np.concatenate([iou(run.boxes[s.name][1:], reference_run.boxes[s.name][1:]) for s in sequences])
    return {
        "delta_auc": curves["auc"] - reference["auc"],
        "delta_precision": curves["precision"] - reference["precision"],
        "delta_norm_precision": curves["norm_precision"] - reference["norm_precision"],
        "iou_mean": float(ious.mean()) if ious.size else 1.0,
        "iou_min": float(ious.min()) if ious.size else 1.0,
        "score_max_rel_error": run.score_error,
    }


def speed(run: BackendRun) -> dict:
    """FPS end to end (the median frame's, and the p10-p90 spread of frame times) over the frames without a
    whole-frame search (all of them but in long-term mode), the steady FPS (all timed frames over their total
    time: the rate a long run sustains, slow frames and searches included), stage medians, and in long-term
    mode how many searches ran and their median time."""
    times = np.array(run.frame_seconds)
    searched = np.array([seconds is not None for seconds in run.search_seconds], bool)
    tracking = times[~searched]
    if tracking.size == 0:
        raise ToMPError("No frame was timed: lower --warmup or add frames.")
    figures = {
        "fps": float(1 / np.median(tracking)),
        "fps_p10": float(1 / np.percentile(tracking, 90)),
        "fps_p90": float(1 / np.percentile(tracking, 10)),
        "fps_steady": float(times.size / times.sum()),
        "frames_timed": int(times.size),
        "stage_ms": {stage: float(np.median(v) * 1000) for stage, v in run.stage_seconds.items()},
    }
    if searched.any():
        figures["searches"] = int(searched.sum())
        figures["search_ms"] = float(np.median([s for s in run.search_seconds if s is not None]) * 1000)
    return figures


def summarise(
    name: str, run: BackendRun, sequences: list[Sequence], reference_run: BackendRun | None, reference: dict | None
) -> dict:
    """One backend's entry of the report; agreement figures when the reference's run and accuracy are given."""
    if run.status != "ok":
        return {"status": run.status, "error": run.error}
    curves = accuracy(run, sequences, name)
    entry = {"status": "ok", **curves}
    if run.compute_precision:
        entry["compute_precision"] = run.compute_precision
    if run.threads:
        entry["threads"] = run.threads
    if reference_run is not None:
        entry.update(agreement(run, curves, reference_run, reference, sequences))
    return {**entry, **speed(run)}
