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
from pathlib import Path

from tomp_deploy.checks.bench.comparing import accuracy, summarise
from tomp_deploy.checks.bench.reporting import TABLE_COLUMNS, markdown_table, row_label, table_rows, table_title, write_report
from tomp_deploy.checks.bench.running import REFERENCE, run_backends
from tomp_deploy.evaluation.datasets import Sequence
from tomp_deploy.evaluation.host_facts import host_facts
from tomp_deploy.runtime.backends import BACKENDS
from tomp_deploy.runtime.errors import ToMPError


def bench(model_name: str, model_for: Callable[[str], Path], backends: list[str], sequences: list[Sequence], out: Path,
          device: str = "cpu", warmup: int = 5, progress=lambda text: None, on_frame=lambda: None,
          command: str = "", options: dict | None = None) -> dict:
    """Runs every backend (torch first, the reference) over `sequences`; `model_for(backend)` gives the
    model file or folder that backend takes, or raises `ToMPError` to have it reported as skipped.
    `options` (e.g. threads) go to every backend that takes them."""
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise ToMPError(f"Unknown backend(s) {unknown}; available backends: {', '.join(BACKENDS)}.")
    if not sequences:
        raise ToMPError("The dataset holds no sequence to benchmark.")
    names = [REFERENCE] + [b for b in backends if b != REFERENCE]
    out.mkdir(parents=True, exist_ok=True)
    runs = run_backends(names, model_for, sequences, device, warmup, progress, on_frame, options)
    reference_run = runs[REFERENCE] if runs[REFERENCE].status == "ok" else None
    reference = accuracy(reference_run, sequences) if reference_run else None
    report = {
        "machine": {**host_facts(), "device": device},
        "reference": REFERENCE,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "model": model_name,
        "sequences": [s.name for s in sequences],
        "frames": sum(len(s.frames) for s in sequences),
        "warmup_frames": warmup,
        "backends": {name: summarise(name, runs[name], sequences, reference_run, reference) for name in names},
    }
    write_report(report, runs, sequences, out)
    return report


__all__ = ["TABLE_COLUMNS", "bench", "markdown_table", "row_label", "table_rows", "table_title"]
