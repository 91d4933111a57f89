"""The results as Markdown: what ran where, then one table per part; a measurement that did not happen
keeps its row with the reason."""

from __future__ import annotations

from tomp_deploy.runtime.contract import STAGES

BATCHING_GOAL = (8, 3.0)
"""At 8 targets, batched tracking should give at least 3x the throughput of one tracker per target (on a GPU)."""


def table(columns: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns), *("| " + " | ".join(r) + " |" for r in rows), ""]


def graphs(row: dict) -> str:
    return "on" if row.get("cuda_graphs") else "off"


def missing(row: dict, columns: int, *keys: str) -> list[str]:
    """The row of a measurement that did not happen: what it was (`keys` of `row`) and why."""
    return [*(str(row.get(key, "")) for key in keys), f"not measured: {row['not_measured']}", *[""] * (columns - len(keys) - 1)]


def header(data: dict) -> list[str]:
    device, host = data["device"], data["device"]["host"]
    smi = device.get("nvidia_smi", {})
    gpu = (
        f"{device['name']} (compute capability {device['compute_capability']}, {device['memory_gib']} GiB, "
        f"{device['multiprocessors']} SMs; SM clock {smi.get('clocks.sm', '?')} of {smi.get('clocks.max.sm', '?')}, "
        f"memory clock {smi.get('clocks.mem', '?')} of {smi.get('clocks.max.mem', '?')}, power limit "
        f"{smi.get('power.limit', '?')}, driver {smi.get('driver_version', '?')})"
        if "compute_capability" in device
        else "no GPU: the CPU smoke run"
    )
    versions = ", ".join(f"{name} {version}" for name, version in host["versions"].items() if name != "torch")
    lines = [
        f"# GPU measurements: {device['name']} ({device['device']})",
        "",
        f"{data['date']}; `{data['command']}`; budget {data['budget_s']:g} s, "
        f"{data.get('wall_s', 0):.0f} s used{' (quick mode)' if data['quick'] else ''}.",
        "",
        f"- device: {gpu}",
        f"- host: {host['cpu']}, {host['cpu_count']} cores; Python {host['python']}; torch {device['torch']} "
        f"(CUDA {device['torch_cuda']}, cuDNN {device['cudnn']}); {versions}",
        "- ToMP-50/101 have seeded random weights (speed and parity do not depend on training); tiny is the "
        "shipped model. Sequences are squares scenes (`benchmarks.targets`) in the LaSOT layout.",
        "",
    ]
    if data["skipped"]:
        lines += ["Skipped: " + "; ".join(data["skipped"]) + ".", ""]
    return lines


def parity(rows: list[dict]) -> list[str]:
    columns = [
        "model",
        "precision",
        "CUDA graphs",
        "worst output (max rel)",
        "finite",
        "frames",
        "min IoU",
        "mean IoU",
        "frames IoU < 0.98",
        "AUC reference",
        "AUC",
        "AUC difference",
    ]
    body, detail = [], []
    for row in rows:
        if "not_measured" in row:
            body.append(missing(row, len(columns), "model", "precision"))
            continue
        worst = max(row["outputs"], key=lambda output: output["max_rel"])
        body.append(
            [
                row["model"],
                row["precision"],
                graphs(row),
                f"{worst['graph']}.{worst['output']} {worst['max_rel']:.2e}",
                "yes" if all(o["finite"] for o in row["outputs"]) else "NO",
                str(row["frames"]),
                f"{row['min_iou']:.4f}",
                f"{row['mean_iou']:.4f}",
                str(row["frames_below_0.98"]),
                f"{row['auc_reference']:.1f}",
                f"{row['auc']:.1f}",
                f"{row['auc'] - row['auc_reference']:+.1f}",
            ]
        )
        detail += [
            [row["model"], row["precision"], f"{o['graph']}.{o['output']}", f"{o['max_abs']:.3e}", f"{o['max_rel']:.3e}"]
            for o in row["outputs"]
        ]
    return [
        "## 1. Parity against the torch CPU FP32 reference",
        "",
        "Contract outputs on the reference's recorded inputs (worst over the calls), and one tracked sequence.",
        "",
        *table(columns, body),
        "Per contract output:",
        "",
        *table(["model", "precision", "output", "max abs", "max rel"], detail),
    ]


