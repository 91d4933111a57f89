"""Per-graph latency and tracker FPS of every CPU backend: PyTorch and ONNX Runtime (fp32), OpenVINO in
fp32, bf16 (where the CPU has it) and int8, the reference implementation's tracker on the same frames in
the same run, and OpenVINO's threads, latency hint and core pinning measured against each other.

    python -m benchmarks.cpu_backends --preset tomp50 --frames 30 \
        --reference-command "python time_reference.py {frames} {box}" --reference-note "pytracking ToMP-50 ..."

Weights are random (speed does not depend on them); the INT8 export is calibrated on synthetic
sequences. Frames are 320x240 with a moving textured square. Each backend is timed in its own process
(the ONNX Runtime and OpenVINO ones without torch), so that one library's idle worker threads do not
slow the other. The reference tracker is not part of this toolkit: give a command that times it on a
folder of PNG frames ({frames}) from the box {box} ("x,y,w,h") and prints a line "fps: X"; it runs
after the backends, on the same frames. Writes benchmarks/results/cpu_backends_<preset>.json/.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from tomp_deploy.evaluation.host_facts import host_facts
from tomp_deploy.export.onnx_export import export_model
from tomp_deploy.model import ToMPNet, preset, save_checkpoint
from tomp_deploy.runtime.backends import BackendOptions, open_backend
from tomp_deploy.runtime.contract import GRAPHS, STAGES
from tomp_deploy.runtime.driver import track_frames

RESULTS = Path(__file__).parent / "results"


def moving_square_frames(count: int, width: int = 320, height: int = 240, seed: int = 0) -> tuple[list, list]:
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    target = rng.integers(100, 255, (40, 40, 3), dtype=np.uint8)
    frames = []
    for i in range(count):
        frame = background.copy()
        x, y = 40 + 6 * i % (width - 80), 60 + 3 * i % (height - 80)
        frame[y : y + 40, x : x + 40] = target
        frames.append(frame)
    return frames, [40, 60, 40, 40]


def graph_latency(backend, inputs: dict, repeats: int) -> dict[str, float]:
    latency = {}
    for graph in GRAPHS:
        feeds = inputs[graph][0]
        if graph == "backbone":
            feeds = {"image": feeds["image"][:1]}
        backend.run(graph, feeds)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            backend.run(graph, feeds)
            times.append(time.perf_counter() - started)
        latency[graph] = float(np.median(times) * 1000)
    return latency


def tracker_speed(backend, frames, box, warmup: int = 3) -> dict:
    totals, stages = [], {stage: [] for stage in STAGES}
    for step in track_frames(backend, frames, [box]):
        if step.index > warmup:
            totals.append(step.seconds)
            for stage in STAGES:
                stages[stage].append(step.results[0].times[stage])
    totals = np.array(totals)
    return {
        "fps": float(1 / np.median(totals)),
        "fps_p10_p90": [float(1 / np.percentile(totals, 90)), float(1 / np.percentile(totals, 10))],
        "frames": len(totals),
        "stage_ms": {stage: float(np.median(v) * 1000) for stage, v in stages.items()},
    }


def measure(backend_name: str, model: str, options: dict, export_folder: str, frame_count: int, repeats: int) -> dict:
    """Runs in a fresh process: graph latencies on realistic inputs, then the tracker's speed."""
    from tomp_deploy.checks.fp16_report import contract_inputs
    from tomp_deploy.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    inputs = contract_inputs(OnnxRuntimeBackend(export_folder))
    backend = open_backend(backend_name, model, BackendOptions(**options))
    frames, box = moving_square_frames(frame_count)
    return {
        "graph_ms": graph_latency(backend, inputs, repeats),
        "tracker": tracker_speed(backend, frames, box),
        "precision": getattr(backend, "precision", "fp32"),
    }


