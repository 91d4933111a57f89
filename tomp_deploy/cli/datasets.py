"""Commands on datasets: write a `synth`etic benchmark, `score` result files, `eval`uate a model."""

from __future__ import annotations

import dataclasses
import json
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer

from tomp_deploy.cli.app import command, console
from tomp_deploy.cli.options import (
    Backend,
    Device,
    JsonOut,
    LongTerm,
    Model,
    Plot,
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
from tomp_deploy.runtime.files import check_output_file, ensure_folder, write_atomically

Format = Annotated[
    str, typer.Option(help="Dataset layout: lasot, lasot_extension, got10k, trackingnet, otb, nfs, uav123, vot, folder.")
]


@command()
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to write the benchmark into.")],
    sequences: Annotated[int, typer.Option(help="Number of sequences.")] = 10,
    frames: Annotated[int, typer.Option(help="Frames per sequence.")] = 100,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed writes the same benchmark.")] = 0,
    family: Annotated[
        str,
        typer.Option(
            help="Scene family: patches, cutouts, shapes (training families), "
            "bouncing (held out from training), filmed (the demo's), longterm (the target leaves the view and "
            "comes back; absent frames flagged) or longterm-heldout (the same with held-out objects)."
        ),
    ] = "patches",
    workers: Annotated[int, typer.Option(help="Processes writing sequences in parallel.", min=1)] = 1,
    layout: Annotated[
        str, typer.Option(help="lasot (eval --format lasot) or vot (the VOT toolkit's, with list.txt; eval --format vot).")
    ] = "lasot",
) -> None:
    """Write a synthetic benchmark: targets with motion, scale and shape change, occlusion, look-alike
    distractors, camera motion, blur and illumination change, from one scene family."""
    from tomp_deploy.evaluation.datasets.vot_layout import lasot_to_vot
    from tomp_deploy.evaluation.synth import FAMILIES, generate_benchmark

    if family not in FAMILIES:
        raise ToMPError(f"Unknown --family {family!r}; choose one of {', '.join(FAMILIES)}.")
    if layout not in ("lasot", "vot"):
        raise ToMPError(f"Unknown --layout {layout!r}; choose lasot or vot.")
    if sequences < 1 or frames < 2 or workers < 1:
        raise ToMPError("--sequences and --workers must be at least 1 and --frames at least 2.")
    ensure_folder(out, "OUT")
    with progress_bar() as progress:
        task = progress.add_task(f"writing {family} sequences", total=sequences)
        generate_benchmark(
            out, sequences, frames, seed, family=family, workers=workers, progress=lambda name: progress.advance(task)
        )
    if layout == "vot":
        lasot_to_vot(out)
    console.print(f"wrote {sequences} sequences of {frames} frames to {out} ({layout.upper()} layout, --format {layout})")


def _print_score(score, title: str) -> None:
    overall = score.to_json()
    rows = [
        [
            "overall",
            *(f"{overall['overall'][k]:.1f}" for k in ("auc", "precision", "norm_precision")),
            str(overall["overall"]["sequences"]),
        ]
    ]
    rows += [
        [attribute, *(f"{values[k]:.1f}" for k in ("auc", "precision", "norm_precision")), str(values["sequences"])]
        for attribute, values in overall.get("attributes", {}).items()
    ]
    print_table(title, ("", "AUC", "precision", "norm. precision", "sequences"), rows)
    if score.long_term is not None:
        best = score.long_term.summary()
        print_table(
            "long-term (ground truth marks absent frames)",
            ("F-score", "tracking precision", "tracking recall", "at confidence", "re-acquired within 30 frames"),
            [
                [f"{best[k]:.3f}" for k in ("f_score", "tracking_precision", "tracking_recall", "confidence_threshold")]
                + [f"{best['reacquired_within_30_frames']} of {best['reentries']}"]
            ],
        )
    elif score.long_term_skipped:
        console.print(f"[yellow]note:[/] no long-term measures: {score.long_term_skipped}.")


def _check_score_outputs(json_path: Path | None, plot_path: Path | None) -> None:
    """Before any tracking or scoring: the files --json and --plot name can be written."""
    if json_path:
        check_output_file(json_path, "--json")
    if plot_path:
        check_output_file(plot_path, "--plot")


def _score_outputs(scores: dict, json_path: Path | None, plot_path: Path | None, title: str) -> None:
    if json_path:
        payload = (
            next(iter(scores.values())).to_json()
            if len(scores) == 1
            else {name: score.to_json() for name, score in scores.items()}
        )
        write_atomically(json_path, json.dumps(payload, indent=2), "--json")
        console.print(f"scores: {json_path}")
    if plot_path:
        from tomp_deploy.evaluation.scoring import plot_scores

        console.print(f"plot: {plot_scores(scores, plot_path, title)}")


