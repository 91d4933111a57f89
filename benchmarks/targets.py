"""Targets per second and per-frame latency of multi-target tracking: one batched predictor+head call for
all targets of a frame against one call per target (the tracker before the target batch), for 1, 2, 4,
8 and 16 targets, on every backend that runs on the device.

    python -m benchmarks.targets                       # the shipped tiny model, the CPU backends
    python -m benchmarks.targets --preset tomp50       # ToMP-50 with random weights (speed does not depend on them)
    python -m benchmarks.targets --device cuda         # torch-cuda (FP16) and TensorRT engines, on a GPU

Both ways share one batched backbone call per frame, so the figures isolate the predictor and head; they
track the same frames in lockstep, taking turns to go first.
Frames are 640x480 with a moving textured square per target. Each backend runs in its own process, so
that one library's worker threads do not slow another, with large freed blocks kept in the heap as the CLI
keeps them (`tomp_deploy.runtime.host_heap`). Writes benchmarks/results/targets_<model>_<device>
.json/.md with the machine's facts.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from tomp_deploy.evaluation.host_facts import host_facts
from tomp_deploy.pipeline.model_forms import ModelForms
from tomp_deploy.runtime.backends import BackendOptions, open_backend
from tomp_deploy.runtime.backends.base import Backend, Located, TargetQuery
from tomp_deploy.runtime.contract import BACKBONE, CROP
from tomp_deploy.runtime.driver import track_frames
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.host_heap import keep_freed_memory
from tomp_deploy.runtime.shipped import resolve_model

RESULTS = Path(__file__).parent / "results"
TARGET_COUNTS = (1, 2, 4, 8, 16)
BACKENDS = {"cpu": ("torch", "onnxruntime", "openvino"), "cuda": ("torch-cuda", "tensorrt")}
SQUARE = 40
WARMUP_FRAMES = 3


class OneTargetPerCall:
    """A backend whose `locate` runs the predictor and head once per target: the baseline."""

    def __init__(self, inner: Backend):
        self.inner = inner

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def locate(self, queries: Sequence[TargetQuery]) -> list[Located]:
        return [located for query in queries for located in self.inner.locate([query])]


def squares_scene(targets: int, frames: int, width: int = 640, height: int = 480, seed: int = 0) -> tuple[list, list]:
    """Frames of a blocky random background with `targets` textured squares moving on a grid; their
    initial boxes."""
    images, tracks = squares_tracks(targets, frames, width, height, seed)
    return images, [track[0].tolist() for track in tracks]


def squares_tracks(
    targets: int, frames: int, width: int = 640, height: int = 480, seed: int = 0
) -> tuple[list, list[np.ndarray]]:
    """The frames of `squares_scene` and each square's box on every frame ([frames, 4] x, y, w, h)."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    textures = rng.integers(100, 255, (targets, SQUARE, SQUARE, 3), dtype=np.uint8)
    columns = int(np.ceil(np.sqrt(targets)))
    cell_w, cell_h = width // columns, height // int(np.ceil(targets / columns))
    starts = [(cell_w * (i % columns) + 10, cell_h * (i // columns) + 10) for i in range(targets)]
    images, tracks = [], np.zeros((targets, frames, 4))
    for index in range(frames):
        frame = background.copy()
        dx, dy = (2 * index) % max(1, cell_w - SQUARE - 20), index % max(1, cell_h - SQUARE - 20)
        for target, ((x, y), texture) in enumerate(zip(starts, textures)):
            frame[y + dy : y + dy + SQUARE, x + dx : x + dx + SQUARE] = texture
            tracks[target, index] = (x + dx, y + dy, SQUARE, SQUARE)
        images.append(frame)
    return images, list(tracks)


def paired_frame_seconds(backend: Backend, images: list, boxes: list) -> dict[str, list[float]]:
    """Seconds per tracked frame (after the warm-up) of both ways, run in lockstep on the same frames and
    taking turns to go first, so that neither gains from running second or later in the process; and
    under "shared", the batched way's crop and backbone seconds, which no batching of the predictor and
    head can save."""
    runs = {"batched": track_frames(backend, images, boxes), "per_target": track_frames(OneTargetPerCall(backend), images, boxes)}
    seconds: dict[str, list[float]] = {way: [] for way in (*runs, "shared")}
    for index in range(len(images)):
        for way in list(runs) if index % 2 == 0 else list(runs)[::-1]:
            step = next(runs[way])
            if step.index > WARMUP_FRAMES:
                seconds[way].append(step.seconds)
                if way == "batched":
                    seconds["shared"].append(step.results[0].times[CROP] + step.results[0].times[BACKBONE])
    return seconds


def measure(backend_name: str, model: str, device: str, counts: Sequence[int], frames: int) -> dict:
    """Runs in a fresh process: per target count, the median frame time batched and one call per target."""
    backend = open_backend(backend_name, model, BackendOptions(device=device))
    rows = []
    for count in counts:
        images, boxes = squares_scene(count, frames + WARMUP_FRAMES + 1)
        row = {"targets": count}
        seconds = paired_frame_seconds(backend, images, boxes)
        row["shared_ms"] = float(np.median(seconds.pop("shared")) * 1000)
        for way, way_seconds in seconds.items():
            frame_ms = float(np.median(way_seconds) * 1000)
            row[way] = {"frame_ms": frame_ms, "targets_per_s": count / (frame_ms / 1000)}
        row["speedup"] = row["batched"]["targets_per_s"] / row["per_target"]["targets_per_s"]
        rows.append(row)
    backend.close()
    return {"precision": getattr(backend, "precision", "fp32"), "rows": rows}


def model_forms(model: str, preset: str | None, work: Path, max_batch: int) -> ModelForms:
    """The forms of the model each backend loads, made on demand: engines are built for `max_batch` targets."""
    if preset:
        from tomp_deploy.model import ToMPNet, save_checkpoint
        from tomp_deploy.model import preset as model_preset

        checkpoint = work / f"{preset}.pt"
        save_checkpoint(ToMPNet(model_preset(preset)), checkpoint)
        return ModelForms(checkpoint=checkpoint, work=work, max_batch=max_batch)
    forms = ModelForms.from_path(resolve_model(model), work)
    forms.max_batch = max_batch
    return forms


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default="tiny", help="a checkpoint, an export or engine folder, or a shipped model's name (default: tiny)"
    )
    parser.add_argument("--preset", help="random weights of this preset instead of --model (e.g. tomp50)")
    parser.add_argument("--device", default="cpu", choices=sorted(BACKENDS))
    parser.add_argument("--backends", nargs="+", help="default: every backend of the device")
    parser.add_argument("--targets", nargs="+", type=int, default=list(TARGET_COUNTS))
    parser.add_argument("--frames", type=int, default=20, help="timed frames per measurement")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    backends = args.backends or list(BACKENDS[args.device])
    console = Console()
    heap_kept = keep_freed_memory()  # before the backends' processes start: they inherit it
    report = {
        "model": args.preset or Path(args.model).stem,
        "weights": "random" if args.preset else "trained",
        "device": args.device,
        "frames": args.frames,
        "machine": host_facts(),
        "date": datetime.date.today().isoformat(),
        "heap_kept": heap_kept,
        "backends": {},
    }
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as work:
        try:
            forms = model_forms(args.model, args.preset, Path(work), max(args.targets))
        except ToMPError as exc:
            raise SystemExit(f"error: {exc}") from None
        for name in backends:
            try:
                model = forms.for_backend(name, lambda text: console.print(f"{name}: {text}"))
                console.print(f"timing {name}: {', '.join(map(str, args.targets))} targets")
                with spawn.Pool(1) as pool:
                    report["backends"][name] = pool.apply(measure, (name, str(model), args.device, args.targets, args.frames))
            except ToMPError as exc:
                console.print(f"[yellow]{name} skipped:[/] {exc}")
                report["backends"][name] = {"skipped": str(exc)}
    stem = args.out / f"targets_{report['model']}_{args.device}"
    args.out.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2))
    stem.with_suffix(".md").write_text(markdown(report))
    console.print(results_table(report))
    console.print(f"wrote {stem}.json and .md")
    return report


