"""Scores result files against a dataset: overall, per sequence and per attribute, in percent."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tomp_deploy.evaluation.datasets import Sequence, load_boxes
from tomp_deploy.evaluation.longterm import (
    CONFIDENCE_SUFFIX,
    LongTermCurves,
    confidence_path,
    load_confidences,
    long_term_curves,
    long_term_run,
)
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
    long_term: LongTermCurves | None = None
    """Tracking precision/recall where the ground truth marks absent frames and every sequence has confidences."""
    long_term_skipped: str = ""
    """Why the long-term measures were not computed on a dataset with absent frames."""

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
        if self.long_term is not None:
            result["long_term"] = self.long_term.summary()
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
    curves, attributes, predictions = {}, {}, {}
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
            predictions[sequence.name] = load_boxes(path)
            curves[sequence.name] = sequence_curves(predictions[sequence.name], sequence, str(path))
        for attribute in sequence.attributes:
            attributes.setdefault(attribute, []).append(sequence.name)
    long_term, skipped = _long_term(sequences, results, predictions)
    return Score(average(list(curves.values())), curves, attributes, absent, long_term, skipped)


def _long_term(sequences: list[Sequence], results: Path, predictions: dict[str, np.ndarray]) -> tuple[LongTermCurves | None, str]:
    """The long-term measures, where some sequence's ground truth marks the target absent after the first
    frame; they need every sequence's results (`predictions`, the boxes read) and confidences."""
    if all(sequence.target_present[1:].all() for sequence in sequences):
        return None, ""
    unscored = [
        s.name for s in sequences if s.name not in predictions or not confidence_path(results / f"{s.name}.txt").is_file()
    ]
    if unscored:
        return None, (
            f"{len(unscored)} sequences have no results or no confidences (<sequence>{CONFIDENCE_SUFFIX}), e.g. {unscored[0]}"
        )
    runs = []
    for sequence in sequences:
        boxes = results / f"{sequence.name}.txt"
        confidence = load_confidences(confidence_path(boxes))
        runs.append(long_term_run(predictions[sequence.name], confidence, sequence, str(boxes)))
    return long_term_curves(runs), ""


def plot_scores(scores: dict[str, Score], path: Path, title: str = "") -> Path:
    """Success and precision plots (the paper's Fig. 5a style) of one or more trackers, as PNG; with a
    third panel, the tracking precision/recall curves, where the long-term measures were computed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    long_term = {name: score.long_term for name, score in scores.items() if score.long_term is not None}
    panels = 3 if long_term else 2
    figure, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.5))
    success_axis, precision_axis = axes[0], axes[1]
    suffix = f" - {title}" if title else ""
    for name, score in sorted(scores.items(), key=lambda item: -item[1].overall.success.mean()):
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
        xlabel="Overlap threshold", ylabel="Overlap Precision [%]", xlim=(0, 1), ylim=(0, 100), title=f"Success plot{suffix}"
    )
    precision_axis.set(
        xlabel="Location error threshold [pixels]",
        ylabel="Distance Precision [%]",
        xlim=(0, 50),
        ylim=(0, 100),
        title=f"Precision plot{suffix}",
    )
    success_axis.legend(loc="lower left")
    precision_axis.legend(loc="lower right")
    if long_term:
        _plot_precision_recall(axes[2], long_term, suffix)
    for axis in axes:
        axis.grid(True, linestyle=":")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _plot_precision_recall(axis, curves: dict[str, LongTermCurves], suffix: str) -> None:
    """Tracking precision against recall over the confidence thresholds, the maximal F-score marked."""
    for name, curve in sorted(curves.items(), key=lambda item: -item[1].summary()["f_score"]):
        best = curve.summary()
        line = axis.plot(curve.recall, curve.precision, linewidth=2, label=f"{name} [F {best['f_score']:.3f}]")[0]
        axis.plot(best["tracking_recall"], best["tracking_precision"], "o", color=line.get_color())
    axis.set(xlabel="Tracking recall", ylabel="Tracking precision", xlim=(0, 1), ylim=(0, 1), title=f"Long-term{suffix}")
    axis.legend(loc="lower left")
