"""Synthetic benchmark, `eval` with resume, `score` from result files, and their bad inputs."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.cli import run_cli, run_cli_process
from tests.seeded import seeded_model
from tomp_deploy import ToMPError
from tomp_deploy.evaluation.datasets import open_dataset
from tomp_deploy.evaluation.runner import evaluate
from tomp_deploy.evaluation.scoring import score_results
from tomp_deploy.evaluation.sequence_jobs import TrackerSetup
from tomp_deploy.evaluation.synth import ATTRIBUTES, generate_benchmark
from tomp_deploy.model import save_checkpoint


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    generate_benchmark(root, sequences=3, frames=12, seed=5)
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_checkpoint(seeded_model("tiny", 2, 0.6, True, 0.2), tmp_path_factory.mktemp("model") / "tiny.pt")


def test_synthetic_benchmark_is_deterministic_lasot(benchmark, tmp_path):
    generate_benchmark(tmp_path, sequences=3, frames=12, seed=5)
    for a, b in zip(sorted(benchmark.rglob("*.*")), sorted(tmp_path.rglob("*.*"))):
        assert a.relative_to(benchmark) == b.relative_to(tmp_path)
        assert a.read_bytes() == b.read_bytes()
    sequences = open_dataset(benchmark, "lasot")
    assert [s.name for s in sequences] == ["synthetic-1", "synthetic-2", "synthetic-3"]
    for sequence in sequences:
        assert len(sequence.frames) == 12 and set(sequence.attributes) <= set(ATTRIBUTES)
        assert (sequence.ground_truth[:, 2:] > 0).all()
    other = tmp_path / "other"
    generate_benchmark(other, sequences=1, frames=12, seed=6)
    assert (other / "synthetic" / "synthetic-1" / "groundtruth.txt").read_text() != (
        benchmark / "synthetic" / "synthetic-1" / "groundtruth.txt"
    ).read_text()


def test_eval_resumes_and_matches_a_fresh_score(benchmark, checkpoint, tmp_path):
    sequences = open_dataset(benchmark, "lasot")
    results = tmp_path / "results"

    class Interrupted(Exception):
        pass

    def stop_after_first(name):
        raise Interrupted(name)

    with pytest.raises(Interrupted):
        evaluate(sequences, TrackerSetup("torch", str(checkpoint)), results, on_sequence=stop_after_first)
    first = results / "synthetic-1.txt"
    assert first.is_file() and not (results / "synthetic-2.txt").exists()
    written = first.stat().st_mtime_ns

    json_path, plot_path = tmp_path / "eval.json", tmp_path / "eval.png"
    result = run_cli(
        "eval", "--dataset-root", benchmark, "--model", checkpoint, "--results", results, "--json", json_path, "--plot", plot_path
    )
    assert result.returncode == 0, result.stderr
    assert "resuming: 1 of 3" in result.stdout
    assert first.stat().st_mtime_ns == written  # the finished sequence was not tracked again
    assert all((results / f"synthetic-{k}_time.txt").is_file() for k in (1, 2, 3))
    assert plot_path.stat().st_size > 10_000

    fresh = tmp_path / "fresh.json"
    assert run_cli("score", "--dataset-root", benchmark, "--results", results, "--json", fresh).returncode == 0
    assert json.loads(json_path.read_text()) == json.loads(fresh.read_text())
    report = json.loads(fresh.read_text())
    assert report["overall"]["sequences"] == 3 and set(report["sequences"]) == {s.name for s in sequences}
    assert 0 <= report["overall"]["auc"] <= 100


def test_score_of_ground_truth_is_perfect(benchmark, tmp_path):
    for sequence in open_dataset(benchmark, "lasot"):
        np.savetxt(tmp_path / f"{sequence.name}.txt", sequence.ground_truth, fmt="%.2f", delimiter=",")
    score = score_results(open_dataset(benchmark, "lasot"), tmp_path)
    visible = np.mean([s.valid.mean() for s in open_dataset(benchmark, "lasot")])
    assert score.to_json()["overall"]["precision"] == pytest.approx(visible * 100)


def test_missing_results_are_reported(benchmark, tmp_path):
    sequences = open_dataset(benchmark, "lasot")
    np.savetxt(tmp_path / "synthetic-1.txt", sequences[0].ground_truth, delimiter=",")
    with pytest.raises(ToMPError, match="2 of 3 sequences have no results file.*synthetic-2, synthetic-3"):
        score_results(sequences, tmp_path)
    counted = score_results(sequences, tmp_path, missing="zero")
    assert counted.missing == ["synthetic-2", "synthetic-3"]
    assert counted.to_json()["sequences"]["synthetic-2"]["auc"] == 0.0
    result = run_cli("score", "--dataset-root", benchmark, "--results", tmp_path)
    assert result.returncode == 2 and "--missing zero" in result.stderr


def test_results_with_wrong_lines_name_the_file(benchmark, tmp_path):
    sequences = open_dataset(benchmark, "lasot")
    for sequence in sequences:
        np.savetxt(tmp_path / f"{sequence.name}.txt", sequence.ground_truth, delimiter=",")
    short = tmp_path / "synthetic-2.txt"
    short.write_text("\n".join(short.read_text().splitlines()[:-2]) + "\n")
    with pytest.raises(ToMPError, match="synthetic-2.txt: 10 boxes for the 12 frames"):
        score_results(sequences, tmp_path)
    short.write_text("1,2,3,4\n1,2,three,4\n")
    with pytest.raises(ToMPError, match="synthetic-2.txt line 2"):
        score_results(sequences, tmp_path)


def test_dataset_root_in_wrong_layout(tmp_path, checkpoint):
    (tmp_path / "frames").mkdir()
    result = run_cli("eval", "--dataset-root", tmp_path, "--model", checkpoint)
    assert result.returncode == 2 and "LaSOT layout" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster of two CPUs, which `eval --ray auto` in another process finds."""
    ray = pytest.importorskip("ray", reason="the Ray test needs the 'ray' extra: pip install -e '.[ray]'")
    ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow  # 26 s, a Ray cluster's start; the refusal tests keep `--ray` in the default suite
