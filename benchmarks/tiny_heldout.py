"""Accuracy of a model on held-out synthetic sequences, against a tracker that never moves its box.

    python -m benchmarks.tiny_heldout --model tiny --sequences 10 --frames 100 --seed 7

The shipped tiny model was trained on synthetic data of seed 1000; seed 7 writes other sequences.
Writes benchmarks/results/tiny_heldout.json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from tomp_deploy.datasets import Sequence, open_dataset
from tomp_deploy.evaluation import evaluate
from tomp_deploy.host_facts import host_facts
from tomp_deploy.scoring import score_results
from tomp_deploy.shipped import resolve_model
from tomp_deploy.synth import generate_benchmark

RESULTS = Path(__file__).parent / "results"


def score_against_static_box(sequences: list[Sequence], model: Path, work: Path) -> dict[str, dict]:
    """Scores `model` (torch backend) and a tracker that never moves its box on `sequences`; results go under `work`."""
    tracked = work / "tracked"
    evaluate(sequences, "torch", str(model), tracked)
    static = work / "static"
    static.mkdir()
    for sequence in sequences:
        boxes = np.repeat(sequence.init_box[None], len(sequence.frames), axis=0)
        np.savetxt(static / f"{sequence.name}.txt", boxes, fmt="%.2f", delimiter=",")
    return {"model": score_results(sequences, tracked).to_json(), "static_box": score_results(sequences, static).to_json()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--sequences", type=int, default=10)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    model = resolve_model(args.model)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "heldout"
        generate_benchmark(root, args.sequences, args.frames, args.seed)
        scores = score_against_static_box(open_dataset(root, "lasot"), model, Path(folder))
    report = {
        "benchmark": "tiny_heldout",
        "date": datetime.date.today().isoformat(),
        "command": "python -m benchmarks.tiny_heldout " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": str(model),
        "machine": host_facts(),
        "overall": {name: value["overall"] for name, value in scores.items()},
        "sequences": {name: value["sequences"] for name, value in scores.items()},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tiny_heldout.json").write_text(json.dumps(report, indent=2))
    lines = ["# Tiny model on held-out synthetic sequences", "",
             f"{report['date']}, `{report['command']}`, {args.sequences} sequences of {args.frames} frames "
             f"(synthetic seed {args.seed}; the model was trained on seed 1000), torch backend, fp32 CPU.", "",
             "| tracker | AUC | precision | norm. precision |", "|---|---|---|---|"]
    for name, overall in report["overall"].items():
        lines.append(f"| {name} | {overall['auc']:.1f} | {overall['precision']:.1f} | {overall['norm_precision']:.1f} |")
    (RESULTS / "tiny_heldout.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return report


if __name__ == "__main__":
    main()
