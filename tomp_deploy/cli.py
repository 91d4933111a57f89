"""The `tomp-deploy` command line."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tomp_deploy.errors import ToMPError

app = typer.Typer(
    name="tomp-deploy",
    help="ToMP visual object tracking: PyTorch checkpoints, ONNX graphs, TensorRT engines, tracking.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)
console = Console()
error_console = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        from tomp_deploy import __version__

        console.print(f"tomp-deploy {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """ToMP visual object tracking: PyTorch checkpoints, ONNX graphs, TensorRT engines, tracking."""


def user_errors(command):
    """Prints a `ToMPError` as one line on stderr and exits with code 2, without a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except ToMPError as exc:
            error_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper


@app.command()
@user_errors
def inspect(
    checkpoint: Annotated[Path, typer.Argument(help="A tomp-deploy or reference (.pth.tar) checkpoint, or 'tiny'.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the same facts as JSON.")] = False,
) -> None:
    """Show a checkpoint's architecture, parameter count and provenance."""
    from tomp_deploy.model import load_model
    from tomp_deploy.models import resolve_model

    checkpoint = resolve_model(checkpoint)
    model = load_model(checkpoint)
    info = model.checkpoint_info
    config = model.config
    report = {
        "checkpoint": str(checkpoint),
        "format": info.format,
        "sha256": info.sha256,
        "config": config.to_dict(),
        "search_size": config.search_size,
        "parameters": model.num_parameters(),
        "source": info.meta,
        "dropped_unused_weights": len(info.dropped_keys),
    }
    if as_json:
        print(json.dumps(report, indent=2))
        return
    table = Table(title=f"ToMP checkpoint {checkpoint.name}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    rows = {
        "format": info.format,
        "backbone": f"{config.backbone} (layer3, {config.backbone_channels} channels)",
        "search / feature size": f"{config.search_size} px / {config.feature_size}x{config.feature_size} "
        f"(stride {config.feature_stride})",
        "feature dim / heads": f"{config.feature_dim} / {config.num_heads}",
        "encoder / decoder layers": f"{config.num_encoder_layers} / {config.num_decoder_layers}",
        "feed-forward dim": str(config.dim_feedforward),
        "test-frame encoding": "yes" if config.use_test_frame_encoding else "no",
        "memory frames": str(config.memory_size),
        "parameters": f"{report['parameters']:,}",
        "sha256": info.sha256,
    }
    rows.update({f"source: {k}": str(v) for k, v in info.meta.items() if v is not None})
    if info.dropped_keys:
        rows["unused weights dropped"] = f"{len(info.dropped_keys)} tensors of backbone layer4/fc (ToMP reads layer3)"
    for key, value in rows.items():
        table.add_row(key, value)
    console.print(table)


def _output_paths(output: Path, count: int) -> list[Path]:
    if count == 1:
        return [output]
    return [output.with_name(f"{output.stem}_{k + 1}{output.suffix}") for k in range(count)]


BACKEND_OPTIONS = {"threads": ("onnxruntime",), "precision": ("torch-cuda",), "cuda_graphs": ("torch-cuda", "tensorrt")}


def _backend_options(backend: str, **given) -> dict:
    """The options given on the command line, each checked to apply to the chosen backend."""
    options = {}
    for name, value in given.items():
        if value is None:
            continue
        if backend not in BACKEND_OPTIONS[name]:
            flag = "--" + name.replace("_", "-")
            raise ToMPError(f"{flag} applies to the {' and '.join(BACKEND_OPTIONS[name])} backend, not {backend}.")
        options[name] = value
    return options


