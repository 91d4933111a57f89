"""Per-graph latency and tracker FPS: ONNX Runtime CPU against PyTorch CPU (fp32), and the reference
implementation's tracker on the same frames in the same run.

    python -m benchmarks.onnxruntime_cpu --preset tomp50 --frames 30 \
        --reference-command "python time_reference.py {frames} {box}" --reference-note "pytracking ToMP-50 ..."

Weights are random (speed does not depend on them). Frames are 320x240 with a moving textured square.
Each backend is timed in its own process (the ONNX Runtime one without torch), so that one library's
idle worker threads do not slow the other. The reference tracker is not part of this toolkit: give a
command that times it on a folder of PNG frames ({frames}) from the box {box} ("x,y,w,h") and prints a
line "fps: X"; it runs after the backends, on the same frames. Writes
benchmarks/results/onnxruntime_cpu_<preset>.json/.md.
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

from export.onnx_export import export_model
from tomp_deploy.backends import open_backend
from tomp_deploy.contract import GRAPHS
from tomp_deploy.driver import track_frames
from tomp_deploy.host_facts import host_facts
from tomp_deploy.model import ToMPNet, preset, save_checkpoint
from tomp_deploy.tracker import STAGES

RESULTS = Path(__file__).parent / "results"


def moving_square_frames(count: int, width: int = 320, height: int = 240, seed: int = 0) -> tuple[list, list]:
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    target = rng.integers(100, 255, (40, 40, 3), dtype=np.uint8)
    frames = []
    for i in range(count):
        frame = background.copy()
        x, y = 40 + 6 * i % (width - 80), 60 + 3 * i % (height - 80)
        frame[y:y + 40, x:x + 40] = target
        frames.append(frame)
    return frames, [40, 60, 40, 40]


def graph_latency(backend, inputs: dict, repeats: int) -> dict[str, float]:
    latency = {}
    for graph in GRAPHS:
        arrays = inputs[graph][0]
        if graph == "backbone":
            arrays = (arrays[0][:1],)
        function = getattr(backend, graph)
        function(*arrays)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            function(*arrays)
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


def measure(backend_name: str, model: str, export_folder: str, frame_count: int, repeats: int) -> dict:
    """Runs in a fresh process: graph latencies on realistic inputs, then the tracker's speed."""
    from export.fp16 import contract_inputs
    from tomp_deploy.backends.onnxruntime_backend import OnnxRuntimeBackend

    inputs = contract_inputs(OnnxRuntimeBackend(export_folder))
    backend = open_backend(backend_name, model)
    frames, box = moving_square_frames(frame_count)
    return {"graph_ms": graph_latency(backend, inputs, repeats), "tracker": tracker_speed(backend, frames, box)}


def reference_fps(command: str, frames: list[np.ndarray], box: list[int], folder: Path) -> tuple[float, str]:
    """Runs the reference timer on `frames` written as PNG; returns its FPS and its output."""
    folder.mkdir()
    for index, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{index:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    argv = [part.format(frames=folder, box=",".join(map(str, box))) for part in shlex.split(command)]
    done = subprocess.run(argv, capture_output=True, text=True)
    found = re.findall(r"^fps:\s*([0-9.]+)\s*$", done.stdout, flags=re.MULTILINE)
    if done.returncode != 0 or not found:
        raise SystemExit(f"The reference command {argv} failed or printed no 'fps: X' line "
                         f"(exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return float(found[-1]), done.stdout.strip()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tomp50", choices=sorted(("tomp50", "tomp101", "tiny")))
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--reference-command", default=None,
                        help="Times the reference tracker: {frames} is a folder of PNG frames, {box} the first box x,y,w,h; "
                             "prints 'fps: X'")
    parser.add_argument("--reference-note", default="", help="What the reference command runs, for the record")
    args = parser.parse_args(argv)
    console = Console()
    torch.manual_seed(0)
    network = ToMPNet(preset(args.preset)).eval()
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = save_checkpoint(network, Path(folder) / "model.pt")
        with console.status("exporting"):
            export_model(network, Path(folder) / "export")
        models = {"torch": str(checkpoint), "onnxruntime": str(Path(folder) / "export")}
        results = {}
        spawn = multiprocessing.get_context("spawn")
        for name, model in models.items():
            with console.status(f"timing {name}"), spawn.Pool(1) as pool:
                results[name] = pool.apply(measure, (name, model, models["onnxruntime"], args.frames, args.repeats))
        reference = None
        if args.reference_command:
            with console.status("timing the reference tracker"):
                frames, box = moving_square_frames(args.frames)
                reference = reference_fps(args.reference_command, frames, box, Path(folder) / "frames")

    table = Table(title=f"{args.preset}: fp32 on {torch.get_num_threads()} CPU threads, 320x240 frames")
    for column in ("backend", *[f"{g} ms" for g in GRAPHS], "tracker FPS", "crop/decode ms"):
        table.add_column(column, justify="right")
    for name, r in results.items():
        stage = r["tracker"]["stage_ms"]
        table.add_row(name, *[f"{r['graph_ms'][g]:.1f}" for g in GRAPHS], f"{r['tracker']['fps']:.2f}",
                      f"{stage['crop']:.1f}/{stage['decode']:.1f}")
    console.print(table)
    report = {
        "benchmark": "onnxruntime_cpu",
        "preset": args.preset,
        "date": datetime.date.today().isoformat(),
        "command": "python -m benchmarks.onnxruntime_cpu " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "machine": host_facts(),
        "torch_threads": torch.get_num_threads(),
        "results": results,
        "reference_tracker_fps": reference[0] if reference else None,
        "reference_output": reference[1] if reference else None,
        "reference_note": args.reference_note,
    }
    if reference:
        for name in results:
            report[f"{name}_vs_reference"] = results[name]["tracker"]["fps"] / reference[0]
        console.print(f"reference tracker {reference[0]:.2f} FPS; onnxruntime {report['onnxruntime_vs_reference']:.2f}x, "
                      f"torch {report['torch_vs_reference']:.2f}x")
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"onnxruntime_cpu_{args.preset}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2))
    lines = [f"# ONNX Runtime CPU vs PyTorch CPU: {args.preset}", "",
             f"{report['date']} on {report['machine']['cpu']} ({report['machine']['cpu_count']} cores), "
             f"`{report['command']}`", "",
             "| backend | backbone ms | predictor ms | head ms | tracker FPS |", "|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{r['graph_ms'][g]:.1f}" for g in GRAPHS)
                     + f" | {r['tracker']['fps']:.2f} |")
    if reference:
        lines += ["", f"Reference implementation's tracker, same frames, same run: {reference[0]:.2f} FPS "
                      f"(onnxruntime {report['onnxruntime_vs_reference']:.2f}x, torch {report['torch_vs_reference']:.2f}x). "
                      f"{args.reference_note}"]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return report


if __name__ == "__main__":
    main()
