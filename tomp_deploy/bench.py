"""`tomp-deploy bench`: every requested backend over the same sequences against the torch fp32 reference.

Reports accuracy (success AUC, precision, normalised precision and their difference from the
reference), agreement with the reference (per-frame IoU of the boxes, score-map error on identical
inputs), median time per stage and end-to-end FPS with its spread (image decoding excluded), as a
JSON file, a Markdown table and a PNG (success plots + FPS bars).
"""

from __future__ import annotations

import datetime
import json
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from tomp_deploy.backends import BACKENDS, open_backend
from tomp_deploy.backends.tensorrt_backend import require
from tomp_deploy.datasets import Sequence
from tomp_deploy.engine_manifest import ENGINE_MANIFEST
from tomp_deploy.errors import ToMPError
from tomp_deploy.exported import MANIFEST
from tomp_deploy.geometry import iou
from tomp_deploy.machine import machine_facts
from tomp_deploy.metrics import average, sequence_curves
from tomp_deploy.parity import RecordingBackend, compare_contract
from tomp_deploy.tracker import STAGES, ToMPTracker

REFERENCE = "torch"
RECORDED_FRAMES = 5


@dataclass
class ModelFiles:
    """The forms of one model a benchmark can use: checkpoint (torch, torch-cuda), export folder
    (onnxruntime), engine folder (tensorrt). Missing forms are made from the checkpoint when asked for."""

    checkpoint: Path | None = None
    export: Path | None = None
    engines: Path | None = None

    @classmethod
    def from_path(cls, path: Path) -> "ModelFiles":
        if path.is_file():
            return cls(checkpoint=path)
        if (path / MANIFEST).is_file():
            recorded = (json.loads((path / MANIFEST).read_text()).get("checkpoint") or {}).get("path")
            checkpoint = Path(recorded) if recorded and Path(recorded).is_file() else None
            if (path / ENGINE_MANIFEST).is_file():
                return cls(checkpoint=checkpoint, engines=path)
            return cls(checkpoint=checkpoint, export=path)
        raise ToMPError(f"--model {path} is neither a checkpoint file, an export folder (with {MANIFEST}) nor an "
                        f"engine folder (with {ENGINE_MANIFEST}).")

    def for_backend(self, name: str, out: Path, progress) -> Path:
        if name in ("torch", "torch-cuda"):
            if self.checkpoint is None:
                raise ToMPError(f"the model folder names no checkpoint that exists here, so {name} cannot run it")
            return self.checkpoint
        if name == "tensorrt":
            return self.engine_folder(out, progress)
        return self.export_folder(out, progress)

    def engine_folder(self, out: Path, progress) -> Path:
        if self.engines is None:
            from engines.builder import build_engines

            require("tensorrt")  # before exporting: without TensorRT the backend is skipped at once
            require("pycuda.driver")
            export = self.export_folder(out, progress)
            progress("building TensorRT engines")
            self.engines = out / ".work" / "engines"
            build_engines(export, self.engines, report=progress)
        return self.engines

    def export_folder(self, out: Path, progress) -> Path:
        if self.export is None:
            if self.checkpoint is None:
                raise ToMPError("an engine folder cannot be run by ONNX Runtime and names no checkpoint to export")
            from export.onnx_export import export_model  # the one step that needs the export tooling
            from tomp_deploy.model import load_model

            progress("exporting the checkpoint to ONNX")
            self.export = out / ".work" / "export"
            export_model(load_model(self.checkpoint), self.export, force=True)
        return self.export


@dataclass
class BackendRun:
    status: str = "ok"
    error: str | None = None
    boxes: dict[str, np.ndarray] = field(default_factory=dict)
    frame_seconds: list[float] = field(default_factory=list)
    stage_seconds: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ToMPError(f"{path} cannot be read; the dataset is incomplete.")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def run_backend(backend, sequences: list[Sequence], warmup: int, on_frame) -> BackendRun:
    run = BackendRun()
    timed = 0
    for sequence in sequences:
        frames = [read_rgb(p) for p in sequence.frames]
        tracker = ToMPTracker(backend)
        tracker.initialize(frames[0], sequence.init_box)
        boxes = [sequence.init_box]
        for frame in frames[1:]:
            result = tracker.track(frame)
            boxes.append(result.box)
            timed += 1
            if timed > warmup:
                run.frame_seconds.append(sum(result.times.values()))
                for stage in STAGES:
                    run.stage_seconds[stage].append(result.times[stage])
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
    entry = {"status": "ok", **curves}
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
        "frames_timed": int(times.size),
        "stage_ms": {stage: float(np.median(v) * 1000) for stage, v in run.stage_seconds.items()},
    })
    return entry