@app.command()
@user_errors
def track(
    source: Annotated[str, typer.Argument(help="Video file, folder of images (sorted by name) or camera index.")],
    model: Annotated[Path, typer.Option(help="Checkpoint (or export/engine folder for those backends), or 'tiny'.")],
    backend: Annotated[str, typer.Option(help="Inference backend.")] = "torch",
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    init_box: Annotated[
        list[str] | None,
        typer.Option(help="Initial box x,y,w,h in pixels; repeat for several targets. Optional for a "
                          "folder with groundtruth.txt beside or above its images."),
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Write x,y,w,h per frame (first line: the initial box).")] = None,
    video_out: Annotated[Path | None, typer.Option(help="Write an MP4 with the boxes, scores and frame rate.")] = None,
    show: Annotated[bool, typer.Option(help="Show the tracking in a window (q quits).")] = False,
    threads: Annotated[int | None, typer.Option(help="Intra-op threads (onnxruntime backend).")] = None,
    precision: Annotated[str | None, typer.Option(help="fp16, bf16 or fp32 (torch-cuda backend; default fp16).")] = None,
    cuda_graphs: Annotated[bool | None, typer.Option(
        help="Replay the per-frame calls as CUDA graphs (torch-cuda: on by default; tensorrt: off).")] = None,
) -> None:
    """Track one or more targets through a video, an image folder or a camera."""
    import time

    import numpy as np
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tomp_deploy.backends import open_backend
    from tomp_deploy.sources import (
        FrameSource,
        ResultWriter,
        VideoWriter,
        draw_overlay,
        find_groundtruth,
        first_groundtruth_box,
        parse_box,
    )
    from tomp_deploy.tracker import MultiTargetTracker

    frames = FrameSource(source)
    if init_box:
        boxes = [parse_box(text, "--init-box") for text in init_box]
    else:
        groundtruth = find_groundtruth(frames.folder) if frames.folder else None
        if groundtruth is None:
            raise ToMPError("No initial box: pass --init-box x,y,w,h (a folder with groundtruth.txt needs none).")
        boxes = [first_groundtruth_box(groundtruth)]
    if show:
        _check_gui()

    from tomp_deploy.models import resolve_model

    options = _backend_options(backend, threads=threads, precision=precision, cuda_graphs=cuda_graphs)
    tracker = MultiTargetTracker(open_backend(backend, resolve_model(model), device=device, **options))
    writers = [ResultWriter(p) for p in _output_paths(output, len(boxes))] if output else []
    video = None
    written = 0
    progress = Progress(
        TextColumn("[bold]tracking[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[fps]}"),
        TimeElapsedColumn(), console=console, transient=False,
    )
    stop_reason = None
    try:
        with progress:
            task = progress.add_task("track", total=len(frames) or None, fps="")
            recent: list[float] = []
            for frame in frames:
                started = time.perf_counter()
                if frame.index == 0:
                    tracker.initialize(frame.image, boxes)
                    current, scores = [np.asarray(b) for b in boxes], [1.0] * len(boxes)
                else:
                    results = tracker.track(frame.image)
                    current, scores = [r.box for r in results], [r.score for r in results]
                    recent = (recent + [time.perf_counter() - started])[-30:]
                fps = len(recent) / sum(recent) if recent else None
                for writer, box in zip(writers, current):
                    writer.write(box)
                written = frame.index + 1
                if video_out or show:
                    canvas = draw_overlay(frame.image, current, scores, fps)
                    if video_out:
                        if video is None:
                            video = VideoWriter(video_out, (frame.image.shape[1], frame.image.shape[0]))
                        video.write(canvas)
                    if show:
                        import cv2

                        cv2.imshow("tomp-deploy", canvas)
                        if cv2.waitKey(1) & 0xFF == ord("q"):
                            stop_reason = "stopped by the user"
                            break
                progress.update(task, advance=1, fps=f"{fps:.1f} FPS" if fps else "")
        stop_reason = stop_reason or frames.stopped_early
    except ToMPError as exc:
        if written == 0:
            raise
        raise ToMPError(
            f"{exc}\nStopped after {written} frames; "
            + (f"their boxes are in {', '.join(str(w.path) for w in writers)}." if writers else "no --output was given.")
        ) from None
    finally:
        for writer in writers:
            writer.close()
        if video is not None:
            video.close()
    if stop_reason:
        console.print(f"[yellow]note:[/] {stop_reason}; {written} frames tracked.")
    for writer in writers:
        console.print(f"boxes: {writer.path} ({written} lines)")
    if video is not None:
        console.print(f"video: {video.path}")


def _check_gui() -> None:
    import cv2

    try:
        cv2.namedWindow("tomp-deploy")
    except cv2.error:
        raise ToMPError(
            "--show needs a display and an OpenCV build with GUI support (opencv-python, not the headless "
            "build). Use --video-out instead."
        ) from None


@app.command("export")
@user_errors
def export_command(
    model: Annotated[Path, typer.Argument(help="Checkpoint to export (tomp-deploy or reference format), or 'tiny'.")],
    out: Annotated[Path, typer.Option(help="Folder for backbone/predictor/head.onnx and model.json.")],
    opset: Annotated[int, typer.Option(help="ONNX opset (18..20; TensorRT 10.0 parses up to 20).")] = 18,
    force: Annotated[bool, typer.Option(help="Overwrite a non-empty output folder.")] = False,
    check_fp16: Annotated[bool, typer.Option("--check-fp16", help="Run FP16 copies and report their error.")] = False,
    device: Annotated[str, typer.Option(help="Where --check-fp16 runs: cpu (emulated) or cuda (native).")] = "cpu",
) -> None:
    """Export a checkpoint as the split ONNX graphs and check them for TensorRT 10."""
    from export.onnx_export import export_model
    from tomp_deploy.exported import read_export
    from tomp_deploy.model import load_model
    from tomp_deploy.models import resolve_model

    with console.status("loading the checkpoint") as status:
        network = load_model(resolve_model(model))
        reports = export_model(network, out, opset=opset, force=force, progress=lambda text: status.update(text))
    table = Table(title=f"ONNX export of {model.name} (opset {opset})")
    for column in ("graph", "size", "ops", "checks"):
        table.add_column(column)
    for report in reports:
        checks = "  ".join(f"{k}: {v}" for k, v in report.checks.items() if k != "opset")
        table.add_row(report.graph, f"{report.size_bytes / 1e6:.1f} MB", str(report.op_count), checks)
    console.print(table)
    console.print(f"wrote {out}/{{backbone,predictor,head}}.onnx and model.json")
    if check_fp16:
        from export.fp16 import check_fp16 as run_check

        with console.status("running FP16 copies"):
            mode, errors = run_check(read_export(out), device)
        table = Table(title=f"FP16 vs FP32: {mode}")
        for column in ("graph", "output", "max abs error", "max rel error", "finite"):
            table.add_column(column)
        for e in errors:
            table.add_row(e.graph, e.output, f"{e.max_abs:.2e}", f"{e.max_rel:.2e}", "yes" if e.finite else "[red]NO[/]")
        console.print(table)


@app.command()
@user_errors
def parity(
    a: Annotated[str, typer.Argument(help="Reference, as BACKEND:PATH (e.g. torch:model.pth.tar).")],
    b: Annotated[str, typer.Argument(help="Candidate, as BACKEND:PATH (e.g. onnxruntime:exports/model).")],
    sequence: Annotated[Path, typer.Option(help="Image folder with groundtruth.txt beside or above it.")],
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    rtol: Annotated[float, typer.Option(help="Largest relative error allowed on contract outputs.")] = 1e-4,
    min_iou: Annotated[float, typer.Option(help="Smallest IoU allowed between the two trackers' boxes.")] = 0.999,
) -> None:
    """Compare two backends on every contract output and over a whole sequence."""
    import numpy as np

    from tomp_deploy.backends import open_backend, parse_backend_spec
    from tomp_deploy.parity import RecordingBackend, compare_contract, compare_sequences, track_sequence
    from tomp_deploy.sources import FrameSource, find_groundtruth, first_groundtruth_box

    frames = FrameSource(sequence)
    groundtruth = find_groundtruth(frames.folder) if frames.folder else None
    if groundtruth is None:
        raise ToMPError(f"--sequence {sequence} must be an image folder with groundtruth.txt beside or above it.")
    init_box = first_groundtruth_box(groundtruth)
    from tomp_deploy.models import resolve_model

    backends = []
    for spec in (a, b):
        name, path = parse_backend_spec(spec)
        backends.append(open_backend(name, resolve_model(path), device=device))
    if backends[0].config != backends[1].config:
        raise ToMPError(f"{a} and {b} are different models (their configs differ); compare exports of one checkpoint.")
    images = [frame.image for frame in frames]
    recorder = RecordingBackend(backends[0])
    with console.status(f"tracking {len(images)} frames with {a}"):
        boxes_a = track_sequence(recorder, images, init_box)
    with console.status(f"tracking {len(images)} frames with {b}"):
        boxes_b = track_sequence(backends[1], images, init_box)
    recorded = {graph: calls[:3] for graph, calls in recorder.calls.items()}
    outputs = compare_contract(backends[0], backends[1], recorded)
    tracking = compare_sequences(boxes_a, boxes_b)

    table = Table(title=f"Contract outputs: {b} vs {a}")
    for column in ("graph", "output", "max abs error", "max rel error", f"<= {rtol:g}"):
        table.add_column(column)
    for row in outputs:
        table.add_row(row.graph, row.output, f"{row.max_abs:.2e}", f"{row.max_rel:.2e}",
                      "yes" if row.max_rel <= rtol else "[red]no[/]")
    console.print(table)
    worst = tracking.worst_frame
    table = Table(title=f"Tracking over {len(images)} frames of {sequence}")
    for column in ("", "mean", "min / max", "worst frame"):
        table.add_column(column)
    table.add_row("IoU", f"{tracking.ious.mean():.5f}", f"{tracking.ious.min():.5f}", str(worst))
    table.add_row("centre error (px)", f"{tracking.centre_errors.mean():.3f}",
                  f"{tracking.centre_errors.max():.3f}", str(int(np.argmax(tracking.centre_errors))))
    console.print(table)
    within = all(r.max_rel <= rtol for r in outputs) and tracking.ious.min() >= min_iou
    console.print("[green]within tolerance[/]" if within else
                  f"[red]outside tolerance[/] (rel. error <= {rtol:g} per output, IoU >= {min_iou:g} per frame)")
    if not within:
        raise typer.Exit(code=1)


@app.command()
@user_errors
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to write the benchmark into (LaSOT layout).")],
    sequences: Annotated[int, typer.Option(help="Number of sequences.")] = 10,
    frames: Annotated[int, typer.Option(help="Frames per sequence.")] = 100,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed writes the same benchmark.")] = 0,
) -> None:
    """Write a synthetic benchmark: textured targets with motion, scale change, occlusion, distractors."""
    from rich.progress import Progress

    from tomp_deploy.synth import generate_benchmark

    if sequences < 1 or frames < 2:
        raise ToMPError("--sequences must be at least 1 and --frames at least 2.")
    with Progress(console=console) as progress:
        task = progress.add_task("writing sequences", total=sequences)
        generate_benchmark(out, sequences, frames, seed, progress=lambda name: progress.advance(task))
    console.print(f"wrote {sequences} sequences of {frames} frames to {out} (LaSOT layout, --format lasot)")