@command()
def score(
    dataset_root: Annotated[Path, typer.Option(help="Dataset folder.")],
    results: Annotated[
        list[Path], typer.Option(help="Results folder (one x,y,w,h file per sequence); repeat to compare trackers in one plot.")
    ],
    format: Format = "lasot",
    json_out: JsonOut = None,
    plot: Plot = None,
    missing: Annotated[str, typer.Option(help="A missing results file: 'error' or 'zero' (count as failure).")] = "error",
) -> None:
    """Score result files: success AUC, precision, normalised precision, per attribute, with plots."""
    from tomp_deploy.evaluation.datasets import open_dataset
    from tomp_deploy.evaluation.scoring import score_results

    _check_score_outputs(json_out, plot)
    sequences = open_dataset(dataset_root, format)
    scores = {folder.name: score_results(sequences, folder, missing) for folder in results}
    for name, value in scores.items():
        if value.missing:
            console.print(f"[yellow]note:[/] {len(value.missing)} missing sequences of {name} counted as zero")
        _print_score(value, f"{name} on {dataset_root} ({format})")
    _score_outputs(scores, json_out, plot, dataset_root.name)


def _cluster(address: str | None, cpus_per_task: int):
    """The Ray cluster `eval --ray` runs on, or nothing."""
    if address is None:
        return nullcontext()
    from tomp_deploy.evaluation.ray_runner import RayCluster

    return RayCluster(address, cpus_per_task)


@command("eval")
def eval_command(
    dataset_root: Annotated[Path, typer.Option(help="Dataset folder.")],
    model: Model,
    format: Format = "lasot",
    backend: Backend = None,
    device: Device = "cpu",
    workers: Annotated[int, typer.Option(help="Sequences tracked in parallel processes.", min=1)] = 1,
    ray: Annotated[
        str | None,
        typer.Option(
            help="Track the sequences as tasks on this Ray cluster ('auto' for the one started on this machine, or "
            "its address); one GPU a task with --device cuda, else --ray-cpus-per-task CPUs."
        ),
    ] = None,
    ray_cpus_per_task: Annotated[int, typer.Option(help="CPUs (and backend threads) of each Ray task.", min=1)] = 1,
    precision: Precision = None,
    threads: Threads = None,
    results: Annotated[
        Path | None,
        typer.Option(help="Results folder (default results/<model>_<fingerprint>_<backend>); resumes only the run that made it."),
    ] = None,
    json_out: JsonOut = None,
    plot: Plot = None,
    tracker_param: TrackerParam = None,
    long_term: LongTerm = False,
) -> None:
    """Track every sequence of a dataset (resuming finished ones), then score the results."""
    from tomp_deploy.evaluation.datasets import open_dataset
    from tomp_deploy.evaluation.runner import claim_results, evaluate, result_is_complete
    from tomp_deploy.evaluation.scoring import score_results
    from tomp_deploy.evaluation.sequence_jobs import TrackerSetup, model_fingerprint

    if ray is not None and workers > 1:
        raise ToMPError("--ray and --workers exclude each other: Ray runs as many tasks as the cluster has room for.")
    _check_score_outputs(json_out, plot)
    sequences = open_dataset(dataset_root, format)
    options = backend_options(device, threads, precision)
    backend, loaded = backend_and_model(backend, model, options)
    backend_label = backend + (f"_{precision}" if precision else "")
    results = results or Path("results") / f"{model.stem}_{model_fingerprint(loaded)[:8]}_{backend_label}"
    setup = TrackerSetup(backend, str(loaded), options, tuple(tracker_overrides(tracker_param, long_term)))
    with _cluster(ray, ray_cpus_per_task) as cluster:
        claim_results(results, setup)
        done = sum(result_is_complete(results / f"{s.name}.txt", s) for s in sequences)
        if done:
            console.print(f"resuming: {done} of {len(sequences)} sequences already have results in {results}")
        remaining = sum(len(s.frames) for s in sequences if not result_is_complete(results / f"{s.name}.txt", s))
        here = workers <= 1 and ray is None
        with progress_bar() as progress:
            frames_task = progress.add_task("frames", total=remaining if here else None, visible=here)
            sequence_task = progress.add_task("sequences", total=len(sequences), completed=done)
            evaluate(
                sequences,
                setup,
                results,
                workers,
                on_frame=lambda: progress.advance(frames_task),
                on_sequence=lambda name: progress.advance(sequence_task),
                cluster=cluster,
            )
    value = score_results(sequences, results)
    _print_score(value, f"{model.name} ({backend}) on {dataset_root}")
    _score_outputs({f"{model.stem} ({backend})": value}, json_out, plot, dataset_root.name)


