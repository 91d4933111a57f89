"""Part 1: each precision of the backend under test against the torch CPU FP32 reference, on the same
recorded contract inputs (every output compared) and over a whole tracked sequence (IoU per frame, AUC)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from benchmarks.gpu.budget import Deadline
from benchmarks.gpu.plan import Plan
from benchmarks.gpu.scenes import parity_sequence
from tomp_deploy.checks.parity import compare_outputs, compare_sequences, contract_outputs
from tomp_deploy.evaluation.metrics import sequence_curves
from tomp_deploy.runtime.backends.base import Backend
from tomp_deploy.runtime.backends.recording import RecordingBackend
from tomp_deploy.runtime.driver import track_frames
from tomp_deploy.runtime.errors import ToMPError

RECORDED_CALLS = 3
"""Contract calls of each graph recorded on the reference's run and replayed on each precision."""


def tracked_boxes(backend: Backend, frames: list[np.ndarray], init_box, deadline: Deadline) -> np.ndarray:
    """Boxes over `frames`, ending early (fewer rows) when the deadline passes."""
    boxes = []
    for step in track_frames(backend, frames, [init_box]):
        boxes.append(step.boxes[0])
        if deadline.expired():
            break
    return np.array(boxes)


def auc(boxes: np.ndarray, sequence) -> float:
    frames = len(boxes)
    truncated = dataclasses.replace(sequence, frames=sequence.frames[:frames], ground_truth=sequence.ground_truth[:frames])
    return sequence_curves(boxes, truncated).summary()["auc"]


def compare_precision(plan: Plan, model: str, precision: str, reference: dict, deadline: Deadline) -> dict:
    backend = plan.open(model, precision, cuda_graphs=plan.on_gpu)
    try:
        outputs = compare_outputs(reference["outputs"], contract_outputs(backend, reference["inputs"]))
        boxes = tracked_boxes(backend, reference["frames"], reference["sequence"].init_box, deadline)
    finally:
        backend.close()
    frames = min(len(boxes), len(reference["boxes"]))
    ious = compare_sequences(reference["boxes"][:frames], boxes[:frames]).ious
    return {
        "model": model,
        "precision": precision,
        "cuda_graphs": plan.on_gpu,
        "outputs": [
            {"graph": row.graph, "output": row.output, "max_abs": row.max_abs, "max_rel": row.max_rel, "finite": row.finite}
            for row in outputs
        ],
        "frames": frames,
        "min_iou": float(ious.min()),
        "mean_iou": float(ious.mean()),
        "frames_below_0.98": int((ious < 0.98).sum()),
        "ious": [round(float(v), 4) for v in ious],
        "auc_reference": auc(reference["boxes"][:frames], reference["sequence"]),
        "auc": auc(boxes[:frames], reference["sequence"]),
    }


def run_reference(plan: Plan, model: str, deadline: Deadline) -> dict:
    sequence, frames = parity_sequence(plan.work, plan.parity_frames)
    recording = RecordingBackend(plan.reference(model), keep=RECORDED_CALLS)
    try:
        boxes = tracked_boxes(recording, frames, sequence.init_box, deadline)
        inputs = recording.first_calls(RECORDED_CALLS)
        outputs = contract_outputs(recording.inner, inputs)
    finally:
        recording.close()
    return {"sequence": sequence, "frames": frames[: len(boxes)], "boxes": boxes, "inputs": inputs, "outputs": outputs}


def run(plan: Plan, deadline: Deadline, add: Callable[[dict], None], say: Callable[[str], None]) -> None:
    for model_index, model in enumerate(plan.parity_models):
        model_deadline = deadline.slice(len(plan.parity_models) - model_index)
        if model_deadline.expired():
            add({"model": model, "not_measured": "the parity part's share of the budget ran out"})
            continue
        say(f"parity {model}: the torch CPU FP32 reference over {plan.parity_frames} frames")
        # The reference gets half of the model's slice; the precisions share the rest.
        reference = run_reference(plan, model, model_deadline.slice(2))
        for index, precision in enumerate(plan.precisions):
            measured = model_deadline.slice(len(plan.precisions) - index)
            if measured.expired():
                add({"model": model, "precision": precision, "not_measured": "the parity part's share ran out"})
                continue
            try:
                row = compare_precision(plan, model, precision, reference, measured)
            except ToMPError as exc:
                add({"model": model, "precision": precision, "not_measured": str(exc)})
                continue
            add(row)
            say(
                f"parity {model} {precision}: min IoU {row['min_iou']:.4f} over {row['frames']} frames, "
                f"AUC {row['auc']:.1f} vs {row['auc_reference']:.1f}"
            )