def _print_score(score, title: str) -> None:
    table = Table(title=title)
    for column in ("", "AUC", "precision", "norm. precision", "sequences"):
        table.add_column(column, justify="right")
    overall = score.to_json()
    row = overall["overall"]
    table.add_row("overall", f"{row['auc']:.1f}", f"{row['precision']:.1f}", f"{row['norm_precision']:.1f}",
                  str(row["sequences"]))
    for attribute, values in overall.get("attributes", {}).items():
        table.add_row(attribute, f"{values['auc']:.1f}", f"{values['precision']:.1f}",
                      f"{values['norm_precision']:.1f}", str(values["sequences"]))
    console.print(table)


def _score_outputs(scores: dict, json_path: Path | None, plot_path: Path | None, title: str) -> None:
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        payload = next(iter(scores.values())).to_json() if len(scores) == 1 else {
            name: score.to_json() for name, score in scores.items()}
        json_path.write_text(json.dumps(payload, indent=2))
        console.print(f"scores: {json_path}")
    if plot_path:
        from tomp_deploy.scoring import plot_scores

        console.print(f"plot: {plot_scores(scores, plot_path, title)}")


@app.command()
@user_errors
def score(
    dataset_root: Annotated[Path, typer.Option(help="Dataset folder.")],
    results: Annotated[list[Path], typer.Option(help="Results folder (one x,y,w,h file per sequence); repeat to "
                                                     "compare trackers in one plot.")],
    format: Annotated[str, typer.Option(help="Dataset layout: lasot, lasot_extension, got10k, trackingnet, otb, "
                                             "nfs, uav123, vot, folder.")] = "lasot",
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the scores as JSON (percent).")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write success and precision plots (PNG).")] = None,
    missing: Annotated[str, typer.Option(help="A missing results file: 'error' or 'zero' (count as failure).")] = "error",
) -> None:
    """Score result files: success AUC, precision, normalised precision, per attribute, with plots."""
    from tomp_deploy.datasets import open_dataset
    from tomp_deploy.scoring import score_results

    sequences = open_dataset(dataset_root, format)
    scores = {folder.name: score_results(sequences, folder, missing) for folder in results}
    for name, value in scores.items():
        if value.missing:
            console.print(f"[yellow]note:[/] {len(value.missing)} missing sequences of {name} counted as zero")
        _print_score(value, f"{name} on {dataset_root} ({format})")
    _score_outputs(scores, json_out, plot, dataset_root.name)


