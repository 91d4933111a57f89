"""`bench`: accuracy parity and FPS of backends against the PyTorch reference; `demo`: the whole
pipeline on the shipped model."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.markup import escape

from tomp_deploy.cli.app import command, console
from tomp_deploy.cli.options import CudaGraphs, Device, Precision, Threads, backend_options, progress_bar
from tomp_deploy.cli.render import print_bench
from tomp_deploy.pipeline.model_forms import ModelForms
from tomp_deploy.runtime.backends.options import BackendOptions
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.files import ensure_folder

DEMO_SEED = 7
DEMO_FRAMES = 60
LONG_TERM_DEMO_FRAMES = 240
"""Frames of `demo --long-term`'s video: long enough for its target to leave the view and come back."""


class TimeSplit:
    """Where a command's time went: wall seconds per named step, in the order the steps started."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._step: str | None = None
        self._since = 0.0

    def start(self, step: str) -> None:
        self.stop()
        self._step, self._since = step, time.perf_counter()

    def stop(self) -> None:
        if self._step is not None:
            self.seconds[self._step] = self.seconds.get(self._step, 0.0) + time.perf_counter() - self._since
            self._step = None

    def line(self) -> str:
        parts = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in self.seconds.items())
        return f"time: {sum(self.seconds.values()):.0f} s ({parts})"


def _bench_sequences(dataset_root: str, format: str, sequences: int | None, out: Path, frames: int, seed: int):
    from tomp_deploy.evaluation.datasets import open_dataset

    if dataset_root == "synthetic":
        from tomp_deploy.evaluation.synth import generate_benchmark

        root = out / ".work" / "synthetic"
        if not (root / "attributes.json").is_file():
            with console.status("writing the synthetic benchmark"):
                generate_benchmark(root, sequences or 3, frames, seed)
        loaded = open_dataset(root, "lasot")
    else:
        loaded = open_dataset(dataset_root, format)
    if sequences is not None:
        if sequences < 1:
            raise ToMPError("--sequences must be at least 1.")
        loaded = loaded[:sequences]
    return loaded


def _run_bench(
    forms: ModelForms,
    backend_names: list[str],
    sequences,
    out: Path,
    options: BackendOptions,
    warmup: int,
    long_term: bool = False,
    on_status=lambda text: None,
) -> dict:
    from tomp_deploy.checks.bench import BenchPlan, bench

    total = sum(len(s.frames) - 1 for s in sequences)
    with progress_bar() as progress:
        task = progress.add_task("bench", total=total)

        def status(text: str) -> None:
            on_status(text)
            progress.update(task, description=text, completed=0 if text.endswith("tracking") else None)

        command_line = " ".join(["tomp-deploy", *sys.argv[1:]])
        plan = BenchPlan(forms.name, backend_names, sequences, options, warmup, command_line, long_term)
        report = bench(
            plan,
            lambda backend: forms.for_backend(backend, status),
            out,
            progress=status,
            on_frame=lambda: progress.advance(task),
        )
    ran = sum(row["status"] == "ok" for row in report["backends"].values())
    console.print(f"bench: {ran} of {len(report['backends'])} backends ran")
    print_bench(report)
    for kind in ("json", "md", "png"):
        console.print(f"{kind}: {out / f'bench.{kind}'}")
    return report


def cpu_backends() -> list[str]:
    """The CPU backends installed here: torch, onnxruntime, and openvino with its extra."""
    import importlib.util

    return ["torch", "onnxruntime"] + (["openvino"] if importlib.util.find_spec("openvino") is not None else [])


@command("bench")
def bench_command(
    model: Annotated[Path, typer.Option(help="Checkpoint, export or engine folder, or 'tiny'.")],
    backends: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated backends; torch (fp32) is always the reference. Default: torch,onnxruntime, and "
            "openvino where installed."
        ),
    ] = None,
    dataset_root: Annotated[str, typer.Option(help="Dataset folder, or 'synthetic' (written into --out).")] = "synthetic",
    format: Annotated[str, typer.Option(help="Dataset layout (see 'score').")] = "lasot",
    sequences: Annotated[int | None, typer.Option(help="Use the first N sequences.")] = None,
    warmup: Annotated[int, typer.Option(help="Frames per backend left out of the timing.")] = 5,
    device: Device = "cpu",
    threads: Threads = None,
    precision: Precision = None,
    cuda_graphs: CudaGraphs = None,
    out: Annotated[Path, typer.Option(help="Folder for bench.json, bench.md and bench.png.")] = Path("bench"),
    long_term: Annotated[
        bool,
        typer.Option(
            "--long-term",
            help="Also run every backend in long-term mode (a second row each): its FPS while tracking and the "
            "number and time of its whole-frame searches.",
        ),
    ] = False,
) -> None:
    """Accuracy parity and FPS of every backend against the PyTorch reference, side by side."""
    from tomp_deploy.runtime.shipped import resolve_model

    names = [b.strip() for b in backends.split(",") if b.strip()] if backends else cpu_backends()
    ensure_folder(out, "--out")
    loaded = _bench_sequences(dataset_root, format, sequences, out, 60, 0)
    options = backend_options(device, threads, precision, cuda_graphs)
    _run_bench(ModelForms.from_path(resolve_model(model), out / ".work"), names, loaded, out, options, warmup, long_term)


@command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for everything the demo writes.")] = Path("demo-output"),
    model: Annotated[Path, typer.Option(help="Checkpoint to use instead of the shipped tiny model.")] = Path("tiny"),
    sequences: Annotated[int, typer.Option(help="Filmed sequences to write and benchmark.")] = 3,
    frames: Annotated[int, typer.Option(help="Frames per sequence.")] = DEMO_FRAMES,
    long_term: Annotated[
        bool,
        typer.Option(
            "--long-term",
            help="Long-term mode: the video tracks a held-out long-term sequence (the target leaves and comes back) "
            "in long-term mode, and the benchmark adds a long-term row per backend.",
        ),
    ] = False,
) -> None:
    """The whole pipeline on the embedded default: objects in real photographs filmed by a moving camera,
    the shipped tiny model, ONNX export, engines where TensorRT exists, a tracked video, and a benchmark
    of every available backend."""
    import torch

    from tomp_deploy.evaluation.datasets import open_dataset
    from tomp_deploy.evaluation.host_facts import cpu_name
    from tomp_deploy.evaluation.synth import DEMO_FAMILY, LONG_TERM_HELD_OUT_FAMILY, generate_benchmark
    from tomp_deploy.runtime.backends import open_backend
    from tomp_deploy.runtime.gpu import installed_engine_libraries
    from tomp_deploy.runtime.shipped import resolve_model

    ensure_folder(out, "--out")
    split = TimeSplit()
    forms = ModelForms(checkpoint=resolve_model(model), work=out)
    with console.status("writing the demo sequences") as status:
        data = out / "sequences"
        split.start("sequences")
        generate_benchmark(
            data,
            sequences,
            frames,
            seed=DEMO_SEED,
            family=DEMO_FAMILY,
            progress=lambda name: status.update(f"writing sequence {name}"),
        )
        if long_term:
            generate_benchmark(out / "long-term-sequence", 1, LONG_TERM_DEMO_FRAMES, DEMO_SEED, LONG_TERM_HELD_OUT_FAMILY)
        split.start("ONNX exports")
        forms.make_exports(["fp32"] + (["fp16"] if installed_engine_libraries() else []), status.update)
        forms.export_folder(status.update)
    console.print(f"[green]✓[/] sequences: {data}")
    console.print(f"[green]✓[/] ONNX export: {forms.export}")
    backends = cpu_backends()
    if torch.cuda.is_available():
        backends.append("torch-cuda")
    try:
        split.start("engine builds")
        with console.status("building engines") as status:
            forms.engine_folder(status.update)
        backends.append("tensorrt")
        console.print(f"[green]✓[/] engines built ({forms.engines_built}): {forms.engines}")
    except ToMPError as exc:
        console.print(f"[yellow]-[/] engines: not built ({escape(str(exc))})")

    split.start("tracked video")
    sequence = open_dataset(out / "long-term-sequence" if long_term else data, "lasot")[0]
    video_path = out / "tracked.mp4"
    with console.status(f"tracking {sequence.name} into {video_path}"), open_backend("onnxruntime", forms.export) as backend:
        params = dataclasses.replace(backend.tracker_params, long_term=True) if long_term else None
        boxes = write_tracked_video(backend, sequence, video_path, params)
    np.savetxt(out / f"{sequence.name}.txt", boxes, fmt="%.2f", delimiter=",")
    console.print(f"[green]✓[/] tracked video: {video_path} (white: ground truth)")

    _run_bench(
        forms,
        backends,
        open_dataset(data, "lasot"),
        out,
        BackendOptions(),
        5,
        long_term,
        on_status=lambda text: split.start(f"bench {text.split(':')[0]}"),
    )
    split.stop()
    console.print(f"[bold]done[/]: video {video_path}, benchmark {out / 'bench.json'}, {out / 'bench.md'}, {out / 'bench.png'}")
    console.print(f"{split.line()}; CPU {cpu_name()}, {os.cpu_count()} cores", highlight=False, soft_wrap=True)


def write_tracked_video(backend, sequence, video_path: Path, params=None) -> np.ndarray:
    """Tracks `sequence` (with tracker parameters `params`, None: the model's) into an MP4 with the boxes,
    their confidence, the ground truth and the tracker's mean frame rate so far (tracker time only: reading
    and video writing are not counted); returns the boxes."""
    from tomp_deploy.cli.outputs import VideoWriter, draw_overlay
    from tomp_deploy.runtime.driver import track_frames
    from tomp_deploy.runtime.sources import FrameSource

    video, boxes, tracked_seconds = None, [], 0.0
    frames_in = (frame.image for frame in FrameSource.of_images(sequence.frames))
    try:
        for step in track_frames(backend, frames_in, [sequence.init_box], params):
            if video is None:
                video = VideoWriter(video_path, (step.image.shape[1], step.image.shape[0]))
            tracked_seconds += step.seconds if step.index else 0.0
            fps = step.index / max(tracked_seconds, 1e-9) if step.index else None
            present = [r.present for r in step.results] or None
            video.write(draw_overlay(step.image, step.boxes, step.confidences, fps, sequence.ground_truth[step.index], present))
            boxes.append(step.boxes[0])
    finally:
        if video is not None:
            video.close()
    return np.array(boxes)
