"""Synthetic tracking benchmarks in the LaSOT layout, deterministic per (family, seed, sequence): several
scene families for training and one held out for evaluation (`families`)."""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from tomp_deploy.evaluation.synth.families import (
    DEMO_FAMILY,
    FAMILIES,
    HELD_OUT_FAMILY,
    LONG_TERM_FAMILY,
    LONG_TERM_HELD_OUT_FAMILY,
    TRAINING_FAMILIES,
    class_name,
    write_family_sequence,
)
from tomp_deploy.evaluation.synth.scene import ATTRIBUTES
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.files import staged_folder

__all__ = [
    "ATTRIBUTES",
    "DEMO_FAMILY",
    "FAMILIES",
    "HELD_OUT_FAMILY",
    "LONG_TERM_FAMILY",
    "LONG_TERM_HELD_OUT_FAMILY",
    "TRAINING_FAMILIES",
    "generate_benchmark",
]


def _write_one(job: tuple) -> list[str]:
    """Writes one sequence into a staging folder that replaces `folder` whole once complete: a run killed
    half-way leaves no sequence with part of its frames, and rewriting one leaves none of its old frames."""
    family, folder, seed, index, frames, size = job
    with staged_folder(folder, "OUT") as staging:
        return write_family_sequence(family, staging, np.random.default_rng([seed, index]), frames, size, index)


FRAME_SIZE = (320, 240)
"""Width and height of every synthetic frame."""


def generate_benchmark(
    out: str | Path, sequences: int, frames: int, seed: int = 0, family: str = "patches", workers: int = 1, progress=None
) -> list[str]:
    """Writes `sequences` sequences of `frames` frames under OUT/<class>/<class>-<k>/ plus
    OUT/attributes.json (per-sequence attributes in the reference's attribute-file format). Sequence k
    depends on (family, seed, k) only, whatever the number of `workers`."""
    if family not in FAMILIES:
        raise ToMPError(f"Unknown synthetic family {family!r}; choose one of {', '.join(FAMILIES)}.")
    out = Path(out)
    name_of = class_name(family)
    names = [f"{name_of}-{k}" for k in range(1, sequences + 1)]
    jobs = [(family, out / name_of / name, seed, k, frames, FRAME_SIZE) for k, name in enumerate(names, start=1)]
    attribute_file = {"att_name_short": list(ATTRIBUTES), "att_name_long": list(ATTRIBUTES.values())}
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            written = pool.map(_write_one, jobs)
            for name, attributes in zip(names, written):
                attribute_file[name] = attributes
                if progress:
                    progress(name)
    else:
        for name, job in zip(names, jobs):
            attribute_file[name] = _write_one(job)
            if progress:
                progress(name)
    (out / "attributes.json").write_text(json.dumps(attribute_file, indent=1))
    return names