def _fit_row(name: str, samples: str, fit) -> list[str]:
    """A row of calibrate's table: a refitted model's samples and its ranking before and after the fit."""
    return [
        name,
        f"{fit.samples} {samples}, {fit.on_target} on the target",
        f"{fit.auc_before:.3f} -> {fit.auc_after:.3f}",
        f"{fit.log_loss_before:.3f} -> {fit.log_loss_after:.3f}",
    ]


@command()
def calibrate(
    dataset_root: Annotated[Path, typer.Option(help="Dataset folder whose ground truth marks the frames without the target.")],
    model: Annotated[Path, typer.Option(help="Checkpoint whose long-term confidence to refit, or 'tiny'.")],
    output: Annotated[Path, typer.Option(help="The new checkpoint: the same weights, the refitted tracker parameters.")],
    format: Format = "lasot",
    backend: Backend = None,
    device: Device = "cpu",
    threads: Threads = None,
    tracker_param: TrackerParam = None,
) -> None:
    """Refit long-term mode's calibrated confidence on your sequences (targets that leave the view, are hidden
    and come back) and write a new checkpoint that records it."""
    from tomp_deploy.evaluation.calibration import MIN_SAMPLES_PER_LABEL, collect_samples, fit_calibration
    from tomp_deploy.evaluation.datasets import open_dataset
    from tomp_deploy.model.checkpoint import load_model, save_checkpoint
    from tomp_deploy.runtime.backends import open_backend
    from tomp_deploy.runtime.confidence import CANDIDATE, PRESENCE
    from tomp_deploy.runtime.overrides import apply_overrides
    from tomp_deploy.runtime.shipped import resolve_model

    source = resolve_model(model)
    if not source.is_file():
        raise ToMPError(
            f"--model {model} is not a checkpoint file; calibrate records the fit in a checkpoint's metadata. "
            "Calibrate the checkpoint the export or engines came from, then export and build again."
        )
    output = check_output_file(output, "--output")
    if output.resolve() == source.resolve():
        raise ToMPError(f"--output {output} is the input checkpoint; give a new file name (inputs are never overwritten).")
    sequences = open_dataset(dataset_root, format)
    options = backend_options(device, threads)
    backend_name, loaded = backend_and_model(backend, model, options)
    with open_backend(backend_name, loaded, options) as tracker_backend, progress_bar() as progress:
        params = apply_overrides(tracker_backend.tracker_params, tracker_param or [], "tracker parameter")
        frames = progress.add_task("tracking in long-term mode", total=sum(len(s.frames) for s in sequences))
        samples = collect_samples(tracker_backend, sequences, params, on_frame=lambda: progress.advance(frames))
    fitted, report = fit_calibration(samples, params)
    network = load_model(source)
    meta = dict(network.checkpoint_info.meta) | {
        "tracker": fitted.to_dict(),
        "calibration": {"dataset": str(dataset_root), "backend": backend_name, **dataclasses.asdict(report)},
    }
    save_checkpoint(network, output, meta)
    candidates = samples.candidates
    rows = [_fit_row("presence", "tracked frames", report.presence)]
    if report.candidate is None:
        count, on_target = len(candidates.on_target), int(candidates.on_target.sum())
        rows.append(["re-detection candidates", f"kept: {count} candidates, {on_target} on the target", "", ""])
    else:
        rows.append(_fit_row("re-detection candidates", "candidates", report.candidate))
    print_table("long-term confidence refitted", ("model", "fitted on", "ROC AUC", "log loss"), rows)
    if report.candidate is None:
        console.print(
            f"the candidate model needs {MIN_SAMPLES_PER_LABEL} candidates on the target and as many off it; it was "
            "kept as it was. Add sequences where the target is lost for longer (whole-frame searches make candidates).",
            highlight=False,
        )
    weights = PRESENCE.parameters(fitted) | CANDIDATE.parameters(fitted)
    console.print(f"wrote {output}; engines and exports made before take the fit as:", highlight=False)
    console.print(
        " ".join(f"--tracker-param {key}={value:.6g}" for key, value in weights.items()), highlight=False, soft_wrap=True
    )
