"""The batching figure: targets per second against the number of targets, batched and one tracker per target."""

from __future__ import annotations

import json
from pathlib import Path


def plot_path(json_path: Path) -> Path:
    return json_path.with_name(json_path.stem + "-batching.png")


def draw_batching(data: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in data["batching"] if "not_measured" not in row and "streams" not in row]
    if not rows:
        raise ValueError("the run has no batching measurement to draw")
    targets = [row["targets"] for row in rows]
    figure, axes = plt.subplots(figsize=(7, 4.5), layout="constrained")
    axes.plot(targets, [row["targets_per_s"] for row in rows], "o-", label="one batched tracker")
    axes.plot(targets, [row["one_at_a_time_targets_per_s"] for row in rows], "s--", label="one tracker per target")
    for row in rows:
        axes.annotate(
            f"{row['speedup']:.1f}x",
            (row["targets"], row["targets_per_s"]),
            textcoords="offset points",
            xytext=(0, 7),
            ha="center",
            fontsize=8,
        )
    for row in data["batching"]:
        if "streams" in row and "not_measured" not in row:
            axes.plot(
                [row["targets"]],
                [row["targets_per_s"]],
                "D",
                color="C2",
                label=f"{row['streams']} streams x {row['targets'] // row['streams']} targets, batched",
            )
    axes.set_xscale("log", base=2)
    ticks = sorted({row["targets"] for row in data["batching"] if "not_measured" not in row})
    axes.set_xticks(ticks, [str(t) for t in ticks])
    axes.set_ylim(bottom=0)
    axes.set_xlabel("targets tracked at once")
    axes.set_ylabel("targets tracked per second")
    setting = rows[0]
    axes.set_title(
        f"{data['device']['name']}: {setting['model']} {setting['precision']}, "
        f"CUDA graphs {'on' if setting['cuda_graphs'] else 'off'}",
        fontsize=10,
    )
    axes.grid(alpha=0.3)
    axes.legend()
    partial = out.with_name(f".{out.name}.partial.png")
    figure.savefig(partial, dpi=120)
    plt.close(figure)
    partial.replace(out)
    return out


def redraw(json_path: Path) -> Path:
    """The plot of a results file, e.g. one written on a GPU machine without matplotlib."""
    return draw_batching(json.loads(json_path.read_text()), plot_path(json_path))
