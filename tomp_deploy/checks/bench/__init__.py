"""`tomp-deploy bench`: every requested backend over the same sequences against the torch fp32 reference.

Reports accuracy (success AUC, precision, normalised precision and their difference from the
reference), agreement with the reference (per-frame IoU of the boxes, score-map error on identical
inputs), end-to-end FPS with its spread and the median time of each stage (image decoding excluded), and
the steady FPS (the rate a long run sustains), each backend in a process of its own, as a JSON file, a
Markdown table and a PNG (success plots + FPS bars). Running, comparing and reporting are one module each.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tomp_deploy.checks.bench.comparing import accuracy, summarise
from tomp_deploy.checks.bench.reporting import TABLE_COLUMNS, markdown_table, row_label, table_rows, table_title, write_report
from tomp_deploy.checks.bench.running import REFERENCE, TrackingJob, run_backends
from tomp_deploy.evaluation.datasets import Sequence
from tomp_deploy.evaluation.host_facts import host_facts
from tomp_deploy.runtime.backends import BackendOptions, backend_names, backend_spec
from tomp_deploy.runtime.errors import ToMPError


@dataclass(frozen=True)
class BenchPlan:
    """What a bench runs: the backends (the torch reference first, whether named or not) over the same
    sequences, with the options each takes, timing all frames but the first `warmup` of each backend."""

    model_name: str
    backends: list[str]
    sequences: list[Sequence]
    options: BackendOptions = BackendOptions()
    warmup: int = 5
    command: str = ""
    """The command line that asked for it, recorded in the report."""
    long_term: bool = False
    """Also run every backend in long-term mode (a second row each, `<name> long-term`)."""

    def backend_order(self) -> list[str]:
        """The backends in the order they run, once every name and option is known to apply."""
        unknown = [b for b in self.backends if b not in backend_names()]
        if unknown:
            raise ToMPError(f"Unknown backend(s) {unknown}; available backends: {', '.join(backend_names())}.")
        if not self.sequences:
            raise ToMPError("The dataset holds no sequence to benchmark.")
        names = [REFERENCE] + [b for b in self.backends if b != REFERENCE]
        for option in self.options.given():
            if not any(option in backend_spec(name).takes for name in names):
                takers = [name for name in backend_names() if option in backend_spec(name).takes]
                raise ToMPError(
                    f"--{option.replace('_', '-')} applies to {', '.join(takers)}, none of which this bench "
                    f"runs ({', '.join(names)})."
                )
        return names


def bench(
    plan: BenchPlan, model_for: Callable[[str], Path], out: Path, progress=lambda text: None, on_frame=lambda: None
) -> dict:
    """Runs every backend of `plan` (torch first, the reference); `model_for(backend)` gives the model file or
    folder that backend takes, or raises `ToMPError` to have it reported as skipped. The plan's options go to
    every backend that takes them (the torch reference takes none but threads, so it stays FP32)."""
    names, sequences = plan.backend_order(), plan.sequences
    out.mkdir(parents=True, exist_ok=True)
    job = TrackingJob(sequences, plan.options, plan.warmup, plan.long_term)
    runs = run_backends(names, model_for, job, progress, on_frame)
    reference_run = runs[REFERENCE] if runs[REFERENCE].status == "ok" else None
    reference = accuracy(reference_run, sequences) if reference_run else None
    report = {
        "machine": {**host_facts(), "device": plan.options.device},
        "reference": REFERENCE,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": plan.command,
        "model": plan.model_name,
        "sequences": [s.name for s in sequences],
        "frames": sum(len(s.frames) for s in sequences),
        "warmup_frames": plan.warmup,
        "backends": {name: summarise(name, run, sequences, reference_run, reference) for name, run in runs.items()},
    }
    write_report(report, runs, sequences, out)
    return report


__all__ = ["TABLE_COLUMNS", "BenchPlan", "bench", "markdown_table", "row_label", "table_rows", "table_title"]
