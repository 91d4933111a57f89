"""Commands on one model: `inspect` a checkpoint, `export` it to ONNX, `build` engines from an export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from tomp_deploy.cli.app import command, console
from tomp_deploy.cli.render import print_table
from tomp_deploy.errors import ToMPError


@command()
def inspect(
    checkpoint: Annotated[Path, typer.Argument(help="A tomp-deploy or reference (.pth.tar) checkpoint, or 'tiny'.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the same facts as JSON.")] = False,
) -> None:
    """Show a checkpoint's architecture, parameter count and provenance."""
    from tomp_deploy.model import load_model
    from tomp_deploy.shipped import resolve_model

    checkpoint = resolve_model(checkpoint)
    model = load_model(checkpoint)
    info, config = model.checkpoint_info, model.config
    report = {
        "checkpoint": str(checkpoint),
        "format": info.format,
        "sha256": info.sha256,
        "config": config.to_dict(),
        "search_size": config.search_size,
        "parameters": model.num_parameters(),
        "tracker": info.tracker_params.to_dict(),
        "source": info.meta,
        "dropped_unused_weights": len(info.dropped_keys),
    }
    if as_json:
        print(json.dumps(report, indent=2))
        return
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
    rows.update({f"source: {k}": str(v) for k, v in info.meta.items() if v is not None and k != "tracker"})
    if info.dropped_keys:
        rows["unused weights dropped"] = f"{len(info.dropped_keys)} tensors of backbone layer4/fc (ToMP reads layer3)"
    print_table(f"ToMP checkpoint {checkpoint.name}", ("field", "value"), [[k, v] for k, v in rows.items()],
                show_header=False)


@command("export")
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
    from tomp_deploy.export_manifest import read_export
    from tomp_deploy.model import load_model
    from tomp_deploy.shipped import resolve_model

    with console.status("loading the checkpoint") as status:
        network = load_model(resolve_model(model))
        reports = export_model(network, out, opset=opset, force=force, progress=lambda text: status.update(text))
    rows = [[r.graph, f"{r.size_bytes / 1e6:.1f} MB", str(r.op_count),
             "  ".join(f"{k}: {v}" for k, v in r.checks.items() if k != "opset")] for r in reports]
    print_table(f"ONNX export of {model.name} (opset {opset})", ("graph", "size", "ops", "checks"), rows)
    console.print(f"wrote {out}/{{backbone,predictor,head}}.onnx and model.json")
    if check_fp16:
        from export.fp16 import check_fp16 as run_check

        with console.status("running FP16 copies"):
            mode, errors = run_check(read_export(out), device)
        rows = [[e.graph, e.output, f"{e.max_abs:.2e}", f"{e.max_rel:.2e}", "yes" if e.finite else "NO"] for e in errors]
        print_table(f"FP16 vs FP32: {mode}", ("graph", "output", "max abs error", "max rel error", "finite"), rows)


@command()
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

