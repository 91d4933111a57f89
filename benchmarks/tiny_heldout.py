"""Accuracy of the shipped model on sequences of a scene family it was never trained on, and on new
sequences of a family it was trained on, against a box that never moves; its FP16 export beside FP32.

    python -m benchmarks.tiny_heldout --model tiny --compare-with BEFORE.pt --sequences 10 --frames 100 --seed 7

`bouncing` (the held-out family: other photographs, faces, coins, thrown and bouncing objects) is used
only here and in tests. `patches` (seed 7) is the same-generator figure recorded since the first shipped
model. Writes benchmarks/results/tiny_heldout.json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from export.onnx_export import export_model
from tomp_deploy.datasets import Sequence, open_dataset
from tomp_deploy.evaluation import evaluate
from tomp_deploy.host_facts import host_facts
from tomp_deploy.model import load_model
from tomp_deploy.scoring import score_results
from tomp_deploy.shipped import resolve_model
from tomp_deploy.synth import HELD_OUT_FAMILY, generate_benchmark

RESULTS = Path(__file__).parent / "results"
SAME_GENERATOR_FAMILY = "patches"


def static_box_results(sequences: list[Sequence], folder: Path) -> Path:
    """Result files of a tracker that keeps the first box."""
    folder.mkdir(parents=True)
    for sequence in sequences:
        boxes = np.repeat(sequence.init_box[None], len(sequence.frames), axis=0)
        np.savetxt(folder / f"{sequence.name}.txt", boxes, fmt="%.2f", delimiter=",")
    return folder


def score_trackers(sequences: list[Sequence], trackers: dict[str, tuple[str, Path]], work: Path) -> dict[str, dict]:
    """{label: scores} for every (backend, model) tracker and the static box; results go under `work`."""
    scores = {}
    for label, (backend, model) in trackers.items():
        folder = work / label.replace(" ", "_")
        evaluate(sequences, backend, str(model), folder)
        scores[label] = score_results(sequences, folder).to_json()
    scores["static box"] = score_results(sequences, static_box_results(sequences, work / "static")).to_json()
    return scores


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--compare-with", type=Path, default=None, help="An earlier checkpoint to score beside it")
    parser.add_argument("--sequences", type=int, default=10)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    model = resolve_model(args.model)
    report = {
        "benchmark": "tiny_heldout",
        "date": datetime.date.today().isoformat(),
        "command": "python -m benchmarks.tiny_heldout " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": str(model),
        "machine": host_facts(),
        "families": {},
    }
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        network = load_model(model)
        export_model(network, work / "export-fp32")
        export_model(network, work / "export-fp16", precision="fp16")
        for family in (HELD_OUT_FAMILY, SAME_GENERATOR_FAMILY):
            generate_benchmark(work / family, args.sequences, args.frames, args.seed, family=family)
            trackers = {"model (torch fp32)": ("torch", model),
                        "model (onnxruntime fp32)": ("onnxruntime", work / "export-fp32"),
                        "model (onnxruntime fp16)": ("onnxruntime", work / "export-fp16")}
            if args.compare_with is not None:
                trackers["earlier model (torch fp32)"] = ("torch", args.compare_with)
            scores = score_trackers(open_dataset(work / family, "lasot"), trackers, work / f"{family}-results")
            report["families"][family] = {
                "overall": {label: value["overall"] for label, value in scores.items()},
                "sequences": {label: value["sequences"] for label, value in scores.items()},
            }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tiny_heldout.json").write_text(json.dumps(report, indent=2))
    lines = ["# Shipped tiny model on unseen sequences", "",
             f"{report['date']}, `{report['command']}`: {args.sequences} sequences of {args.frames} frames per family "
             f"(seed {args.seed}), CPU.", ""]
    for family, result in report["families"].items():
        kind = "held out: never seen in training" if family == HELD_OUT_FAMILY else "a training family, new sequences"
        lines += [f"## `{family}` ({kind})", "", "| tracker | AUC | precision | norm. precision |", "|---|---|---|---|"]
        for label, overall in result["overall"].items():
            lines.append(f"| {label} | {overall['auc']:.1f} | {overall['precision']:.1f} | {overall['norm_precision']:.1f} |")
        fp16_gap = result["overall"]["model (onnxruntime fp16)"]["auc"] - result["overall"]["model (onnxruntime fp32)"]["auc"]
        lines += ["", f"FP16 - FP32 AUC (ONNX Runtime): {fp16_gap:+.2f}", ""]
    (RESULTS / "tiny_heldout.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return report


if __name__ == "__main__":
    main()
