"""Reporting `bench`: the JSON report, the table (terminal, Markdown, piped output) and the plot
(success curves and FPS bars)."""

from __future__ import annotations

import json
from pathlib import Path

from tomp_deploy.checks.bench.running import BackendRun
from tomp_deploy.evaluation.datasets import Sequence
from tomp_deploy.evaluation.metrics import OVERLAP_THRESHOLDS, average, sequence_curves
from tomp_deploy.runtime.contract import STAGES
from tomp_deploy.runtime.files import write_atomically


def write_report(report: dict, runs: dict[str, BackendRun], sequences: list[Sequence], out: Path) -> None:
    """bench.json, bench.md and bench.png in `out`."""
    write_atomically(out / "bench.json", json.dumps(report, indent=2))
    write_atomically(out / "bench.md", markdown(report))
    plot(report, runs, sequences, out / "bench.png")


TABLE_COLUMNS = (
    "backend",
    "status",
    "AUC",
    "ΔAUC",
    "precision",
    "norm. prec.",
    "IoU vs ref (mean/min)",
    "score err",
    "FPS (p10-p90)",
    "steady FPS",
    "ms " + "/".join(STAGES),
    "searches (ms)",
)
"""FPS is end to end (the tracker's whole time per frame, frames with a whole-frame search left out); the
stage times are medians beside it; long-term rows add how many whole-frame searches ran and their median."""


def table_rows(report: dict) -> list[list[str]]:
    """The bench table, one row of TABLE_COLUMNS per backend: what the terminal, Markdown and piped
    output all show."""
    rows = []
    for name, entry in report["backends"].items():
        if entry["status"] != "ok":
            rows.append([name, entry["status"], entry["error"], *[""] * (len(TABLE_COLUMNS) - 3)])
            continue
        delta, score = entry.get("delta_auc"), entry.get("score_max_rel_error")
        rows.append(
            [
                row_label(name, entry),
                "ok",
                f"{entry['auc']:.1f}",
                "" if delta is None else f"{delta:+.2f}",
                f"{entry['precision']:.1f}",
                f"{entry['norm_precision']:.1f}",
                f"{entry.get('iou_mean', 1):.4f} / {entry.get('iou_min', 1):.4f}",
                "" if score is None else f"{score:.1e}",
                f"{entry['fps']:.1f} ({entry['fps_p10']:.1f}-{entry['fps_p90']:.1f})",
                f"{entry['fps_steady']:.1f}",
                "/".join(f"{entry['stage_ms'][s]:.1f}" for s in STAGES),
                f"{entry['searches']} ({entry['search_ms']:.0f})" if "searches" in entry else "",
            ]
        )
    return rows


def row_label(name: str, entry: dict) -> str:
    """A backend's name with the precision it computes in (openvino's auto choice, an export's precision)
    and a CPU backend's threads."""
    facts = [entry["compute_precision"]] if entry.get("compute_precision") else []
    if entry.get("threads"):
        facts.append(f"{entry['threads']} thread{'s' if entry['threads'] > 1 else ''}")
    return f"{name} ({', '.join(facts)})" if facts else name


def table_title(report: dict) -> str:
    return (
        f"bench: {Path(report['model']).name} on {len(report['sequences'])} sequences "
        f"({report['machine']['device']}), reference {report['reference']}"
    )


def markdown_table(columns, rows) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(report: dict) -> str:
    machine = report["machine"]
    reference = report["backends"].get(report["reference"], {})
    versions = ", ".join(f"{name} {version}" for name, version in machine.get("versions", {}).items())
    return (
        "\n".join(
            [
                f"# tomp-deploy bench: {Path(report['model']).name}",
                "",
                f"{report['date']} on {machine['cpu']} ({machine['cpu_count']} cores; "
                f"{', '.join(machine.get('cpu_features', [])) or 'no AMX/AVX512 flags read'})"
                f"{''.join(f', {gpu}' for gpu in machine['gpus'])}, device {machine['device']}; "
                f"{len(report['sequences'])} sequences, {report['frames']} frames; Python {machine.get('python', '?')}, "
                f"{versions}.",
                f"Command: `{report['command']}`",
                "",
                f"Reference: {row_label(report['reference'], reference)}. ΔAUC, IoU vs ref and score err compare each row with "
                "it on the same frames; each row's name carries the precision it computes in and a CPU backend's threads. "
                "Each backend ran in a process of its own. FPS is end to end (the tracker's whole time per frame, the "
                "median frame's, frames with a whole-frame search left out); steady FPS is the timed frames over their total "
                "time (the rate a long run sustains, slow frames and searches included); warm-up frames are left out of "
                "both. A `long-term` row is the same backend in long-term mode; its searches column counts the "
                "whole-frame searches and gives their median time.",
                "",
                markdown_table(TABLE_COLUMNS, table_rows(report)),
            ]
        )
        + "\n"
    )


def plot(report: dict, runs: dict[str, BackendRun], sequences: list[Sequence], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (success_axis, fps_axis) = plt.subplots(1, 2, figsize=(11, 4.5))
    ok = [n for n, e in report["backends"].items() if e["status"] == "ok"]
    for name in ok:
        curve = average([sequence_curves(runs[name].boxes[s.name], s) for s in sequences]).success
        success_axis.plot(
            OVERLAP_THRESHOLDS,
            curve * 100,
            linewidth=2,
            label=f"{row_label(name, report['backends'][name])} [{report['backends'][name]['auc']:.1f}]",
        )
    success_axis.set(xlabel="Overlap threshold", ylabel="Overlap Precision [%]", xlim=(0, 1), ylim=(0, 100), title="Success plot")
    success_axis.grid(True, linestyle=":")
    success_axis.legend(loc="lower left", fontsize="small")
    fps = [report["backends"][n]["fps"] for n in ok]
    low = [f - report["backends"][n]["fps_p10"] for n, f in zip(ok, fps)]
    high = [report["backends"][n]["fps_p90"] - f for n, f in zip(ok, fps)]
    # horizontal bars: the rows' labels (long-term rows double them) run into each other under vertical ones
    fps_axis.barh([row_label(n, report["backends"][n]) for n in ok], fps, xerr=[low, high], capsize=6, color="tab:green")
    fps_axis.invert_yaxis()
    fps_axis.set(xlabel="frames per second, end to end (median, p10-p90)", title=f"Speed ({report['machine']['device']})")
    fps_axis.grid(True, axis="x", linestyle=":")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
