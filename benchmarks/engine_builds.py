"""Engine builds: how long TensorRT for RTX takes to build ahead of time, and how large the engines are.

    python -m benchmarks.engine_builds --models tiny,tomp50

For each model, FP32 and FP16 exports and their engines for the library's portable set of compute
capabilities (no GPU needed). `tiny` is the shipped model; ToMP-50 has seeded random weights (sizes and
build times do not depend on them). Writes benchmarks/results/engine_builds.json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
from pathlib import Path

import torch
from rich.console import Console

from tomp_deploy.engines.builder import BuildOptions, build_engines
from tomp_deploy.evaluation.host_facts import host_facts
from tomp_deploy.export.onnx_export import export_model
from tomp_deploy.model import ToMPNet, load_model, preset
from tomp_deploy.runtime.contract import GRAPHS
from tomp_deploy.runtime.shipped import resolve_model

RESULTS = Path(__file__).parent / "results"


def network(name: str) -> ToMPNet:
    if name == "tiny":
        return load_model(resolve_model("tiny"))
    torch.manual_seed(0)
    return ToMPNet(preset(name), pretrained_backbone=False).eval()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,tomp50")
    parser.add_argument("--library", default="tensorrt-rtx")
    args = parser.parse_args(argv)
    console = Console()
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models.split(","):
            model = network(name)
            for precision in ("fp32", "fp16"):
                export = Path(folder) / f"{name}-{precision}"
                with console.status(f"exporting {name} ({precision})"):
                    export_model(model, export, precision=precision)
                with console.status(f"building {name} ({precision})") as status:
                    built = build_engines(
                        export,
                        Path(folder) / f"{name}-{precision}-engines",
                        BuildOptions(library=args.library),
                        report=status.update,
                    )
                runs.append(
                    {
                        "model": name,
                        "precision": precision,
                        "library": built.built_with,
                        "targets": built.target_compute_capabilities or [built.compute_capability],
                        "build_seconds": round(built.build_seconds, 1),
                        "onnx_bytes": {g: (export / f"{g}.onnx").stat().st_size for g in GRAPHS},
                        "engine_bytes": built.engine_bytes,
                    }
                )
                console.log(
                    f"{name} {precision}: {built.build_seconds:.1f} s, "
                    + ", ".join(f"{g} {b / 1e6:.1f} MB" for g, b in built.engine_bytes.items())
                )
    report = {
        "benchmark": "engine_builds",
        "date": datetime.date.today().isoformat(),
        "command": "python -m benchmarks.engine_builds " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": host_facts(),
        "runs": runs,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "engine_builds.json").write_text(json.dumps(report, indent=2))
    machine = report["machine"]
    lines = [
        "# Engine builds",
        "",
        f"{report['date']} on {machine['cpu']} ({machine['cpu_count']} cores, no GPU), `{report['command']}`. "
        "Ahead-of-time builds for the compute capabilities listed; sizes in MB (ONNX -> engine).",
        "",
        "| model | precision | library | targets | build s | backbone | predictor | head |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        sizes = " | ".join(f"{run['onnx_bytes'][g] / 1e6:.1f} -> {run['engine_bytes'][g] / 1e6:.1f}" for g in GRAPHS)
        lines.append(
            f"| {run['model']} | {run['precision']} | {run['library']} | {', '.join(run['targets'])} "
            f"| {run['build_seconds']:.1f} | {sizes} |"
        )
    (RESULTS / "engine_builds.md").write_text("\n".join(lines) + "\n")
    console.print("\n".join(lines))
    return report


if __name__ == "__main__":
    main()
