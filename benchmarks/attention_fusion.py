"""Fused attention in ONNX Runtime on this CPU: the predictor graph as exported against the rewrite the
onnxruntime backend makes on the CPU (`tomp_deploy.runtime.backends.attention_fusion`), same inputs, same
session options; checks that both give the same outputs.

    python -m benchmarks.attention_fusion --preset tomp50 --repeats 15

Writes benchmarks/results/attention_fusion_<preset>.json/.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from tomp_deploy.checks.fp16_report import contract_inputs
from tomp_deploy.evaluation.host_facts import host_facts
from tomp_deploy.export.onnx_export import export_model
from tomp_deploy.model import ToMPNet, preset
from tomp_deploy.runtime.backends.attention_fusion import fuse_attention
from tomp_deploy.runtime.backends.base import thread_budget
from tomp_deploy.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend, session_options

RESULTS = Path(__file__).parent / "results"


def _session(model: onnx.ModelProto, threads: int | None) -> ort.InferenceSession:
    options = session_options(thread_budget(threads))
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tomp50", choices=("tomp50", "tomp101", "tiny"))
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    config = preset(args.preset)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        export_model(ToMPNet(config, pretrained_backbone=False).eval(), Path(folder))
        feeds = contract_inputs(OnnxRuntimeBackend(folder))["predictor"][0]
        plain = onnx.load(Path(folder) / "predictor.onnx")
    fused, blocks = fuse_attention(plain, config.num_heads, config.feature_dim)
    sessions = {"as exported": _session(plain, args.threads), "fused attention": _session(fused, args.threads)}
    outputs = {name: session.run(None, feeds) for name, session in sessions.items()}
    largest_difference = max(float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-12)) for a, b in zip(*outputs.values()))
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(args.repeats):
        for name, session in sessions.items():
            started = time.perf_counter()
            session.run(None, feeds)
            times[name].append(time.perf_counter() - started)
    median = {name: float(np.median(t) * 1000) for name, t in times.items()}
    report = {
        "benchmark": "attention_fusion",
        "preset": args.preset,
        "date": datetime.date.today().isoformat(),
        "command": "python -m benchmarks.attention_fusion " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": host_facts(),
        "onnxruntime": ort.__version__,
        "fused_blocks": blocks,
        "predictor_ms": median,
        "largest_relative_difference": largest_difference,
    }
    lines = [
        f"# Fused attention in ONNX Runtime: {args.preset} predictor",
        "",
        f"{report['date']} on {report['machine']['cpu']} ({report['machine']['cpu_count']} cores), ONNX Runtime "
        f"{ort.__version__}, `{report['command']}`: {blocks} attention blocks fused; largest relative output "
        f"difference {largest_difference:.1e}.",
        "",
        "| predictor graph | median ms |",
        "|---|---|",
    ]
    lines += [f"| {name} | {value:.1f} |" for name, value in median.items()]
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"attention_fusion_{args.preset}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2))
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return report


if __name__ == "__main__":
    main()
