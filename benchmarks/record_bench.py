"""Records `tomp-deploy bench` figures in benchmarks/results/bench_<model>_<device>/ (JSON, Markdown, PNG).

    python -m benchmarks.record_bench --model tiny --backends torch,onnxruntime
    python -m benchmarks.record_bench --model tomp50 --backends torch,onnxruntime --sequences 2 --frames 40
    python -m benchmarks.record_bench --model tomp50 --backends torch,torch-cuda,tensorrt --device cuda

`tiny` is the shipped trained model. `tomp50` / `tomp101` are the paper's networks with seeded random
weights (nothing can be downloaded where these runs are made; speed does not depend on the weights, and
agreement with the reference is still measured, though on score maps without a clear peak). The sequences
are the synthetic benchmark of seed 7, which the tiny model was not trained on.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from rich.console import Console

from tomp_deploy.checks.bench import BenchPlan, bench
from tomp_deploy.evaluation.datasets import open_dataset
from tomp_deploy.evaluation.synth import generate_benchmark
from tomp_deploy.model import ToMPNet, preset, save_checkpoint
from tomp_deploy.pipeline.model_forms import ModelForms
from tomp_deploy.runtime.backends import BackendOptions
from tomp_deploy.runtime.shipped import resolve_model

RESULTS = Path(__file__).parent / "results"
RANDOM_WEIGHTS = ("tomp50", "tomp101")
DATA_SEED = 7


def model_file(name: str, folder: Path) -> Path:
    if name not in RANDOM_WEIGHTS:
        return resolve_model(name)
    torch.manual_seed(0)
    return save_checkpoint(ToMPNet(preset(name), pretrained_backbone=False), folder / f"{name}-random-weights.pt")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="tiny, tomp50, tomp101 or a checkpoint path")
    parser.add_argument("--backends", default="torch,onnxruntime")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sequences", type=int, default=3)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args(argv)
    console = Console()
    out = RESULTS / f"bench_{Path(args.model).stem}_{args.device.split(':')[0]}"
    command = "python -m benchmarks.record_bench " + " ".join(argv if argv is not None else sys.argv[1:])
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        generate_benchmark(work / "synthetic", args.sequences, args.frames, DATA_SEED)
        sequences = open_dataset(work / "synthetic", "lasot")
        model = model_file(args.model, work)
        forms = ModelForms.from_path(model, out / ".work")
        plan = BenchPlan(
            forms.name, args.backends.split(","), sequences, BackendOptions(device=args.device), args.warmup, command
        )
        report = bench(plan, forms.for_backend, out, progress=lambda text: console.log(text))
    shutil.rmtree(out / ".work", ignore_errors=True)
    console.print((out / "bench.md").read_text())
    return report


if __name__ == "__main__":
    main()
