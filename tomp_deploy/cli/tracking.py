"""Commands that track: `track` a video, image folder or camera; `parity` of two backends on a sequence."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import TextColumn

from tomp_deploy.cli.app import command, console
from tomp_deploy.cli.options import (
    Backend,
    CudaGraphs,
    Device,
    LongTerm,
    Precision,
    Threads,
    TrackerParam,
    backend_and_model,
    backend_options,
    progress_bar,
    tracker_overrides,
)
from tomp_deploy.cli.render import print_table
from tomp_deploy.runtime.errors import ToMPError

if TYPE_CHECKING:
    from tomp_deploy.runtime.backends.recording import RecordedCalls


def _output_paths(output: Path, count: int) -> list[Path]:
    if count == 1:
        return [output]
    return [output.with_name(f"{output.stem}_{k + 1}{output.suffix}") for k in range(count)]


def _check_gui() -> None:
    import cv2

    try:
        cv2.namedWindow("tomp-deploy")
    except cv2.error:
        raise ToMPError(
            "--show needs a display and an OpenCV build with GUI support (opencv-python, not the headless "
            "build). Use --video-out instead."
        ) from None


def _initial_boxes(frames, init_box: list[str] | None, toolkit_box: bool) -> list:
    from tomp_deploy.runtime.box_text import as_trax_sends
    from tomp_deploy.runtime.sources import find_groundtruth, first_groundtruth_box, parse_box

    if init_box:
        boxes = [parse_box(text, "--init-box") for text in init_box]
    else:
        groundtruth = find_groundtruth(frames.folder) if frames.folder else None
        if groundtruth is None:
            raise ToMPError("No initial box: pass --init-box x,y,w,h (a folder with groundtruth.txt needs none).")
        boxes = [first_groundtruth_box(groundtruth)]
    return [as_trax_sends(box) for box in boxes] if toolkit_box else boxes


@command()
def track(
    source: Annotated[str, typer.Argument(help="Video file, folder of images (sorted by name) or camera index.")],
    model: Annotated[Path, typer.Option(help="Checkpoint (or export/engine folder for those backends), or 'tiny'.")],
    backend: Backend = None,
    device: Device = "cpu",
    init_box: Annotated[
        list[str] | None,
        typer.Option(
            help="Initial box x,y,w,h in pixels; repeat for several targets. Optional for a "
            "folder with groundtruth.txt beside or above its images."
        ),
    ] = None,
    toolkit_box: Annotated[
        bool,
        typer.Option(
            help="Start from the first box as the VOT toolkit sends it over TraX (float32, four decimals), to "
            "reproduce a toolkit run's trajectory exactly."
        ),
    ] = False,
    output: Annotated[Path | None, typer.Option(help="Write x,y,w,h per frame (first line: the initial box).")] = None,
    video_out: Annotated[Path | None, typer.Option(help="Write an MP4 with the boxes, scores and frame rate.")] = None,
    show: Annotated[bool, typer.Option(help="Show the tracking in a window (q quits).")] = False,
    threads: Threads = None,
    precision: Precision = None,
    cuda_graphs: CudaGraphs = None,
    tracker_param: TrackerParam = None,
    long_term: LongTerm = False,
) -> None:
    """Track one or more targets through a video, an image folder or a camera."""
    from tomp_deploy.runtime.backends import open_backend
    from tomp_deploy.runtime.driver import track_frames
    from tomp_deploy.runtime.overrides import overridden_tracker_params
    from tomp_deploy.runtime.sources import FrameSource

    frames = FrameSource(source)
    boxes = _initial_boxes(frames, init_box, toolkit_box)
    if show:
        _check_gui()
    options = backend_options(device, threads, precision, cuda_graphs)
    backend, loaded = backend_and_model(backend, model, options)
    with open_backend(backend, loaded, options) as runtime:
        params = overridden_tracker_params(runtime.tracker_params, tracker_overrides(tracker_param, long_term))
        if backend == "openvino":
            console.print(f"openvino computes in {runtime.precision} (the CPU plugin reports {', '.join(runtime.capabilities)})")
        outputs = _TrackOutputs(output, len(boxes), video_out, show)
        try:
            with progress_bar(TextColumn("{task.fields[fps]}")) as progress:
                task = progress.add_task("[bold]tracking[/]", total=len(frames) or None, fps="")
                recent: list[float] = []
                for step in track_frames(runtime, (frame.image for frame in frames), boxes, params):
                    recent = (recent + [step.seconds])[-30:] if step.index > 0 else recent
                    fps = len(recent) / sum(recent) if recent else None
                    if not outputs.emit(step, fps):
                        break
                    progress.update(task, advance=1, fps=f"{fps:.1f} FPS" if fps else "")
            outputs.stop_reason = outputs.stop_reason or frames.stopped_early
        except ToMPError as exc:
            if outputs.written == 0:
                raise
            raise ToMPError(f"{exc}\nStopped after {outputs.written} frames; {outputs.where_kept()}") from None
        finally:
            outputs.close()
    outputs.report()


class _TrackOutputs:
    """Where `track` sends each frame: box files (one per target), the overlay video, the window."""

    def __init__(self, output: Path | None, targets: int, video_out: Path | None, show: bool):
        from tomp_deploy.cli.outputs import ResultWriter
        from tomp_deploy.evaluation.longterm import confidence_path

        paths = _output_paths(output, targets) if output else []
        self.writers = [ResultWriter(p) for p in paths]
        self.confidence_writers = [ResultWriter(confidence_path(p), what="confidences") for p in paths]
        self.video_out, self.show = video_out, show
        self.video = None
        self.written = 0
        self.stop_reason: str | None = None

    def emit(self, step, fps: float | None) -> bool:
        """Writes one tracked frame; False when the user closed the window with q."""
        from tomp_deploy.cli.outputs import VideoWriter, draw_overlay
        from tomp_deploy.evaluation.longterm import format_confidence
        from tomp_deploy.runtime.box_text import format_box

        for writer, box in zip(self.writers, step.boxes):
            writer.write(format_box(box))
        for writer, confidence in zip(self.confidence_writers, step.confidences):
            writer.write(format_confidence(confidence))
        self.written = step.index + 1
        if not (self.video_out or self.show):
            return True
        canvas = draw_overlay(step.image, step.boxes, step.confidences, fps, present=[r.present for r in step.results] or None)
        if self.video_out:
            if self.video is None:
                self.video = VideoWriter(self.video_out, (step.image.shape[1], step.image.shape[0]))
            self.video.write(canvas)
        if self.show:
            import cv2

            cv2.imshow("tomp-deploy", canvas)
            if cv2.waitKey(1) & 0xFF == ord("q"):
                self.stop_reason = "stopped by the user"
                return False
        return True

    def where_kept(self) -> str:
        if self.writers:
            return f"their boxes are in {', '.join(str(w.path) for w in self.writers)}."
        return "no --output was given."

    def close(self) -> None:
        for writer in self.writers + self.confidence_writers:
            writer.close()
        if self.video is not None:
            self.video.close()

    def report(self) -> None:
        if self.stop_reason:
            console.print(f"[yellow]note:[/] {self.stop_reason}; {self.written} frames tracked.")
        for writer, confidences in zip(self.writers, self.confidence_writers):
            console.print(f"boxes: {writer.path} ({self.written} lines), confidences: {confidences.path}")
        if self.video is not None:
            console.print(f"video: {self.video.path}")


def _print_layer_errors(backends, recorded: RecordedCalls) -> None:
    from tomp_deploy.checks.fp16_report import GROWTH, growing, layer_errors

    exports = [getattr(backend, "exported", None) for backend in backends]
    if None in exports or exports[0].manifest.precision != "fp32" or exports[1].manifest.precision != "fp16":
        raise ToMPError(
            "--per-layer compares two exports run by onnxruntime: an FP32 one first, then an FP16 one "
            "of the same model (onnxruntime:EXPORT_FP32 onnxruntime:EXPORT_FP16)."
        )
    with console.status("running every intermediate tensor of both exports"):
        rows = layer_errors(exports[0], exports[1], {graph: calls[0] for graph, calls in recorded.items()})
    listed = growing(rows)
    print_table(
        f"Layers where the FP16 error grows (x{GROWTH:g} over their inputs, first frame; {len(rows)} tensors compared)",
        ("graph", "node", "op", "rel. error", "inputs' error", "FP32 island"),
        [[r.graph, r.node, r.op_type, f"{r.max_rel:.2e}", f"{r.input_rel:.2e}", "yes" if r.fp32_island else ""] for r in listed]
        or [["", "none", "", "", "", ""]],
    )


@command()
def parity(
    a: Annotated[str, typer.Argument(help="Reference, as BACKEND:PATH (e.g. torch:model.pth.tar).")],
    b: Annotated[str, typer.Argument(help="Candidate, as BACKEND:PATH (e.g. onnxruntime:exports/model).")],
    sequence: Annotated[Path, typer.Option(help="Image folder with groundtruth.txt beside or above it.")],
    device: Device = "cpu",
    rtol: Annotated[float, typer.Option(help="Largest relative error allowed on contract outputs.")] = 1e-4,
    min_iou: Annotated[
        float,
        typer.Option(
            help="Smallest IoU allowed between the two trackers' boxes on any frame; holds between FP32 runs only: "
            "give 0 for a lower precision against FP32 and judge its accuracy with eval."
        ),
    ] = 0.999,
    per_layer: Annotated[
        bool,
        typer.Option(
            help="For two exports (FP32 first, FP16 second): compare every intermediate tensor on the sequence's "
            "first frame and list the layers where the FP16 error grows."
        ),
    ] = False,
) -> None:
    """Compare two backends on every contract output and over a whole sequence."""
    import contextlib

    import numpy as np

    from tomp_deploy.checks.parity import Tolerances, compare_contract, compare_sequences
    from tomp_deploy.runtime.backends import open_backend, parse_backend_spec
    from tomp_deploy.runtime.backends.recording import RecordingBackend
    from tomp_deploy.runtime.driver import track_boxes
    from tomp_deploy.runtime.sources import FrameSource, find_groundtruth, first_groundtruth_box

    frames = FrameSource(sequence)
    groundtruth = find_groundtruth(frames.folder) if frames.folder else None
    if groundtruth is None:
        raise ToMPError(f"--sequence {sequence} must be an image folder with groundtruth.txt beside or above it.")
    init_box = first_groundtruth_box(groundtruth)
    tolerances = Tolerances(max_rel=rtol, min_iou=min_iou)
    options = backend_options(device)
    with contextlib.ExitStack() as stack:
        backends = []
        for spec in (a, b):
            name, path = backend_and_model(*parse_backend_spec(spec), options)
            backends.append(stack.enter_context(open_backend(name, path, options)))
        if backends[0].config != backends[1].config:
            raise ToMPError(f"{a} and {b} are different models (their configs differ); compare exports of one checkpoint.")
        images = [frame.image for frame in frames]
        recorder = RecordingBackend(backends[0], keep=3)
        with console.status(f"tracking {len(images)} frames with {a}"):
            boxes_a = track_boxes(recorder, images, init_box)
        with console.status(f"tracking {len(images)} frames with {b}"):
            boxes_b = track_boxes(backends[1], images, init_box)
        outputs = compare_contract(backends[0], backends[1], recorder.first_calls(3))
        if per_layer:
            _print_layer_errors(backends, recorder.first_calls(1))
    tracking = compare_sequences(boxes_a, boxes_b)

    print_table(
        f"Contract outputs: {b} vs {a}",
        ("graph", "output", "max abs error", "max rel error", f"<= {rtol:g}"),
        [
            [r.graph, r.output, f"{r.max_abs:.2e}", f"{r.max_rel:.2e}", "yes" if tolerances.outputs_within([r]) else "NO"]
            for r in outputs
        ],
    )
    print_table(
        f"Tracking over {len(images)} frames of {sequence}",
        ("", "mean", "min / max", "worst frame"),
        [
            ["IoU", f"{tracking.ious.mean():.5f}", f"{tracking.ious.min():.5f}", str(tracking.worst_frame)],
            [
                "centre error (px)",
                f"{tracking.centre_errors.mean():.3f}",
                f"{tracking.centre_errors.max():.3f}",
                str(int(np.argmax(tracking.centre_errors))),
            ],
        ],
    )
    within = tolerances.outputs_within(outputs) and tolerances.tracking_within(tracking)
    console.print(
        "[green]within tolerance[/]"
        if within
        else f"[red]outside tolerance[/] (rel. error <= {rtol:g} per output, IoU >= {min_iou:g} per frame)"
    )
    if not within:
        raise typer.Exit(code=1)