def speed(rows: list[dict]) -> list[str]:
    columns = ["model", "precision", "CUDA graphs", "frames", "FPS", "median ms", *(f"{s} ms" for s in STAGES)]
    body = [
        missing({**row, "graphs": graphs(row)}, len(columns), "model", "precision", "graphs")
        if "not_measured" in row
        else [
            row["model"],
            row["precision"],
            graphs(row),
            str(row["frames"]),
            f"{row['fps']:.1f}",
            f"{row['median_ms']:.2f}",
            *(f"{row['stage_ms'][s]:.2f}" for s in STAGES),
        ]
        for row in rows
    ]
    return [
        "## 2. Speed",
        "",
        "FPS end to end (the tracker's whole time per frame); stage times are medians.",
        "",
        *table(columns, body),
    ]


def batching(rows: list[dict]) -> list[str]:
    columns = [
        "targets",
        "batched ms/frame",
        "one at a time ms/frame",
        "FPS per target (batched / one at a time)",
        "targets/s (batched / one at a time)",
        "speedup",
    ]
    body = []
    for row in rows:
        label = (
            f"{row['streams']} streams x {row['targets'] // row['streams']}" if "streams" in row else str(row.get("targets", ""))
        )
        if "not_measured" in row:
            body.append(missing({**row, "label": label}, len(columns), "label"))
            continue
        body.append(
            [
                label,
                f"{row['batched_ms']:.1f}",
                f"{row['one_at_a_time_ms']:.1f}",
                f"{row['fps_per_target']:.1f} / {row['one_at_a_time_fps_per_target']:.1f}",
                f"{row['targets_per_s']:.1f} / {row['one_at_a_time_targets_per_s']:.1f}",
                f"{row['speedup']:.2f}x",
            ]
        )
    first = rows[0] if rows else {}
    setting = f"{first.get('model', '?')} {first.get('precision', '?')}, CUDA graphs {graphs(first)}"
    goal = next(
        (row for row in rows if row.get("targets") == BATCHING_GOAL[0] and "streams" not in row and "speedup" in row), None
    )
    targets, speedup = BATCHING_GOAL
    verdict = (
        f"At {targets} targets: {goal['speedup']:.2f}x (goal on a GPU: {speedup:.0f}x or more)."
        if goal
        else f"The goal ({speedup:.0f}x at {targets} targets on a GPU) has no figure in this run."
    )
    return [
        "## 3. Batching",
        "",
        f"{setting}: one batched tracker against one tracker per target called in turn, "
        "on the same frames in lockstep. " + verdict,
        "",
        *table(columns, body),
    ]


def training(rows: list[dict]) -> list[str]:
    columns = ["recipe", "AMP", "batch", "loader workers", "steps timed", "it/s", "samples/s", "loss"]
    timed = [row for row in rows if "check" not in row]
    body = [
        missing(row, len(columns), "recipe")
        if "not_measured" in row
        else [
            row["recipe"],
            "on" if row["amp"] else "off",
            str(row["batch_size"]),
            str(row["workers"]),
            str(row["steps"]),
            f"{row['iterations_per_s']:.2f}",
            f"{row['samples_per_s']:.1f}",
            f"{row['loss']:.4f}",
        ]
        for row in timed
    ]
    checks = [
        f"Resume check ({row['recipe']}): {row.get('resume') or 'not measured: ' + row['not_measured']}."
        for row in rows
        if "check" in row
    ]
    return [
        "## 4. Training",
        "",
        "Steps are timed within one epoch after the warm-up steps (loader start, kernel "
        "selection) until the part's share of the budget or the step count runs out.",
        "",
        *table(columns, body),
        *checks,
        "",
    ]


def render(data: dict) -> str:
    lines = header(data) + parity(data["parity"]) + speed(data["speed"]) + batching(data["batching"]) + training(data["training"])
    return "\n".join(lines).rstrip() + "\n"
