"""Does a backend's `bench` row depend on which other backends ran in the same `bench`? Runs
`tomp-deploy bench` with each backend alone (besides the torch reference, which always runs) and with all
CPU backends together, on idle cores and with one core kept busy by another process (as decoders or other
services do in a real pipeline), and compares each backend's FPS across the two. Also measures, as
information, torch with OpenMP's passive wait policy and torch on one thread.

    python -m benchmarks.thread_fairness --model tiny

Writes benchmarks/results/thread_fairness_<model>_cpu.json/.md. Run it on otherwise idle cores.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from tomp_deploy.evaluation.host_facts import host_facts

RESULTS = Path(__file__).parent / "results"
LOADS = ("idle", "one core busy")


@contextlib.contextmanager
def cores_loaded(load: str):
    """Nothing for "idle"; a process spinning on one core for "one core busy"."""
    if load == "idle":
        yield
        return
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        spinner.kill()
        spinner.wait()


def bench_fps(model: str, backends: list[str], out: Path, extra: list[str], environment: dict[str, str]) -> dict:
    """Each backend's median and steady FPS in one `tomp-deploy bench` run."""
    command = [
        sys.executable,
        "-m",
        "tomp_deploy",
        "bench",
        "--model",
        model,
        "--backends",
        ",".join(backends),
        "--out",
        str(out),
        *extra,
    ]
    subprocess.run(command, check=True, env={**os.environ, **environment}, stdout=subprocess.DEVNULL)
    rows = json.loads((out / "bench.json").read_text())["backends"]
    return {
        name: {"fps": row["fps"], "fps_steady": row["fps_steady"], "threads": row.get("threads")}
        for name, row in rows.items()
        if row["status"] == "ok"
    }


def measure(model: str, backends: list[str], out: Path, repeats: int) -> dict:
    """Each setting's FPS, the median over `repeats` runs taken in turn (one run of every setting, then the
    next round), so that a slow minute of the machine does not fall on one setting only."""
    settings = {
        "together": (backends, [], {}),
        **{f"alone {name}": ([name], [], {}) for name in backends},
        "torch, OMP_WAIT_POLICY=PASSIVE": (["torch"], [], {"OMP_WAIT_POLICY": "PASSIVE"}),
        "torch, --threads 1": (["torch"], ["--threads", "1"], {}),
    }
    figures: dict = {}
    for load in LOADS:
        runs: dict[str, list[dict]] = {setting: [] for setting in settings}
        with cores_loaded(load):
            for _ in range(repeats):
                for setting, (names, extra, environment) in settings.items():
                    runs[setting].append(bench_fps(model, names, out, extra, environment))
        together = {name: median_row([run[name] for run in runs["together"]]) for name in backends}
        alone = {name: median_row([run[name] for run in runs[f"alone {name}"]]) for name in backends}
        figures[load] = {
            "alone": alone,
            "together": together,
            "runs": runs,
            **{
                variant: median_row([run["torch"] for run in runs[variant]])
                for variant in ("torch, OMP_WAIT_POLICY=PASSIVE", "torch, --threads 1")
            },
        }
        print(
            f"{load}: "
            + ", ".join(f"{name} {alone[name]['fps']:.1f} alone, {together[name]['fps']:.1f} together" for name in backends),
            flush=True,
        )
    return figures


def median_row(rows: list[dict]) -> dict:
    fps = [r["fps"] for r in rows]
    return {
        "fps": float(np.median(fps)),
        "fps_low": float(min(fps)),
        "fps_high": float(max(fps)),
        "fps_steady": float(np.median([r["fps_steady"] for r in rows])),
        "threads": rows[0]["threads"],
    }


def shown(row: dict) -> str:
    """Median FPS [lowest-highest run] (steady FPS)."""
    return f"{row['fps']:.1f} [{row['fps_low']:.1f}-{row['fps_high']:.1f}] ({row['fps_steady']:.1f})"


def markdown(report: dict) -> str:
    machine = report["machine"]
    lines = [
        f"# Thread fairness: {report['model']} model, CPU backends",
        "",
        f"{report['date']} on {machine['cpu']} ({machine['cpu_count']} logical CPUs; "
        f"{', '.join(machine.get('cpu_features', [])) or 'no listed features'}), `{report['command']}`.",
        "",
        "FPS of each backend in a `bench` of that backend alone (with the torch reference, which always runs "
        "first) and in a `bench` of all of them; each backend runs in a process of its own, so both settings run "
        "the same processes one after another and their difference is the machine's run-to-run spread. Median "
        f"FPS of {report['repeats']} runs taken in turn, [the slowest and fastest run], (the median steady FPS: "
        'timed frames over their time). "One core busy": another process spins on one core during the runs.',
        "",
        "| backend | cores | alone | together | together / alone |",
        "|---|---|---|---|---|",
    ]
    for load, figures in report["figures"].items():
        for name, alone in figures["alone"].items():
            together = figures["together"][name]
            threads = f"{alone['threads']} thread{'s' if alone['threads'] != 1 else ''}"
            lines.append(
                f"| {name} ({threads}) | {load} | {shown(alone)} | {shown(together)} | {together['fps'] / alone['fps']:.2f} |"
            )
    lines += [
        "",
        "Torch variants, alone (information: what the torch backend's settings cost or gain):",
        "",
        "| variant | cores | FPS |",
        "|---|---|---|",
    ]
    for load, figures in report["figures"].items():
        for variant in ("torch, OMP_WAIT_POLICY=PASSIVE", "torch, --threads 1"):
            lines.append(f"| {variant} | {load} | {shown(figures[variant])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="What `bench --model` takes: 'tiny' or a checkpoint.")
    parser.add_argument("--repeats", type=int, default=3, help="Runs of every setting; their median is reported.")
    args = parser.parse_args(argv)
    backends = ["torch", "onnxruntime"] + (["openvino"] if importlib.util.find_spec("openvino") else [])
    with tempfile.TemporaryDirectory() as folder:
        figures = measure(args.model, backends, Path(folder), args.repeats)
    report = {
        "benchmark": "thread_fairness",
        "model": args.model,
        "date": datetime.date.today().isoformat(),
        "command": "python -m benchmarks.thread_fairness " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": host_facts(),
        "repeats": args.repeats,
        "figures": figures,
    }
    text = markdown(report)
    stem = RESULTS / f"thread_fairness_{Path(args.model).stem}_cpu"
    RESULTS.mkdir(exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2))
    stem.with_suffix(".md").write_text(text)
    print(text)
    return report


if __name__ == "__main__":
    main()
