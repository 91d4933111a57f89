"""Caches are verified before use (issue 31): a compiled graph damaged on disk is never imported (OpenVINO
tracked 100 px off with one), it is recompiled with one message; concurrent starts on a fresh cache all
succeed; entries made from another graph, precision or library are rebuilt quietly."""

import logging
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.sequences import moving_target_sequence
from tomp_deploy.runtime.cache_files import MAGIC, read_entry, write_entry
from tomp_deploy.runtime.driver import track_boxes
from tomp_deploy.runtime.manifests.export import COMPILE_CACHE_FOLDER

MADE_FROM = {"graph": "predictor", "onnx_sha256": "ab" * 32, "library": "x 1.0"}


def damaged_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "tomp_deploy" and "damaged" in r.getMessage()]


def test_an_entry_reads_back_only_intact_and_made_from_the_same_things(tmp_path, caplog):
    path = tmp_path / "predictor.blob"
    content = np.random.default_rng(0).bytes(50_000)
    assert write_entry(path, content, MADE_FROM)
    assert read_entry(path, MADE_FROM) == content
    assert read_entry(path, {**MADE_FROM, "onnx_sha256": "cd" * 32}) is None
    assert read_entry(tmp_path / "absent.blob", MADE_FROM) is None
    assert not damaged_warnings(caplog)

    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = bytes(4096)  # the header stays intact
    for damaged in (bytes(data), path.read_bytes()[:-100], b"", MAGIC + b"{not json\n" + content, content):
        path.write_bytes(damaged)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="tomp_deploy"):
            assert read_entry(path, MADE_FROM) is None
        assert len(damaged_warnings(caplog)) == 1, caplog.records


def test_a_cache_that_cannot_be_written_is_skipped_with_a_note(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="tomp_deploy"):
        assert not write_entry(tmp_path / "missing-folder" / "x.blob", b"data", MADE_FROM)
    assert "cannot be written" in caplog.text
    assert not any((tmp_path).rglob("*.tmp"))


ov = pytest.importorskip("openvino", reason="the openvino backend needs the 'openvino' extra: pip install -e '.[openvino]'")

from tomp_deploy.runtime.backends.openvino_backend import OpenVinoBackend  # noqa: E402 (after the skip)


@pytest.fixture
def fresh_export(shipped_export, tmp_path):
    copy = tmp_path / "export"
    shutil.copytree(shipped_export, copy, ignore=shutil.ignore_patterns(COMPILE_CACHE_FOLDER))
    return copy


def tracked(export, sequence) -> np.ndarray:
    images, boxes = sequence
    with OpenVinoBackend(export, precision="fp32") as backend:
        return track_boxes(backend, images, boxes[0])


def test_a_damaged_compiled_graph_is_recompiled_and_never_tracks(fresh_export, caplog):
    sequence = moving_target_sequence(frames=12)
    expected = tracked(fresh_export, sequence)
    blob = fresh_export / COMPILE_CACHE_FOLDER / "fp32" / "predictor.blob"
    data = bytearray(blob.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = bytes(b ^ 0xFF for b in data[middle : middle + 4096])
    blob.write_bytes(bytes(data))

    with caplog.at_level(logging.WARNING, logger="tomp_deploy"):
        again = tracked(fresh_export, sequence)
    np.testing.assert_array_equal(again, expected)
    assert len(damaged_warnings(caplog)) == 1 and "predictor.blob" in caplog.text

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tomp_deploy"):
        np.testing.assert_array_equal(tracked(fresh_export, sequence), expected)
    assert not damaged_warnings(caplog)  # said once: the entry was replaced by an intact one


def test_concurrent_starts_on_a_fresh_cache_all_succeed(fresh_export):
    script = (
        "import sys; from tomp_deploy.runtime.backends.openvino_backend import OpenVinoBackend; "
        "OpenVinoBackend(sys.argv[1], precision='fp32').close()"
    )
    starts = [
        subprocess.Popen([sys.executable, "-c", script, str(fresh_export)], stderr=subprocess.PIPE, text=True) for _ in range(4)
    ]
    failures = [process.stderr.read() for process in starts if process.wait() != 0]
    assert not failures, failures[0]
    cache = fresh_export / COMPILE_CACHE_FOLDER / "fp32"
    assert sorted(p.name for p in cache.iterdir()) == ["backbone.blob", "head.blob", "predictor.blob"]
