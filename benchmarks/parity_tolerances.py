"""What `tomp-deploy parity` measures for the shipped model at each precision, against its FP32 export run by
ONNX Runtime: the largest relative error of the contract outputs on the same inputs (one step, what a
precision itself costs), and over whole sequences the per-frame IoU of the two trackers' boxes (closed
loop: each frame's crop follows the previous box, so a small difference can grow), with the AUC difference.

    python -m benchmarks.parity_tolerances

Sequences: the demo's family (`filmed`, seed 7) and the held-out family (`bouncing`, seed 7), neither seen
in training. Writes benchmarks/results/parity_tolerances.json/.md; the README's tolerances come from it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from tomp_deploy.checks.parity import compare_contract, compare_sequences
from tomp_deploy.evaluation.datasets import open_dataset
from tomp_deploy.evaluation.host_facts import host_facts
from tomp_deploy.evaluation.metrics import average, sequence_curves
from tomp_deploy.evaluation.synth import DEMO_FAMILY, HELD_OUT_FAMILY, generate_benchmark
from tomp_deploy.export.onnx_export import export_model
from tomp_deploy.model import load_model
from tomp_deploy.runtime.backends import BackendOptions, open_backend
from tomp_deploy.runtime.backends.recording import RecordingBackend
from tomp_deploy.runtime.driver import track_boxes
from tomp_deploy.runtime.images import read_rgb
from tomp_deploy.runtime.shipped import resolve_model

RESULTS = Path(__file__).parent / "results"
FAMILIES = (DEMO_FAMILY, HELD_OUT_FAMILY)


def candidates(exports: dict[str, Path]) -> dict[str, tuple[str, Path, dict]]:
    """label -> (backend, model, options) of every precision that runs on this machine."""
    runs = {"onnxruntime fp16": ("onnxruntime", exports["fp16"], {})}
    if importlib.util.find_spec("openvino") is not None:
        runs["openvino fp32"] = ("openvino", exports["fp32"], {"precision": "fp32"})
        runs["openvino bf16"] = ("openvino", exports["fp32"], {"precision": "bf16"})
    return runs


def compare_family(family: str, sequences, reference_export: Path, runs: dict) -> dict:
    figures = {}
    with contextlib.ExitStack() as stack:
        reference = stack.enter_context(open_backend("onnxruntime", reference_export))
        recorder = RecordingBackend(reference, keep=3)
        frames = {s.name: [read_rgb(p) for p in s.frames] for s in sequences}
        reference_boxes = {s.name: track_boxes(recorder, frames[s.name], s.init_box) for s in sequences}
        reference_auc = average([sequence_curves(reference_boxes[s.name], s) for s in sequences]).summary()["auc"]
        for label, (backend, model, options) in runs.items():
            candidate = stack.enter_context(open_backend(backend, model, BackendOptions(**options)))
            contract = compare_contract(reference, candidate, recorder.first_calls(3))
            boxes = {s.name: track_boxes(candidate, frames[s.name], s.init_box) for s in sequences}
            ious = np.concatenate([compare_sequences(reference_boxes[s.name], boxes[s.name]).ious for s in sequences])
            auc = average([sequence_curves(boxes[s.name], s) for s in sequences]).summary()["auc"]
            figures[label] = {
                "contract_max_rel": max(r.max_rel for r in contract),
                "iou_min": float(ious.min()),
                "iou_mean": float(ious.mean()),
                "iou_p05": float(np.percentile(ious, 5)),
                "frames_below_0_5": int((ious < 0.5).sum()),
                "frames": int(ious.size),
                "delta_auc": auc - reference_auc,
            }
            print(f"{family} {label}: " + ", ".join(f"{k} {v:.4g}" for k, v in figures[label].items()), flush=True)
    return figures


def markdown(report: dict) -> str:
    machine = report["machine"]
    lines = [
        "# Parity of the shipped model per precision, against its FP32 export (ONNX Runtime)",
        "",
        f"{report['date']} on {machine['cpu']} ({', '.join(machine.get('cpu_features', []))}), "
        f"`{report['command']}`: {report['sequences']} sequences of {report['frames']} frames per family.",
        "",
        "| family | precision | contract max rel. error | IoU per frame: min / 5th pct / mean | frames IoU < 0.5 | "
        "ΔAUC (points) |",
        "|---|---|---|---|---|---|",
    ]
    for family, figures in report["families"].items():
        for label, f in figures.items():
            lines.append(
                f"| {family} | {label} | {f['contract_max_rel']:.1e} | {f['iou_min']:.3f} / {f['iou_p05']:.3f} / "
                f"{f['iou_mean']:.3f} | {f['frames_below_0_5']} of {f['frames']} | {f['delta_auc']:+.2f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=10)
    parser.add_argument("--frames", type=int, default=100)
    args = parser.parse_args(argv)
    network = load_model(resolve_model("tiny"))
    report = {
        "benchmark": "parity_tolerances",
        "date": datetime.date.today().isoformat(),
        "command": " ".join(["python -m benchmarks.parity_tolerances", *(argv if argv is not None else sys.argv[1:])]),
        "machine": host_facts(),
        "sequences": args.sequences,
        "frames": args.frames,
        "families": {},
    }
    with tempfile.TemporaryDirectory() as folder:
        exports = {p: Path(folder, f"export-{p}") for p in ("fp32", "fp16")}
        for precision, path in exports.items():
            export_model(network, path, precision=precision)
        for family in FAMILIES:
            generate_benchmark(Path(folder, family), args.sequences, args.frames, seed=7, family=family)
            sequences = open_dataset(Path(folder, family), "lasot")
            report["families"][family] = compare_family(family, sequences, exports["fp32"], candidates(exports))
    text = markdown(report)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "parity_tolerances.json").write_text(json.dumps(report, indent=2))
    (RESULTS / "parity_tolerances.md").write_text(text)
    print(text)
    return report


if __name__ == "__main__":
    main()