@app.command("eval")
@user_errors
def eval_command(
    dataset_root: Annotated[Path, typer.Option(help="Dataset folder.")],
    model: Annotated[Path, typer.Option(help="Checkpoint or export folder, as the backend takes it, or 'tiny'.")],
    format: Annotated[str, typer.Option(help="Dataset layout (see 'score').")] = "lasot",
    backend: Annotated[str, typer.Option(help="Inference backend.")] = "torch",
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    workers: Annotated[int, typer.Option(help="Sequences tracked in parallel processes.")] = 1,
    results: Annotated[Path | None, typer.Option(help="Results folder (default results/<model>_<backend>).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the scores as JSON.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write success and precision plots (PNG).")] = None,
) -> None:
    """Track every sequence of a dataset (resuming finished ones), then score the results."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tomp_deploy.datasets import open_dataset
    from tomp_deploy.evaluation import evaluate, result_is_complete
    from tomp_deploy.models import resolve_model
    from tomp_deploy.scoring import score_results

    model = resolve_model(model)
    sequences = open_dataset(dataset_root, format)
    results = results or Path("results") / f"{model.stem}_{backend}"
    done = sum(result_is_complete(results / f"{s.name}.txt", s) for s in sequences)
    if done:
        console.print(f"resuming: {done} of {len(sequences)} sequences already have results in {results}")
    remaining_frames = sum(len(s.frames) for s in sequences if not result_is_complete(results / f"{s.name}.txt", s))
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        frames_task = progress.add_task("frames", total=remaining_frames if workers <= 1 else None, visible=workers <= 1)
        sequence_task = progress.add_task("sequences", total=len(sequences), completed=done)
        evaluate(sequences, backend, str(model), results, device, workers,
                 on_frame=lambda: progress.advance(frames_task),
                 on_sequence=lambda name: progress.advance(sequence_task))
    value = score_results(sequences, results)
    _print_score(value, f"{model.name} ({backend}) on {dataset_root}")
    _score_outputs({f"{model.stem} ({backend})": value}, json_out, plot, dataset_root.name)


@app.command()
@user_errors
def train(
    out: Annotated[Path, typer.Option(help="Run folder: checkpoints, latest.pt, metrics.jsonl.")],
    preset: Annotated[str, typer.Option(help="Training preset: tomp50, tomp101 or tiny.")] = "tomp50",
    data: Annotated[str, typer.Option(help="Dataset roots 'lasot=/data/lasot,got10k=...,trackingnet=...,coco=...' "
                                           "or 'synthetic'.")] = "synthetic",
    epochs: Annotated[int | None, typer.Option(help="Epochs (default: the preset's).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/latest.pt with its optimiser and epoch.")] = False,
    init: Annotated[Path | None, typer.Option(help="Start from this checkpoint's weights (fine-tuning; "
                                                    "fresh optimiser and epochs). A name such as 'tiny' works too.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a preset setting, key=value.")] = None,
    no_pretrained: Annotated[bool, typer.Option("--no-pretrained", help="No ImageNet backbone weights.")] = False,
    device: Annotated[str, typer.Option(help="cpu or cuda (under torchrun: one GPU per process).")] = "cpu",
    tensorboard: Annotated[bool, typer.Option(help="Also log to OUT/tensorboard.")] = False,
) -> None:
    """Train ToMP with the paper's recipe (or a preset's), with per-epoch checkpoints."""
    import dataclasses

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tomp_deploy.models import resolve_model
    from train.config import apply_overrides
    from train.config import preset as train_preset
    from train.data import FrameSampler, load_sources, parse_data_spec
    from train.trainer import Trainer

    config = apply_overrides(train_preset(preset), set_ or [])
    if epochs is not None:
        config = dataclasses.replace(config, epochs=epochs)
    if no_pretrained:
        config = dataclasses.replace(config, pretrained=False)
    spec = parse_data_spec(data)
    if "synthetic" in spec and "synthetic" not in config.dataset_weights:
        config = dataclasses.replace(config, dataset_weights={"synthetic": 1.0})
    with console.status("reading the training data") as status:
        sources = load_sources(spec, config, out, progress=lambda name: status.update(f"writing synthetic {name}"))
    sampler = FrameSampler(sources, config.dataset_weights, config)
    columns = (TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]:.3f} (clf {task.fields[clf]:.4f}, giou {task.fields[giou]:.3f})"),
               TextColumn("lr {task.fields[lr]:.1e}"), TextColumn("{task.fields[rate]:.1f} samples/s"),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("train", total=None, epoch=0, loss=0.0, clf=0.0, giou=0.0, lr=0.0, rate=0.0)

        def report(epoch, step, steps, losses, rate, lr):
            progress.update(task, completed=step, total=steps, epoch=f"{epoch + 1}/{config.epochs}",
                            loss=losses["loss"], clf=losses["clf"], giou=losses["giou"], lr=lr, rate=rate)

        trainer = Trainer(config, sampler, out, device=device, resume=resume,
                          init=resolve_model(str(init)) if init is not None else None,
                          tensorboard=tensorboard, progress=report)
        if trainer.start_epoch >= config.epochs:
            raise ToMPError(f"{out}/latest.pt already finished epoch {trainer.start_epoch} of {config.epochs}; "
                            "raise --epochs to continue.")
        history = trainer.fit(config.epochs)
    for metrics in history:
        console.print(f"epoch {metrics['epoch']}: loss {metrics['loss']:.4f}, mean IoU {metrics['iou']:.3f}, "
                      f"{metrics['samples_per_s']:.1f} samples/s")
    console.print(f"checkpoint: {out / 'latest.pt'} (load it with load_model, export it with tomp-deploy export)")


def _bench_sequences(dataset_root: str, format: str, sequences: int | None, out: Path, frames: int, seed: int):
    from tomp_deploy.datasets import open_dataset

    if dataset_root == "synthetic":
        from tomp_deploy.synth import generate_benchmark

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


def _print_bench(report: dict, out: Path) -> None:
    from tomp_deploy.tracker import STAGES

    table = Table(title=f"bench: {Path(report['model']).name} on {len(report['sequences'])} sequences "
                        f"({report['machine']['device']}), reference {report['reference']}")
    for column in ("backend", "status", "AUC", "ΔAUC", "prec.", "norm. prec.", "IoU ref mean/min", "score err",
                   "FPS", "ms " + "/".join(STAGES)):
        table.add_column(column)
    for name, entry in report["backends"].items():
        if entry["status"] != "ok":
            table.add_row(name, f"[yellow]{entry['status']}[/]", entry["error"][:60], *[""] * 7)
            continue
        delta = entry.get("delta_auc")
        score = entry.get("score_max_rel_error")
        table.add_row(
            name, "ok", f"{entry['auc']:.1f}", "" if delta is None else f"{delta:+.2f}", f"{entry['precision']:.1f}",
            f"{entry['norm_precision']:.1f}", f"{entry.get('iou_mean', 1):.4f}/{entry.get('iou_min', 1):.4f}",
            "" if score is None else f"{score:.1e}", f"{entry['fps']:.1f} ({entry['fps_p10']:.1f}-{entry['fps_p90']:.1f})",
            "/".join(f"{entry['stage_ms'][s]:.1f}" for s in STAGES))
    console.print(table)
    for kind in ("json", "md", "png"):
        console.print(f"{kind}: {out / f'bench.{kind}'}")


def _run_bench(model, backend_names: list[str], sequences, out: Path, device: str, warmup: int, command: str):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tomp_deploy.bench import bench as run

    total = sum(len(s.frames) - 1 for s in sequences)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("bench", total=total)

        def status(text: str) -> None:
            progress.update(task, description=text, completed=0 if text.endswith("tracking") else None)

        return run(model, backend_names, sequences, out, device, warmup, progress=status,
                   on_frame=lambda: progress.advance(task), command=command)


@app.command("bench")
@user_errors
def bench_command(
    model: Annotated[Path, typer.Option(help="Checkpoint or export folder, or 'tiny'.")],
    backends: Annotated[str, typer.Option(help="Comma-separated backends; torch (fp32) is always the reference.")]
        = "torch,onnxruntime",
    dataset_root: Annotated[str, typer.Option(help="Dataset folder, or 'synthetic' (written into --out).")] = "synthetic",
    format: Annotated[str, typer.Option(help="Dataset layout (see 'score').")] = "lasot",
    sequences: Annotated[int | None, typer.Option(help="Use the first N sequences.")] = None,
    warmup: Annotated[int, typer.Option(help="Frames per backend left out of the timing.")] = 5,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    out: Annotated[Path, typer.Option(help="Folder for bench.json, bench.md and bench.png.")] = Path("bench"),
) -> None:
    """Accuracy parity and FPS of every backend against the PyTorch reference, side by side."""
    import sys

    from tomp_deploy.models import resolve_model

    names = [b.strip() for b in backends.split(",") if b.strip()]
    loaded = _bench_sequences(dataset_root, format, sequences, out, 60, 0)
    report = _run_bench(resolve_model(model), names, loaded, out, device, warmup, " ".join(["tomp-deploy", *sys.argv[1:]]))
    _print_bench(report, out)


@app.command()
@user_errors
def demo(
    out: Annotated[Path, typer.Option(help="Folder for everything the demo writes.")] = Path("demo-output"),
    model: Annotated[Path, typer.Option(help="Checkpoint to use instead of the shipped tiny model.")] = Path("tiny"),
    sequences: Annotated[int, typer.Option(help="Synthetic sequences to write and benchmark.")] = 3,
    frames: Annotated[int, typer.Option(help="Frames per synthetic sequence.")] = 60,
) -> None:
    """The whole pipeline on the embedded default: synthetic data, shipped tiny model, ONNX export,
    engines where TensorRT exists, a tracked video, and a benchmark of every available backend."""
    import sys

    import torch

    from engines.builder import build_engines
    from export.onnx_export import export_model
    from tomp_deploy.backends import open_backend
    from tomp_deploy.bench import ModelFiles, read_rgb
    from tomp_deploy.datasets import open_dataset
    from tomp_deploy.model import load_model
    from tomp_deploy.models import resolve_model
    from tomp_deploy.sources import VideoWriter, draw_overlay
    from tomp_deploy.synth import generate_benchmark
    from tomp_deploy.tracker import ToMPTracker

    out.mkdir(parents=True, exist_ok=True)
    checkpoint = resolve_model(model)
    with console.status("writing a synthetic benchmark") as status:
        data = out / "synthetic"
        generate_benchmark(data, sequences, frames, seed=7,
                           progress=lambda name: status.update(f"writing synthetic sequence {name}"))
        status.update(f"exporting {checkpoint.name} to ONNX")
        export_model(load_model(checkpoint), out / "export", force=True)
    console.print(f"[green]✓[/] synthetic benchmark: {data}")
    console.print(f"[green]✓[/] ONNX export: {out / 'export'}")
    files = ModelFiles(checkpoint=checkpoint, export=out / "export")
    backends = ["torch", "onnxruntime"]
    if torch.cuda.is_available():
        backends.append("torch-cuda")
    try:
        with console.status("building TensorRT engines") as status:
            build_engines(out / "export", out / "engines", report=status.update)
        files.engines = out / "engines"
        backends.append("tensorrt")
        console.print(f"[green]✓[/] TensorRT engines: {files.engines}")
    except ToMPError as exc:
        console.print(f"[yellow]-[/] TensorRT engines: skipped ({escape(str(exc))})")

    sequence = open_dataset(data, "lasot")[0]
    tracker = ToMPTracker(open_backend("onnxruntime", out / "export"))
    video_path = out / "tracked.mp4"
    with console.status(f"tracking {sequence.name} into {video_path}"):
        first = read_rgb(sequence.frames[0])
        video = VideoWriter(video_path, (first.shape[1], first.shape[0]))
        tracker.initialize(first, sequence.init_box)
        video.write(draw_overlay(first, [sequence.init_box], [1.0], None))
        for path in sequence.frames[1:]:
            frame = read_rgb(path)
            result = tracker.track(frame)
            video.write(draw_overlay(frame, [result.box], [result.score], 1 / max(sum(result.times.values()), 1e-9)))
        video.close()
    console.print(f"[green]✓[/] tracked video: {video_path}")

    report = _run_bench(files, backends, open_dataset(data, "lasot"), out, "cpu", 5,
                        " ".join(["tomp-deploy", *sys.argv[1:]]))
    _print_bench(report, out)
    console.print(f"[bold]done[/]: video {video_path}, benchmark {out / 'bench.json'}, {out / 'bench.md'}, "
                  f"{out / 'bench.png'}")


@app.command()
@user_errors
def build(
    export_dir: Annotated[Path, typer.Argument(help="Export folder (tomp-deploy export).")],
    out: Annotated[Path, typer.Option(help="Engine folder to write.")],
    precision: Annotated[str, typer.Option(help="fp16 (normalisations and softmax pinned to fp32) or fp32.")] = "fp16",
    workspace: Annotated[float, typer.Option(help="Builder workspace in GB.")] = 4.0,
    timing_cache: Annotated[Path | None, typer.Option(help="Timing cache file, read and updated.")] = None,
    max_batch: Annotated[int, typer.Option(help="Largest backbone batch (targets tracked at once).")] = 4,
) -> None:
    """Compile the split ONNX graphs into TensorRT engines for this GPU, with a manifest."""
    from engines.builder import build_engines
    from engines.plan import PRECISIONS

    if precision not in PRECISIONS:
        raise ToMPError(f"--precision must be one of {', '.join(PRECISIONS)}.")
    with console.status("building TensorRT engines") as status:
        manifest = build_engines(export_dir, out, precision, workspace, timing_cache, max_batch,
                                 report=lambda text: status.update(text))
    console.print(f"built {precision} engines for {manifest.gpu_name} (SM {manifest.compute_capability}, TensorRT "
                  f"{manifest.tensorrt}) in {manifest.build_seconds:.0f} s: {out}")