def test_eval_on_ray_writes_what_one_worker_writes(benchmark, checkpoint, tmp_path, ray_cluster, monkeypatch):
    """The eval processes are drivers of their own (this one holds the cluster). A Ray task of one CPU runs
    PyTorch on one thread (Ray sets OMP_NUM_THREADS), and the CPU's sums
    round differently with another thread count, so the one-worker run gets one thread too."""
    one_worker, on_ray = tmp_path / "one-worker", tmp_path / "ray"
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert run_cli_process("eval", "--dataset-root", benchmark, "--model", checkpoint, "--results", one_worker).returncode == 0
    monkeypatch.delenv("OMP_NUM_THREADS")
    result = run_cli_process("eval", "--dataset-root", benchmark, "--model", checkpoint, "--results", on_ray, "--ray", "auto")
    assert result.returncode == 0, result.stderr
    for sequence in open_dataset(benchmark, "lasot"):
        assert (on_ray / f"{sequence.name}.txt").read_bytes() == (one_worker / f"{sequence.name}.txt").read_bytes()
        assert len((on_ray / f"{sequence.name}_time.txt").read_text().splitlines()) == len(sequence.frames)
    assert (
        "resuming: 3 of 3"
        in run_cli_process(
            "eval", "--dataset-root", benchmark, "--model", checkpoint, "--results", on_ray, "--ray", "auto"
        ).stdout
    )


def test_eval_on_ray_reports_a_failing_task(benchmark, tmp_path, ray_cluster):
    from tomp_deploy.evaluation.ray_runner import RayCluster

    export = tmp_path / "not-an-export"
    export.mkdir()
    with RayCluster("auto") as cluster, pytest.raises(ToMPError, match="A Ray task failed: .*model.json"):
        evaluate(
            open_dataset(benchmark, "lasot"), TrackerSetup("onnxruntime", str(export)), tmp_path / "results", cluster=cluster
        )


def test_eval_on_ray_without_ray_says_what_to_install(benchmark, checkpoint, tmp_path, monkeypatch):
    from tomp_deploy.evaluation.ray_runner import RayCluster

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ToMPError, match=r"pip install -e '\.\[ray\]'"):
        RayCluster("auto")


