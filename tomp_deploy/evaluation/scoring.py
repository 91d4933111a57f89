"""Scores result files against a dataset: overall, per sequence and per attribute, in percent."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tomp_deploy.evaluation.datasets import Sequence, load_boxes
from tomp_deploy.evaluation.metrics import (
    CENTER_THRESHOLDS,
    OVERLAP_THRESHOLDS,
    PRECISION_INDEX,
    SequenceCurves,
    average,
    sequence_curves,
)
from tomp_deploy.runtime.errors import ToMPError

MISSING_POLICIES = ("error", "zero")


@dataclass
class Score:
    overall: SequenceCurves
    sequences: dict[str, SequenceCurves]
    attributes: dict[str, list[str]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        result = {
            "overall": {**self.overall.summary(), "sequences": len(self.sequences)},
            "sequences": {name: curves.summary() for name, curves in self.sequences.items()},
        }
        if self.attributes:
            result["attributes"] = {
                attribute: {**average([self.sequences[n] for n in names]).summary(), "sequences": len(names)}
                for attribute, names in sorted(self.attributes.items())
            }
        if self.missing:
            result["missing_counted_as_zero"] = self.missing
        return result


def score_results(sequences: list[Sequence], results: Path, missing: str = "error") -> Score:
    """Reads `results/<sequence name>.txt` for every sequence and scores them."""
    if missing not in MISSING_POLICIES:
        raise ToMPError(f"--missing must be one of {MISSING_POLICIES}, not {missing!r}.")
    if not results.is_dir():
        raise ToMPError(f"The results folder {results} does not exist.")
    absent = [s.name for s in sequences if not (results / f"{s.name}.txt").is_file()]
    if absent and missing == "error":
        shown = ", ".join(absent[:10]) + (f" and {len(absent) - 10} more" if len(absent) > 10 else "")
        raise ToMPError(
            f"{len(absent)} of {len(sequences)} sequences have no results file in {results}: {shown}. "
            "Run them, or pass --missing zero to count them as failures."
        )
    curves, attributes = {}, {}
    for sequence in sequences:
        if (~np.isnan(sequence.ground_truth).any(axis=1)).sum() <= 1:
            raise ToMPError(
                f"{sequence.name} is annotated in its first frame only (a test split whose annotations are "
                "withheld): submit its results to the benchmark's evaluation server instead."
            )
        path = results / f"{sequence.name}.txt"
        if sequence.name in absent:
            curves[sequence.name] = SequenceCurves.zero()
        else:
            curves[sequence.name] = sequence_curves(load_boxes(path), sequence, str(path))
        for attribute in sequence.attributes:
            attributes.setdefault(attribute, []).append(sequence.name)
    return Score(average(list(curves.values())), curves, attributes, absent)


def plot_scores(scores: dict[str, Score], path: Path, title: str = "") -> Path:
    """Success and precision plots (the paper's Fig. 5a style) of one or more trackers, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (success_axis, precision_axis) = plt.subplots(1, 2, figsize=(11, 4.5))
    ranked = sorted(scores.items(), key=lambda item: -item[1].overall.success.mean())
    for name, score in ranked:
        overall = score.overall
        success_axis.plot(
            OVERLAP_THRESHOLDS, overall.success * 100, linewidth=2, label=f"{name} [{overall.success.mean() * 100:.1f}]"
        )
    for name, score in sorted(scores.items(), key=lambda item: -item[1].overall.precision[PRECISION_INDEX]):
        overall = score.overall
        precision_axis.plot(
            CENTER_THRESHOLDS,
            overall.precision * 100,
            linewidth=2,
            label=f"{name} [{overall.precision[PRECISION_INDEX] * 100:.1f}]",
        )
    success_axis.set(
        xlabel="Overlap threshold",
        ylabel="Overlap Precision [%]",
        xlim=(0, 1),
        ylim=(0, 100),
        title=f"Success plot{' - ' + title if title else ''}",
    )
    precision_axis.set(
        xlabel="Location error threshold [pixels]",
        ylabel="Distance Precision [%]",
        xlim=(0, 50),
        ylim=(0, 100),
        title=f"Precision plot{' - ' + title if title else ''}",
    )
    for axis in (success_axis, precision_axis):
        axis.grid(True, linestyle=":")
        axis.legend(loc="lower left" if axis is success_axis else "lower right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
