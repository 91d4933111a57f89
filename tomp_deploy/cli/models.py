"""Commands on one model: `inspect` a checkpoint, `export` it to ONNX, `quantize` an export to INT8, `build`
engines from an export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from tomp_deploy.cli.app import command, console
from tomp_deploy.cli.render import print_table
from tomp_deploy.runtime.manifests.engine import DEFAULT_MAX_BATCH


@command()
def inspect(
    checkpoint: Annotated[Path, typer.Argument(help="A tomp-deploy or reference (.pth.tar) checkpoint, or 'tiny'.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the same facts as JSON.")] = False,
) -> None:
    """Show a checkpoint's architecture, parameter count and provenance."""
    from tomp_deploy.model import load_model
    from tomp_deploy.runtime.shipped import resolve_model

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
    print_table(f"ToMP checkpoint {checkpoint.name}", ("field", "value"), [[k, v] for k, v in rows.items()], show_header=False)


@command("export")
def export_command(
    model: Annotated[Path, typer.Argument(help="Checkpoint to export (tomp-deploy or reference format), or 'tiny'.")],
    out: Annotated[Path, typer.Option(help="Folder for backbone/predictor/head.onnx and model.json.")],
    opset: Annotated[int, typer.Option(help="ONNX opset (18..20; TensorRT 10.0 parses up to 20).")] = 18,
    force: Annotated[bool, typer.Option(help="Replace an earlier export in --out (nothing else is deleted).")] = False,
    precision: Annotated[
        str,
        typer.Option(
            help="fp32, or fp16: FP16 weights and compute with FP32 islands, "
            "float32 inputs and outputs (for engines and ONNX Runtime)."
        ),
    ] = "fp32",
) -> None:
    """Export a checkpoint as the split ONNX graphs and check them for TensorRT."""
    from tomp_deploy.export.onnx_export import export_model
    from tomp_deploy.model import load_model
    from tomp_deploy.runtime.shipped import resolve_model

    with console.status("loading the checkpoint") as status:
        network = load_model(resolve_model(model))
        reports = export_model(
            network, out, opset=opset, force=force, precision=precision, progress=lambda text: status.update(text)
        )
    rows = [
        [
            r.graph,
            f"{r.size_bytes / 1e6:.1f} MB",
            str(r.op_count),
            f"{100 * r.fp16_weight_fraction:.1f}%",
            str(len(r.fp32_nodes)),
            "  ".join(f"{k}: {v}" for k, v in r.checks.items() if k != "opset"),
        ]
        for r in reports
    ]
    print_table(
        f"{precision.upper()} ONNX export of {model.name} (opset {opset})",
        ("graph", "size", "ops", "FP16 weights", "FP32 island nodes", "checks"),
        rows,
    )
    console.print(f"wrote {out}/{{backbone,predictor,head}}.onnx and model.json")


@command()
def build(
    export_dir: Annotated[Path, typer.Argument(help="Export folder (tomp-deploy export).")],
    out: Annotated[Path, typer.Option(help="Engine folder to write.")],
    library: Annotated[str | None, typer.Option(help="tensorrt or tensorrt-rtx (default: the one installed).")] = None,
    precision: Annotated[
        str | None,
        typer.Option(
            help="The export precision the engines must have: they take the export's, and an export of another is "
            "refused with the export to make (export --precision fp16)."
        ),
    ] = None,
    compute_capability: Annotated[
        list[str] | None,
        typer.Option(
            help="TensorRT for RTX: a compute capability to build for, e.g. 8.9; repeatable (default: its portable "
            "set, 8.0 to 12.0 and later)."
        ),
    ] = None,
    workspace: Annotated[float, typer.Option(help="Builder workspace in GB.")] = 4.0,
    timing_cache: Annotated[Path | None, typer.Option(help="TensorRT: timing cache file, read and updated.")] = None,
    max_batch: Annotated[
        int,
        typer.Option(help="Largest batch: crops per backbone call, targets per predictor and head call (all targets tracked)."),
    ] = DEFAULT_MAX_BATCH,
) -> None:
    """Compile the split ONNX graphs into strongly typed engines (TensorRT or TensorRT for RTX), with a manifest."""
    from tomp_deploy.engines.builder import BuildOptions, build_engines

    options = BuildOptions(library, precision, workspace, timing_cache, max_batch, tuple(compute_capability or ()))
    with console.status("building engines") as status:
        manifest = build_engines(export_dir, out, options, report=lambda text: status.update(text))
    where = (
        f"for {manifest.gpu_name} (SM {manifest.compute_capability})"
        if manifest.gpu_name
        else f"for compute capabilities {', '.join(manifest.target_compute_capabilities)}"
    )
    sizes = ", ".join(f"{graph} {size / 1e6:.1f} MB" for graph, size in manifest.engine_bytes.items())
    console.print(
        f"built {manifest.precision} engines with {manifest.built_with} {where}, for 1..{max_batch} crops "
        f"and targets per call, in {manifest.build_seconds:.1f} s ({sizes}): {out}"
    )


@command()
def quantize(
    export_dir: Annotated[Path, typer.Argument(help="FP32 export folder (tomp-deploy export).")],
    out: Annotated[Path, typer.Option(help="Folder for the INT8 (QDQ) export.")],
    calibration: Annotated[
        Path,
        typer.Option(
            help="Dataset whose sequences the tracker runs to calibrate on, e.g. one written by 'tomp-deploy synth' "
            "with a training family."
        ),
    ],
    calibration_format: Annotated[str, typer.Option(help="Layout of the calibration dataset.")] = "lasot",
    frames: Annotated[int, typer.Option(help="Calibration frames, taken from the starts of its sequences.")] = 100,
    quantizer: Annotated[
        str, typer.Option(help="nncf, or onnxruntime (its static QDQ quantiser; OpenVINO 2026.4 cannot compile its predictor).")
    ] = "nncf",
    force: Annotated[bool, typer.Option(help="Replace an earlier export in --out (nothing else is deleted).")] = False,
) -> None:
    """Quantise an FP32 export to INT8 QDQ graphs (for --backend openvino --precision int8, or onnxruntime),
    calibrated on the tracker's own calls over a dataset."""
    from tomp_deploy.evaluation.datasets import open_dataset
    from tomp_deploy.export.quantize import CalibrationData, check_destination, quantize_export, read_fp32_export
    from tomp_deploy.runtime.errors import ToMPError

    if frames < 2:
        raise ToMPError("--frames must be at least 2.")
    read_fp32_export(export_dir)
    check_destination(export_dir, out, force)
    sequences = open_dataset(calibration, calibration_format)
    with console.status("calibrating") as status:
        exported = quantize_export(
            export_dir, out, CalibrationData(sequences, frames, str(calibration)), quantizer, force, progress=status.update
        )
    recorded = exported.manifest.quantization["calibration"]
    calls = recorded["calls_per_graph"]
    console.print(
        f"wrote the INT8 export {out} ({quantizer}; calibrated on {recorded['frames']} frames of {len(sequences)} "
        f"sequences, {', '.join(f'{g} {n} calls' for g, n in calls.items())}); run it with --backend "
        "openvino --precision int8"
    )
