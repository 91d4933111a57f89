"""`python -m benchmarks.gpu`: see the package docstring."""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
from rich.console import Console

from benchmarks.gpu import batching, parity, speed, training
from benchmarks.gpu.budget import Budget
from benchmarks.gpu.device import device_facts, device_slug
from benchmarks.gpu.plan import Plan
from benchmarks.gpu.plot import draw_batching, plot_path, redraw
from benchmarks.gpu.results import Results

RESULTS = Path(__file__).resolve().parents[1] / "results"
PARTS = {"parity": parity.run, "speed": speed.run, "batching": batching.run, "training": training.run}
SHARES = {"parity": 0.25, "speed": 0.3, "batching": 0.25, "training": 0.2}
"""Each part's share of the budget (of what is left when it starts)."""
FINISHING_S = 5.0
"""Kept from the parts for the plot and the last write."""


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default: cuda)")
    parser.add_argument("--quick", action="store_true", help="the smoke mode: tiny model, a few frames per measurement")
    parser.add_argument("--budget-s", type=float, default=300.0, help="wall-time budget in seconds (default: 300)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the results (default: benchmarks/results)")
    parser.add_argument("--plot", type=Path, metavar="JSON", help="only redraw the batching plot of a results file")
    args = parser.parse_args(argv)
    if args.budget_s <= 0:
        parser.error("--budget-s must be above 0")
    return args


def check_device(device: str) -> None:
    if device != "cpu" and not (device == "cuda" or device.startswith("cuda:") and device[5:].isdigit()):
        raise SystemExit(f"error: --device {device!r} is not a device; use cuda, cuda:N or cpu.")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(
            f"error: PyTorch {torch.__version__} sees no CUDA GPU. On a GPU machine check nvidia-smi; "
            "here, the CPU smoke mode runs with --device cpu --quick."
        )


def redraw_plot(json_path: Path) -> Path:
    if importlib.util.find_spec("matplotlib") is None:
        raise SystemExit("error: drawing the plot needs matplotlib: pip install matplotlib.")
    try:
        return redraw(json_path)
    except (OSError, ValueError, KeyError) as exc:
        raise SystemExit(
            f"error: {json_path} is not a results file of python -m benchmarks.gpu with a batching "
            f"measurement ({type(exc).__name__}: {exc})."
        ) from None


def run_parts(plan: Plan, results: Results, budget: Budget, console: Console) -> None:
    for name, part in PARTS.items():
        deadline = budget.part(name)
        console.print(f"[bold]{name}[/] ({deadline.left():.0f} s)")
        record = results.adder(name)

        def add(row: dict, record=record) -> None:
            record(row)
            if "not_measured" in row:
                measured = (
                    " ".join(
                        [
                            *(str(row[key]) for key in ("model", "recipe", "precision") if row.get(key)),
                            *([f"{row['targets']} targets"] if "targets" in row else []),
                        ]
                    )
                    or name
                )
                console.print(f"  {measured}: not measured: {row['not_measured']}", highlight=False)

        try:
            part(plan, deadline, add, lambda text: console.print(f"  {text}", highlight=False))
        except Exception as exc:  # one part's failure (a bug, a CUDA error) must not lose the other parts
            add({"not_measured": f"the part failed: {type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})
            console.print(f"  [red]{name} failed:[/] {type(exc).__name__}: {exc} (traceback in the JSON)")


def main(argv: list[str] | None = None) -> Results | None:
    args = arguments(argv)
    console = Console(soft_wrap=True)
    if args.plot:
        console.print(f"wrote {redraw_plot(args.plot)}")
        return None
    check_device(args.device)
    started = time.monotonic()
    budget = Budget(max(args.budget_s - FINISHING_S, 0.0), SHARES)
    facts = device_facts(args.device)
    command = "python -m benchmarks.gpu " + " ".join(sys.argv[1:] if argv is None else argv)
    results = Results(
        args.out / f"gpu-{device_slug(facts)}",
        list(PARTS),
        {
            "date": datetime.date.today().isoformat(),
            "command": command.strip(),
            "budget_s": args.budget_s,
            "quick": args.quick,
            "device": facts,
        },
    )
    with tempfile.TemporaryDirectory(prefix="tomp-gpu-benchmark-") as work:
        plan = Plan(args.device, args.quick, Path(work))
        if plan.not_on_this_device:
            results.skip(*plan.not_on_this_device)
        console.print(f"measuring on {facts['name']} ({args.device}) within {args.budget_s:.0f} s; writing {results.json_path}")
        run_parts(plan, results, budget, console)
    results.data["wall_s"] = time.monotonic() - started
    if importlib.util.find_spec("matplotlib") is None:
        results.skip(
            "the batching plot",
            f"matplotlib is not installed (draw it elsewhere: python -m benchmarks.gpu --plot {results.json_path})",
        )
    elif any("not_measured" not in row for row in results.data["batching"]):
        draw_batching(results.data, plot_path(results.json_path))
    results.save()
    if results.data["skipped"]:
        console.print("skipped: " + "; ".join(results.data["skipped"]), highlight=False)
    console.print(f"wrote {results.json_path} and {results.markdown_path.name} in {results.data['wall_s']:.0f} s")
    return results


if __name__ == "__main__":
    main()