def bench(model: Path | ModelFiles, backends: list[str], sequences: list[Sequence], out: Path, device: str = "cpu",
          warmup: int = 5, progress=lambda text: None, on_frame=lambda: None, command: str = "") -> dict:
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise ToMPError(f"Unknown backend(s) {unknown}; available backends: {', '.join(BACKENDS)}.")
    if not sequences:
        raise ToMPError("The dataset holds no sequence to benchmark.")
    files = model if isinstance(model, ModelFiles) else ModelFiles.from_path(model)
    names = [REFERENCE] + [b for b in backends if b != REFERENCE]
    out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, BackendRun] = {}
    loaded = {}
    recorded = None
    for name in names:
        progress(f"{name}: loading")
        try:
            backend = open_backend(name, files.for_backend(name, out, progress), device=device)
        except ToMPError as exc:
            runs[name] = BackendRun(status="skipped", error=str(exc))
            continue
        try:
            if name == REFERENCE:
                backend = RecordingBackend(backend)
            progress(f"{name}: tracking")
            runs[name] = run_backend(backend, sequences, warmup, on_frame)
            if name == REFERENCE:
                recorded = {g: calls[:RECORDED_FRAMES] for g, calls in backend.calls.items()}
                backend = backend.inner
            loaded[name] = backend
        except Exception as exc:  # a backend failing mid-run is reported; the others still run
            runs[name] = BackendRun(status="failed", error=f"{exc.__class__.__name__}: {exc}")
            traceback.print_exc(limit=2)
    reference_run = runs.get(REFERENCE)
    reference_ok = reference_run is not None and reference_run.status == "ok"
    reference_curves = summarise(REFERENCE, reference_run, sequences, None, None, None) if reference_ok else None
    report_backends = {}
    for name in names:
        score_error = None
        if reference_ok and name in loaded:
            rows = compare_contract(loaded[REFERENCE], loaded[name], recorded)
            score_error = next(r.max_rel for r in rows if r.output == "scores")
        report_backends[name] = summarise(name, runs[name], sequences, reference_curves,
                                          reference_run if reference_ok else None, score_error)
    report = {
        "machine": {**machine_facts(), "device": device},
        "reference": REFERENCE,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "model": str(files.checkpoint or files.export or files.engines),
        "sequences": [s.name for s in sequences],
        "frames": sum(len(s.frames) for s in sequences),
        "warmup_frames": warmup,
        "backends": report_backends,
    }
    (out / "bench.json").write_text(json.dumps(report, indent=2))
    (out / "bench.md").write_text(markdown(report))
    plot(report, runs, sequences, out / "bench.png")
    return report


def markdown(report: dict) -> str:
    lines = [f"# tomp-deploy bench: {Path(report['model']).name}", "",
             f"{report['date']} on {report['machine']['cpu']} ({report['machine']['cpu_count']} cores)"
             f"{''.join(f', {gpu}' for gpu in report['machine']['gpus'])}, device {report['machine']['device']}; "
             f"{len(report['sequences'])} sequences, {report['frames']} frames.",
             f"Command: `{report['command']}`", "",
             "| backend | status | AUC | ΔAUC | precision | norm. prec. | IoU vs ref (mean/min) | score err | FPS (p10-p90) "
             "| crop/backbone/predictor/head/decode ms |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, entry in report["backends"].items():
        if entry["status"] != "ok":
            lines.append(f"| {name} | {entry['status']}: {entry['error']} |  |  |  |  |  |  |  |  |")
            continue
        stages = "/".join(f"{entry['stage_ms'][s]:.1f}" for s in STAGES)
        delta = entry.get("delta_auc")
        score = entry.get("score_max_rel_error")
        lines.append(
            f"| {name} | ok | {entry['auc']:.1f} | {'' if delta is None else f'{delta:+.2f}'} | {entry['precision']:.1f} "
            f"| {entry['norm_precision']:.1f} | {entry.get('iou_mean', 1):.4f} / {entry.get('iou_min', 1):.4f} "
            f"| {'' if score is None else f'{score:.1e}'} | {entry['fps']:.1f} ({entry['fps_p10']:.1f}-{entry['fps_p90']:.1f}) "
            f"| {stages} |")
    return "\n".join(lines) + "\n"


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
                          label=f"{name} [{report['backends'][name]['auc']:.1f}]")
    success_axis.set(xlabel="Overlap threshold", ylabel="Overlap Precision [%]", xlim=(0, 1), ylim=(0, 100),
                     title="Success plot")
    success_axis.grid(True, linestyle=":")
    success_axis.legend(loc="lower left")
    fps = [report["backends"][n]["fps"] for n in ok]
    low = [f - report["backends"][n]["fps_p10"] for n, f in zip(ok, fps)]
    high = [report["backends"][n]["fps_p90"] - f for n, f in zip(ok, fps)]
    fps_axis.bar(ok, fps, yerr=[low, high], capsize=6, color="tab:green")
    fps_axis.set(ylabel="frames per second (median, p10-p90)", title=f"Speed ({report['machine']['device']})")
    fps_axis.grid(True, axis="y", linestyle=":")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)

