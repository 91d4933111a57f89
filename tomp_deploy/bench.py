"""`tomp-deploy bench`: every requested backend over the same sequences against the torch fp32 reference.

Reports accuracy (success AUC, precision, normalised precision and their difference from the
reference), agreement with the reference (per-frame IoU of the boxes, score-map error on identical
inputs), median time per stage and end-to-end FPS with its spread (image decoding excluded), and the
steady-state FPS of the frames tracked with a full memory (the predictor's largest input), as a JSON
file, a Markdown table and a PNG (success plots + FPS bars).
"""

from __future__ import annotations

import datetime
import json
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tomp_deploy.backends import BACKENDS, open_backend
from tomp_deploy.datasets import Sequence
from tomp_deploy.driver import track_frames
from tomp_deploy.errors import ToMPError
from tomp_deploy.geometry import iou
from tomp_deploy.host_facts import host_facts
from tomp_deploy.metrics import average, sequence_curves
from tomp_deploy.parity import RecordingBackend, compare_contract
from tomp_deploy.sources import FrameSource
from tomp_deploy.tracker import STAGES

REFERENCE = "torch"
RECORDED_FRAMES = 5


@dataclass
class BackendRun:
    status: str = "ok"
    error: str | None = None
    boxes: dict[str, np.ndarray] = field(default_factory=dict)
    frame_seconds: list[float] = field(default_factory=list)
    steady_seconds: list[float] = field(default_factory=list)
    """Frame times once the memory is full (every slot holds a frame): the cost of long sequences."""
    stage_seconds: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    compute_precision: str | None = None
    """The precision a backend computes in (what openvino's auto chose), where it says."""


def run_backend(backend, sequences: list[Sequence], warmup: int, on_frame) -> BackendRun:
    run = BackendRun()
    timed = 0
    for sequence in sequences:
        frames = [frame.image for frame in FrameSource.of_images(sequence.frames)]  # decoded before timing
        boxes = []
        for step in track_frames(backend, frames, [sequence.init_box]):
            boxes.append(step.boxes[0])
            if step.index == 0:
                continue
            timed += 1
            if timed > warmup:
                times = step.results[0].times
                run.frame_seconds.append(sum(times.values()))
                if step.results[0].memory_frames == backend.config.memory_size:
                    run.steady_seconds.append(sum(times.values()))
                for stage in STAGES:
                    run.stage_seconds[stage].append(times[stage])
            on_frame()
        run.boxes[sequence.name] = np.array(boxes)
    return run


def summarise(name: str, run: BackendRun, sequences: list[Sequence], reference: dict | None,
              reference_run: BackendRun | None, score_error: float | None) -> dict:
    if run.status != "ok":
        return {"status": run.status, "error": run.error}
    curves = average([sequence_curves(run.boxes[s.name], s, name) for s in sequences]).summary()
    times = np.array(run.frame_seconds)
    if times.size == 0:
        raise ToMPError("No frame was timed: lower --warmup or add frames.")
    entry = {"status": "ok", **curves, **({"compute_precision": run.compute_precision} if run.compute_precision else {})}
    if reference is not None and reference_run is not None:
        ious = np.concatenate([iou(run.boxes[s.name][1:], reference_run.boxes[s.name][1:]) for s in sequences])
        entry.update({
            "delta_auc": curves["auc"] - reference["auc"],
            "delta_precision": curves["precision"] - reference["precision"],
            "delta_norm_precision": curves["norm_precision"] - reference["norm_precision"],
            "iou_mean": float(ious.mean()) if ious.size else 1.0,
            "iou_min": float(ious.min()) if ious.size else 1.0,
            "score_max_rel_error": score_error,
        })
    entry.update({
        "fps": float(1 / np.median(times)),
        "fps_p10": float(1 / np.percentile(times, 90)),
        "fps_p90": float(1 / np.percentile(times, 10)),
        "fps_steady": float(1 / np.median(run.steady_seconds)) if run.steady_seconds else None,
        "frames_timed": int(times.size),
        "frames_steady": len(run.steady_seconds),
        "stage_ms": {stage: float(np.median(v) * 1000) for stage, v in run.stage_seconds.items()},
    })
    return entry