HEAP = {
    True: "Large freed blocks stayed in the heap (`tomp_deploy.runtime.host_heap`, as under the CLI).",
    False: "This C library keeps its own heap policy (not glibc).",
}

COLUMNS = (
    "backend",
    "targets",
    "batched ms/frame",
    "per-target ms/frame",
    "batched targets/s",
    "per-target targets/s",
    "speedup",
    "crop+backbone ms/frame",
)
NARROW_COLUMNS = (0, 1, 2, 3, 4, 6)
"""The columns the printed table shows (it fits 80 characters, also when piped); the Markdown has all."""


def table_rows(report: dict) -> list[list[str]]:
    rows = []
    for name, result in report["backends"].items():
        if "skipped" in result:
            rows.append([name, "skipped: " + result["skipped"].splitlines()[0], *[""] * (len(COLUMNS) - 2)])
        rows += [
            [
                f"{name} {result['precision']}",
                str(row["targets"]),
                f"{row['batched']['frame_ms']:.1f}",
                f"{row['per_target']['frame_ms']:.1f}",
                f"{row['batched']['targets_per_s']:.1f}",
                f"{row['per_target']['targets_per_s']:.1f}",
                f"{row['speedup']:.2f}x",
                f"{row['shared_ms']:.1f}",
            ]
            for row in result.get("rows", [])
        ]
    return rows


def results_table(report: dict) -> Table:
    table = Table(title=f"{report['model']}: {report['machine']['cpu']} ({report['device']})")
    for index in NARROW_COLUMNS:
        table.add_column(COLUMNS[index].replace(" ", "\n", 1), justify="left" if index == 0 else "right")
    for row in table_rows(report):
        if not row[1].startswith("skipped"):  # the run printed why; the Markdown keeps the row
            table.add_row(*(row[index] for index in NARROW_COLUMNS))
    return table


def markdown(report: dict) -> str:
    machine = report["machine"]
    lines = [
        f"# Batched targets: {report['model']} ({report['weights']} weights), {report['device']}",
        "",
        f"{report['date']}; CPU {machine['cpu']} ({machine.get('cpu_count')} cores; "
        f"{', '.join(machine.get('cpu_features', [])) or 'no listed features'}); GPUs: "
        f"{', '.join(machine.get('gpus', [])) or 'none'}.",
        "",
        "Median time per frame over "
        f"{report['frames']} frames (after {WARMUP_FRAMES} warm-up frames) of a "
        "640x480 scene with one moving square per target; both ways share one batched backbone call "
        "per frame, and differ in the predictor and head: one call over all targets (batched) or one call "
        "per target. They track the same frames in lockstep, taking turns to go first. The crop and backbone "
        "time is part of both and bounds the speedup: with a predictor and head that cost nothing, batched "
        "tracking would run at that time per frame. "
        f"{HEAP[report['heap_kept']]} "
        "`python -m benchmarks.targets` wrote this file.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(report)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main(sys.argv[1:])