@pytest.mark.parametrize("address,message", [("127.0.0.1:1", "nothing answers there"), ("nonsense", "is not 'auto'")])
def test_eval_on_ray_refuses_an_address_at_once(benchmark, checkpoint, tmp_path, address, message):
    pytest.importorskip("ray", reason="the Ray test needs the 'ray' extra: pip install -e '.[ray]'")
    result = run_cli_process(
        "eval", "--dataset-root", benchmark, "--model", checkpoint, "--results", tmp_path, "--ray", address
    )  # a driver of its own: this process may hold the test cluster
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_eval_on_ray_refuses_tasks_no_node_can_take(benchmark, checkpoint, tmp_path, ray_cluster):
    from tomp_deploy.evaluation.ray_runner import RayCluster

    with RayCluster("auto", cpus_per_task=3) as cluster, pytest.raises(ToMPError, match="largest node .* has 2"):
        evaluate(open_dataset(benchmark, "lasot"), TrackerSetup("torch", str(checkpoint)), tmp_path / "results", cluster=cluster)


def test_an_ipv6_address_in_brackets_is_an_address():
    from tomp_deploy.evaluation.ray_runner import _check_reachable

    with pytest.raises(ToMPError, match="nothing answers there"):
        _check_reachable("[::1]:1")


def test_a_broken_sequence_does_not_stop_the_others(benchmark, checkpoint, tmp_path):
    import shutil

    broken_root = tmp_path / "dataset"
    shutil.copytree(benchmark, broken_root)
    sequences = open_dataset(broken_root, "lasot")
    broken = sequences[0]
    broken.frames[2].write_bytes(b"not an image")
    results = tmp_path / "results"
    with pytest.raises(ToMPError, match=f"(?s)1 sequence\\(s\\) could not be tracked.*{broken.name}: Frame 2"):
        evaluate(sequences, TrackerSetup("torch", str(checkpoint)), results)
    for sequence in sequences[1:]:
        assert len((results / f"{sequence.name}.txt").read_text().splitlines()) == len(sequence.frames)
    assert not (results / f"{broken.name}.txt").exists()


@pytest.mark.parametrize("workers", [0, -3])
def test_workers_below_one_are_refused(benchmark, checkpoint, tmp_path, workers):
    result = run_cli(
        "eval", "--dataset-root", benchmark, "--model", checkpoint, "--results", tmp_path / "r", "--workers", workers
    )
    assert result.returncode == 2 and "--workers" in result.stderr, result.stderr
    with pytest.raises(ToMPError, match="--workers"):
        evaluate(open_dataset(benchmark, "lasot"), TrackerSetup("torch", str(checkpoint)), tmp_path / "r", workers)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_thread_counts_far_beyond_the_machine_are_refused(shipped_export, backend):
    import os

    from tomp_deploy.runtime.backends import BackendOptions, open_backend

    pytest.importorskip(backend)
    for threads in (100_000, 0):
        with pytest.raises(ToMPError, match=f"--threads {threads}: give a whole number from 1 to {4 * os.cpu_count()}"):
            open_backend(backend, shipped_export, BackendOptions(threads=threads))


def test_the_thread_budget_takes_what_a_scheduler_hands_the_process(monkeypatch):
    """Ray starts a task of one CPU with OMP_NUM_THREADS=1; every CPU backend must then run one thread,
    unless `--threads` says otherwise. Without a usable OMP_NUM_THREADS: the physical cores."""
    import os

    from tomp_deploy.runtime.backends.base import physical_cores, thread_budget

    allowed = len(os.sched_getaffinity(0))
    assert 1 <= physical_cores() <= allowed
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert (thread_budget(None), thread_budget(2)) == (1, 2)
    for unusable in ("0", "two", ""):
        monkeypatch.setenv("OMP_NUM_THREADS", unusable)
        assert thread_budget(None) == physical_cores()
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert thread_budget(None) == physical_cores()


def test_a_command_written_to_a_log_prints_its_progress_as_lines(tmp_path):
    result = run_cli("synth", tmp_path / "bench", "--sequences", "4", "--frames", "3")
    assert result.returncode == 0, result.stderr
    progress = [line.rsplit(",", 1)[0] for line in result.stderr.splitlines() if line.startswith("writing")]
    assert progress == [f"writing patches sequences: {n}/4 ({25 * n}%)" for n in range(1, 5)]
    assert "━" not in result.stdout + result.stderr
