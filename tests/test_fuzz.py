"""Seeded fuzzing of everything that reads user files: random bytes, truncations and byte flips of a
checkpoint, random edits of model.json, random box text. Only `ToMPError` (or a clean load) may come
out, and the loader's memory stays bounded."""

import copy
import json
import resource
import shutil

import numpy as np
import pytest

from tomp_deploy import ToMPError
from tomp_deploy.model import load_model
from tomp_deploy.runtime.box_text import parse_box
from tomp_deploy.runtime.manifests.export import read_export_manifest
from tomp_deploy.runtime.shipped import resolve_model

MEMORY_BOUND_KIB = 600_000
"""Peak memory the fuzz loop may add over the loaded shipped model (the checkpoint is 6.7 MB)."""


def mutations(original: bytes, rng: np.random.Generator, count: int):
    for index in range(count):
        data = bytearray(original)
        kind = index % 4
        if kind == 0:
            yield bytes(data[: int(rng.integers(0, len(data)))])
        elif kind == 1:
            for position in rng.integers(0, len(data), int(rng.integers(1, 8))):
                data[position] ^= int(rng.integers(1, 256))
            yield bytes(data)
        elif kind == 2:
            start = int(rng.integers(0, len(data) - 4096))
            data[start : start + 4096] = rng.bytes(4096)
            yield bytes(data)
        else:
            yield rng.bytes(int(rng.integers(0, 4096)))


def test_fuzzed_checkpoints_give_clean_errors(tmp_path):
    original = resolve_model("tiny").read_bytes()
    load_model(resolve_model("tiny"))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rng = np.random.default_rng(2026)
    outcomes = {"refused": 0, "loaded": 0}
    for index, data in enumerate(mutations(original, rng, 40)):
        path = tmp_path / f"fuzz{index}.pt"
        path.write_bytes(data)
        try:
            model = load_model(path)
        except ToMPError:
            outcomes["refused"] += 1
        else:  # a flip in bytes nothing reads: the model must still be whole and finite
            outcomes["loaded"] += 1
            assert all(p.isfinite().all() for p in model.parameters())
        path.unlink()
    assert outcomes["refused"] >= 30, outcomes
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < MEMORY_BOUND_KIB


def random_value(rng: np.random.Generator):
    return [None, -1, 0, 10**12, 3.5, float("nan"), "x", [], [1, "a"], {}, {"format": 1}, True][int(rng.integers(0, 12))]


def random_edit(manifest: dict, rng: np.random.Generator) -> dict:
    edited = copy.deepcopy(manifest)
    node = edited
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            return edited
        key = keys[int(rng.integers(0, len(keys)))]
        child = node[key]
        if isinstance(child, (dict, list)) and child and rng.random() < 0.6:
            node = child
            continue
        if isinstance(node, dict) and rng.random() < 0.3:
            del node[key]
        else:
            node[key] = random_value(rng)
        return edited


@pytest.fixture(scope="module")
def export_folder(shipped_export):
    return shipped_export


def test_fuzzed_model_json_gives_clean_errors(export_folder, tmp_path):
    manifest = json.loads((export_folder / "model.json").read_text())
    folder = tmp_path / "export"
    shutil.copytree(export_folder, folder)
    rng = np.random.default_rng(7)
    refused = 0
    for _ in range(200):
        (folder / "model.json").write_text(json.dumps(random_edit(manifest, rng)))
        try:
            read_export_manifest(folder)
        except ToMPError:
            refused += 1
    assert refused >= 100


def test_fuzzed_box_text_gives_clean_errors():
    """Boxes of random numbers, separators and stray characters; one of four kinds of damage each."""
    rng = np.random.default_rng(11)
    parsed = 0
    for index in range(2000):
        numbers = [f"{value:.{int(rng.integers(0, 4))}f}" for value in rng.normal(100, 300, int(rng.integers(3, 6)))]
        separators = rng.choice([",", " ", "\t", ", ", ";", ""], len(numbers) - 1)
        text = numbers[0] + "".join(s + n for s, n in zip(separators, numbers[1:]))
        if index % 3 == 0:
            position = int(rng.integers(0, len(text) + 1))
            text = text[:position] + str(rng.choice(list("xe.-+ n,"))) + text[position:]
        try:
            box = parse_box(text, "--init-box")
        except ToMPError as exc:
            assert str(exc).startswith("--init-box: ")
            continue
        parsed += 1
        assert box.shape == (4,) and box.dtype == np.float64
    assert 100 < parsed < 2000, "both clean boxes and refusals are exercised"