OPENVINO_SETTINGS = [
    {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": hint, "ENABLE_CPU_PINNING": pinning}
    for threads in (1, 2)
    for hint in ("LATENCY", "THROUGHPUT")
    for pinning in (True, False)
]


def openvino_settings(export_folder: str, repeats: int) -> list[dict]:
    """Backbone and predictor latency of OpenVINO (in the precision `auto` picks) under each of
    OPENVINO_SETTINGS: what the backend's fixed latency hint and default threads rest on."""
    import openvino

    from tomp_deploy.checks.fp16_report import contract_inputs
    from tomp_deploy.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    from tomp_deploy.runtime.backends.openvino_backend import INFERENCE_PRECISION, choose_precision, cpu_capabilities

    core = openvino.Core()
    precision = choose_precision("auto", "fp32", cpu_capabilities(core))
    inputs = contract_inputs(OnnxRuntimeBackend(export_folder))
    rows = []
    for setting in OPENVINO_SETTINGS:
        row = {**setting, "precision": precision}
        for graph in ("backbone", "predictor"):
            compiled = core.compile_model(
                str(Path(export_folder) / f"{graph}.onnx"),
                "CPU",
                {**setting, "INFERENCE_PRECISION_HINT": INFERENCE_PRECISION[precision]},
            )
            request = compiled.create_infer_request()
            feeds = {name: np.ascontiguousarray(a[:1] if graph == "backbone" else a) for name, a in inputs[graph][0].items()}
            request.infer(feeds)
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                request.infer(feeds)
                times.append(time.perf_counter() - started)
            row[f"{graph}_ms"] = float(np.median(times) * 1000)
        rows.append(row)
    return rows


def backends_to_time(folder: Path, checkpoint: Path, console: Console) -> dict[str, tuple[str, str, dict]]:
    """label -> (backend, model, options): torch and onnxruntime, and where OpenVINO is installed its fp32,
    bf16 (where the CPU has it) and int8 runs."""
    import importlib.util

    export = folder / "export"
    timed = {"torch": ("torch", str(checkpoint), {}), "onnxruntime": ("onnxruntime", str(export), {})}
    if importlib.util.find_spec("openvino") is None:
        console.print("note: openvino is not installed; no OpenVINO rows")
        return timed
    import openvino

    from tomp_deploy.evaluation.datasets import open_dataset
    from tomp_deploy.evaluation.synth import generate_benchmark
    from tomp_deploy.export.quantize import CalibrationData, quantize_export
    from tomp_deploy.runtime.backends.openvino_backend import cpu_capabilities

    timed["openvino fp32"] = ("openvino", str(export), {"precision": "fp32"})
    if "BF16" in cpu_capabilities(openvino.Core()):
        timed["openvino bf16"] = ("openvino", str(export), {"precision": "bf16"})
    with console.status("quantising to INT8"):
        generate_benchmark(folder / "calibration", 2, 20, seed=3, family="cutouts")
        quantize_export(export, folder / "export-int8", CalibrationData(open_dataset(folder / "calibration", "lasot"), 40))
    timed["openvino int8"] = ("openvino", str(folder / "export-int8"), {"precision": "int8"})
    return timed


def reference_fps(command: str, frames: list[np.ndarray], box: list[int], folder: Path) -> tuple[float, str]:
    """Runs the reference timer on `frames` written as PNG; returns its FPS and its output."""
    folder.mkdir()
    for index, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{index:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    argv = [part.format(frames=folder, box=",".join(map(str, box))) for part in shlex.split(command)]
    done = subprocess.run(argv, capture_output=True, text=True)
    found = re.findall(r"^fps:\s*([0-9.]+)\s*$", done.stdout, flags=re.MULTILINE)
    if done.returncode != 0 or not found:
        raise SystemExit(
            f"The reference command {argv} failed or printed no 'fps: X' line "
            f"(exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    return float(found[-1]), done.stdout.strip()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tomp50", choices=sorted(("tomp50", "tomp101", "tiny")))
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--reference-command",
        default=None,
        help="Times the reference tracker: {frames} is a folder of PNG frames, {box} the first box x,y,w,h; prints 'fps: X'",
    )
    parser.add_argument("--reference-note", default="", help="What the reference command runs, for the record")
    args = parser.parse_args(argv)
    console = Console()
    torch.manual_seed(0)
    network = ToMPNet(preset(args.preset)).eval()
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = save_checkpoint(network, Path(folder) / "model.pt")
        with console.status("exporting"):
            export_model(network, Path(folder) / "export")
        export = str(Path(folder) / "export")
        results = {}
        spawn = multiprocessing.get_context("spawn")
        for label, (backend, model, options) in backends_to_time(Path(folder), checkpoint, console).items():
            with console.status(f"timing {label}"), spawn.Pool(1) as pool:
                results[label] = pool.apply(measure, (backend, model, options, export, args.frames, args.repeats))
        settings = []
        if "openvino fp32" in results:
            with console.status("timing OpenVINO's threads, hint and pinning"), spawn.Pool(1) as pool:
                settings = pool.apply(openvino_settings, (export, args.repeats))
        reference = None
        if args.reference_command:
            with console.status("timing the reference tracker"):
                frames, box = moving_square_frames(args.frames)
                reference = reference_fps(args.reference_command, frames, box, Path(folder) / "frames")

    report = {
        "benchmark": "cpu_backends",
        "preset": args.preset,
        "date": datetime.date.today().isoformat(),
        "command": "python -m benchmarks.cpu_backends " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "machine": host_facts(),
        "torch_threads": torch.get_num_threads(),
        "results": results,
        "openvino_settings": settings,
        "reference_tracker_fps": reference[0] if reference else None,
        "reference_output": reference[1] if reference else None,
        "reference_note": args.reference_note,
        "vs_reference": {name: r["tracker"]["fps"] / reference[0] for name, r in results.items()} if reference else {},
    }
    console.print(results_table(report))
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"cpu_backends_{args.preset}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2))
    stem.with_suffix(".md").write_text(markdown(report))
    return report


def results_table(report: dict) -> Table:
    machine = report["machine"]
    table = Table(
        title=f"{report['preset']} on {machine['cpu']} ({', '.join(machine['cpu_features'])}), "
        f"{report['torch_threads']} threads, 320x240 frames"
    )
    for column in ("backend", "precision", *[f"{g} ms" for g in GRAPHS], "tracker FPS", "x reference"):
        table.add_column(column, justify="right")
    for name, r in report["results"].items():
        ratio = report["vs_reference"].get(name)
        table.add_row(
            name,
            r["precision"],
            *[f"{r['graph_ms'][g]:.1f}" for g in GRAPHS],
            f"{r['tracker']['fps']:.2f}",
            f"{ratio:.2f}" if ratio else "",
        )
    return table


def markdown(report: dict) -> str:
    machine = report["machine"]
    features = ", ".join(machine["cpu_features"])
    amx = "with AMX" if any(f.startswith("amx") for f in machine["cpu_features"]) else "no AMX"
    lines = [
        f"# CPU backends: {report['preset']}",
        "",
        f"{report['date']} on {machine['cpu']} ({machine['cpu_count']} cores; {features}; {amx}), `{report['command']}`",
        "",
        "| backend | precision | backbone ms | predictor ms | head ms | tracker FPS | x reference |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in report["results"].items():
        ratio = report["vs_reference"].get(name)
        lines.append(
            f"| {name} | {r['precision']} | "
            + " | ".join(f"{r['graph_ms'][g]:.1f}" for g in GRAPHS)
            + f" | {r['tracker']['fps']:.2f} | {f'{ratio:.2f}' if ratio else ''} |"
        )
    if report["reference_tracker_fps"]:
        lines += [
            "",
            f"Reference implementation's tracker, same frames, same run: {report['reference_tracker_fps']:.2f} "
            f"FPS. {report['reference_note']}",
        ]
    if report["openvino_settings"]:
        lines += [
            "",
            f"OpenVINO settings ({report['openvino_settings'][0]['precision']}), graph latency:",
            "",
            "| threads | hint | core pinning | backbone ms | predictor ms |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {row['INFERENCE_NUM_THREADS']} | {row['PERFORMANCE_HINT']} | {row['ENABLE_CPU_PINNING']} | "
            f"{row['backbone_ms']:.1f} | {row['predictor_ms']:.1f} |"
            for row in report["openvino_settings"]
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