def bench(model_name: str, model_for: Callable[[str], Path], backends: list[str], sequences: list[Sequence], out: Path,
          device: str = "cpu", warmup: int = 5, progress=lambda text: None, on_frame=lambda: None,
          command: str = "") -> dict:
    """Runs every backend (torch first, the reference) over `sequences`; `model_for(backend)` gives the
    model file or folder that backend takes, or raises `ToMPError` to have it reported as skipped."""
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise ToMPError(f"Unknown backend(s) {unknown}; available backends: {', '.join(BACKENDS)}.")
    if not sequences:
        raise ToMPError("The dataset holds no sequence to benchmark.")
    names = [REFERENCE] + [b for b in backends if b != REFERENCE]
    out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, BackendRun] = {}
    score_errors: dict[str, float] = {}
    reference = recorded = None
    try:
        for name in names:
            progress(f"{name}: loading")
            try:
                backend = open_backend(name, model_for(name), device=device)
            except ToMPError as exc:
                runs[name] = BackendRun(status="skipped", error=str(exc))
                continue
            try:
                progress(f"{name}: tracking")
                if name == REFERENCE:
                    reference = RecordingBackend(backend)
                    runs[name] = run_backend(reference, sequences, warmup, on_frame)
                    recorded = reference.first_calls(RECORDED_FRAMES)
                    continue
                runs[name] = run_backend(backend, sequences, warmup, on_frame)
                runs[name].compute_precision = getattr(backend, "precision", None)
                if recorded is not None:
                    rows = compare_contract(reference.inner, backend, recorded)
                    score_errors[name] = next(r.max_rel for r in rows if r.output == "scores")
            except Exception as exc:  # a backend failing mid-run is reported; the others still run
                runs[name] = BackendRun(status="failed", error=f"{exc.__class__.__name__}: {exc}")
                traceback.print_exc(limit=2)
            finally:
                if name != REFERENCE:
                    backend.close()
    finally:
        if reference is not None:
            reference.close()
    if recorded is not None:
        score_errors[REFERENCE] = 0.0
    reference_run = runs[REFERENCE] if runs[REFERENCE].status == "ok" else None
    reference_curves = summarise(REFERENCE, reference_run, sequences, None, None, None) if reference_run else None
    report = {
        "machine": {**host_facts(), "device": device},
        "reference": REFERENCE,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "model": model_name,
        "sequences": [s.name for s in sequences],
        "frames": sum(len(s.frames) for s in sequences),
        "warmup_frames": warmup,
        "backends": {name: summarise(name, runs[name], sequences, reference_curves, reference_run, score_errors.get(name))
                     for name in names},
    }
    (out / "bench.json").write_text(json.dumps(report, indent=2))
    (out / "bench.md").write_text(markdown(report))
    plot(report, runs, sequences, out / "bench.png")
    return report


TABLE_COLUMNS = ("backend", "status", "AUC", "ΔAUC", "precision", "norm. prec.", "IoU vs ref (mean/min)", "score err",
                 "FPS (p10-p90)", "steady FPS", "ms " + "/".join(STAGES))


def table_rows(report: dict) -> list[list[str]]:
    """The bench table, one row of TABLE_COLUMNS per backend: what the terminal, Markdown and piped
    output all show."""
    rows = []
    for name, entry in report["backends"].items():
        if entry["status"] != "ok":
            rows.append([name, entry["status"], entry["error"], *[""] * (len(TABLE_COLUMNS) - 3)])
            continue
        delta, score = entry.get("delta_auc"), entry.get("score_max_rel_error")
        rows.append([
            row_label(name, entry), "ok", f"{entry['auc']:.1f}", "" if delta is None else f"{delta:+.2f}",
            f"{entry['precision']:.1f}", f"{entry['norm_precision']:.1f}",
            f"{entry.get('iou_mean', 1):.4f} / {entry.get('iou_min', 1):.4f}",
            "" if score is None else f"{score:.1e}", f"{entry['fps']:.1f} ({entry['fps_p10']:.1f}-{entry['fps_p90']:.1f})",
            "" if entry["fps_steady"] is None else f"{entry['fps_steady']:.1f} ({entry['frames_steady']} frames)",
            "/".join(f"{entry['stage_ms'][s]:.1f}" for s in STAGES)])
    return rows


def row_label(name: str, entry: dict) -> str:
    """A backend's name, with the precision it computes in where it chose one (openvino's auto)."""
    return f"{name} ({entry['compute_precision']})" if entry.get("compute_precision") else name


def table_title(report: dict) -> str:
    return (f"bench: {Path(report['model']).name} on {len(report['sequences'])} sequences "
            f"({report['machine']['device']}), reference {report['reference']}")


def markdown_table(columns, rows) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(report: dict) -> str:
    machine = report["machine"]
    return "\n".join([
        f"# tomp-deploy bench: {Path(report['model']).name}", "",
        f"{report['date']} on {machine['cpu']} ({machine['cpu_count']} cores; "
        f"{', '.join(machine.get('cpu_features', [])) or 'no AMX/AVX512 flags read'})"
        f"{''.join(f', {gpu}' for gpu in machine['gpus'])}, device {machine['device']}; "
        f"{len(report['sequences'])} sequences, {report['frames']} frames.",
        f"Command: `{report['command']}`", "",
        markdown_table(TABLE_COLUMNS, table_rows(report))]) + "\n"


def plot(report: dict, runs: dict[str, BackendRun], sequences: list[Sequence], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tomp_deploy.metrics import OVERLAP_THRESHOLDS

    figure, (success_axis, fps_axis) = plt.subplots(1, 2, figsize=(11, 4.5))
    ok = [n for n, e in report["backends"].items() if e["status"] == "ok"]
    for name in ok:
        curve = average([sequence_curves(runs[name].boxes[s.name], s) for s in sequences]).success
        success_axis.plot(OVERLAP_THRESHOLDS, curve * 100, linewidth=2,
                          label=f"{row_label(name, report['backends'][name])} [{report['backends'][name]['auc']:.1f}]")
    success_axis.set(xlabel="Overlap threshold", ylabel="Overlap Precision [%]", xlim=(0, 1), ylim=(0, 100),
                     title="Success plot")
    success_axis.grid(True, linestyle=":")
    success_axis.legend(loc="lower left")
    fps = [report["backends"][n]["fps"] for n in ok]
    low = [f - report["backends"][n]["fps_p10"] for n, f in zip(ok, fps)]
    high = [report["backends"][n]["fps_p90"] - f for n, f in zip(ok, fps)]
    fps_axis.bar([row_label(n, report["backends"][n]) for n in ok], fps, yerr=[low, high], capsize=6, color="tab:green")
    fps_axis.set(ylabel="frames per second (median, p10-p90)", title=f"Speed ({report['machine']['device']})")
    fps_axis.grid(True, axis="y", linestyle=":")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)

