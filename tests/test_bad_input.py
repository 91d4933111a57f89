"""Bad input and faults, as an attacker or a careless user would cause them: each is one `error:` line,
exit code 2, no traceback, and nothing a user had is lost (issue 16's findings, one test each)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.cli import error_message, run_cli
from tests.reference_checkpoints import write_reference_checkpoint
from tomp_deploy import ToMPError
from tomp_deploy.evaluation.datasets import open_dataset
from tomp_deploy.evaluation.synth import generate_benchmark
from tomp_deploy.model import load_model, save_checkpoint
from tomp_deploy.runtime.shipped import resolve_model


def assert_clean_error(result: subprocess.CompletedProcess, *phrases: str) -> None:
    assert result.returncode == 2, result.stderr
    message = " ".join(error_message(result.stderr).split())
    for phrase in phrases:
        assert phrase in message, (phrase, message)


@pytest.fixture(scope="module")
def sequence_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    generate_benchmark(root, sequences=1, frames=6, seed=3)
    return open_dataset(root, "lasot")[0].frames[0].parent


@pytest.fixture(scope="module")
def dataset(sequence_folder) -> Path:
    return sequence_folder.parents[2]


def test_a_checkpoint_damaged_in_the_middle_is_refused(tmp_path):
    damaged = tmp_path / "tiny.pt"
    shutil.copy(resolve_model("tiny"), damaged)
    with open(damaged, "r+b") as f:
        f.seek(damaged.stat().st_size // 2)
        f.write(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ToMPError, match="fails its CRC check"):
        load_model(damaged)
    for command in (["inspect", damaged], ["export", damaged, "--out", tmp_path / "export"]):
        assert_clean_error(run_cli(*command), "is damaged")


def test_nan_weights_are_refused(tmp_path):
    model = load_model(resolve_model("tiny"))
    with __import__("torch").no_grad():
        model.head.classifier.linear.weight[0, 0] = float("nan")
    path = save_checkpoint(model, tmp_path / "nan.pt")
    with pytest.raises(ToMPError, match="NaN or infinite weights \\(head.classifier.linear.weight"):
        load_model(path)


def test_a_small_file_cannot_take_the_machine(tmp_path):
    """A zip of compressed zeros, and a tiny reference checkpoint declaring a huge network: both refused
    before anything large is allocated."""
    import resource
    import zipfile

    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("archive/data.pkl", "w") as f:
        for _ in range(256):
            f.write(bytes(1 << 20))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ToMPError, match="would unpack to 0.3 GB"):
        load_model(bomb)
    declared = write_reference_checkpoint(
        tmp_path / "declared.pth.tar", state_dict={}, constructor_kwds={"dim_feedforward": 60000, "num_encoder_layers": 60}
    )
    assert declared.stat().st_size < 10_000
    with pytest.raises(ToMPError, match="missing"):
        load_model(declared)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000, "KiB grown while refusing"


@pytest.mark.parametrize(
    "constructor,message",
    [
        ({"nhead": "eight"}, "not of the reference's types"),
        ({"nhead": 0}, "num_heads = 0 is not a whole number in 1..64"),
        ({"dim_feedforward": 200000}, "dim_feedforward = 200000"),
    ],
)
def test_forged_reference_constructors(tmp_path, constructor, message):
    path = write_reference_checkpoint(tmp_path / "forged.pth.tar", state_dict={}, constructor_kwds=constructor)
    assert_clean_error(run_cli("inspect", path), message)


def test_a_constructor_nested_20000_deep(tmp_path):
    nested = current = {}
    for _ in range(20000):
        current["a"] = {}
        current = current["a"]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)
    try:
        path = write_reference_checkpoint(tmp_path / "deep.pth.tar", state_dict={}, constructor_kwds={"extra": nested})
    finally:
        sys.setrecursionlimit(limit)
    assert_clean_error(run_cli("inspect", path), "do not fit the resnet50 ToMP architecture")


def test_legacy_format_is_named(tmp_path):
    import pickle

    legacy = tmp_path / "old.pth"
    legacy.write_bytes(pickle.dumps({"net": {}}, protocol=2))
    assert_clean_error(run_cli("inspect", legacy), "legacy (pre-1.6, non-zip) format")


def test_eval_never_resumes_another_models_results(dataset, tmp_path):
    """Two different checkpoints both called latest.pt: the second must not take over the first's boxes."""
    first = save_checkpoint(load_model(resolve_model("tiny")), tmp_path / "a" / "latest.pt")
    from tests.seeded import seeded_model

    second = save_checkpoint(seeded_model("tiny", 2), tmp_path / "b" / "latest.pt")
    results = tmp_path / "results"
    assert run_cli("eval", "--dataset-root", dataset, "--model", first, "--results", results).returncode == 0
    assert json.loads((results / "run.json").read_text())["model"] == str(first)
    assert_clean_error(
        run_cli("eval", "--dataset-root", dataset, "--model", second, "--results", results),
        "holds results of another run (its model_sha256 differ",
    )
    assert_clean_error(
        run_cli("eval", "--dataset-root", dataset, "--model", first, "--results", results, "--tracker-param", "conf_ths=0.5"),
        "its tracker_overrides differ",
    )
    defaults = [run_cli("eval", "--dataset-root", dataset, "--model", model, cwd=tmp_path) for model in (first, second)]
    assert all(result.returncode == 0 for result in defaults), [r.stderr for r in defaults]
    assert len(list((tmp_path / "results").glob("latest_*_torch"))) == 2


@pytest.mark.parametrize(
    "case",
    [
        pytest.param("huge_box", marks=pytest.mark.slow),  # 17 s: the tracker's crop of a box 4x the frame
        "output_is_folder",
        "output_under_a_file",
        "output_unwritable",
        "device",
        "threads",
    ],
)
def test_track_input_errors(sequence_folder, tmp_path, case, shipped_export):
    (tmp_path / "file").write_text("")
    arguments = {
        "huge_box": (["--init-box", "10,10,100000,100000"], "is more than 4 times the"),
        "output_is_folder": (["--output", tmp_path], "is a folder; give a file name"),
        "output_under_a_file": (["--output", tmp_path / "file" / "boxes.txt"], "is a file, not a folder"),
        "output_unwritable": (["--output", "/proc/boxes.txt"], "/proc"),
        "device": (["--device", "banana"], "'banana' is not a device"),
        "threads": (["--backend", "onnxruntime", "--threads", "0"], "--threads 0"),
    }
    extra, message = arguments[case]
    model = shipped_export if case == "threads" else "tiny"
    assert_clean_error(run_cli("track", sequence_folder, "--model", model, *extra), message)


def test_nan_first_box_names_the_sequence(dataset, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(dataset, copy)
    groundtruth = next(copy.glob("*/*/groundtruth.txt"))
    lines = groundtruth.read_text().splitlines()
    groundtruth.write_text("\n".join(["nan,nan,nan,nan"] + lines[1:]) + "\n")
    assert_clean_error(
        run_cli("eval", "--dataset-root", copy, "--model", "tiny", "--results", tmp_path / "r"),
        f"Sequence {groundtruth.parent.name}:",
        "NaN",
    )


@pytest.mark.parametrize(
    "command",
    [
        ["eval", "--dataset-root", "{data}", "--model", "tiny", "--results", "{file}"],
        ["synth", "{file}", "--sequences", "1", "--frames", "3"],
        ["train", "--preset", "tiny", "--out", "{file}"],
        ["score", "--dataset-root", "{data}", "--results", "{folder}", "--json", "{folder}"],
        ["score", "--dataset-root", "{data}", "--results", "{folder}", "--json", "/proc/scores.json"],
    ],
)
def test_outputs_that_cannot_be_written(dataset, tmp_path, command):
    (tmp_path / "file").write_text("keep")
    folder = tmp_path / "folder"  # results that score: the ground truth itself
    folder.mkdir()
    for sequence in open_dataset(dataset, "lasot"):
        np.savetxt(folder / f"{sequence.name}.txt", sequence.ground_truth, fmt="%.2f", delimiter=",")
    values = {"data": dataset, "file": tmp_path / "file", "folder": folder}
    result = run_cli(*(part.format(**values) for part in command))
    assert_clean_error(result)
    assert (tmp_path / "file").read_text() == "keep"


def test_output_is_written_whole_and_never_clobbered_early(sequence_folder, tmp_path):
    boxes = tmp_path / "boxes.txt"
    boxes.write_text("earlier results\n")
    broken = tmp_path / "broken"
    shutil.copytree(sequence_folder, broken)
    next(iter(sorted(broken.iterdir()))).write_bytes(b"not an image")
    assert_clean_error(run_cli("track", broken, "--model", "tiny", "--init-box", "50,50,40,40", "--output", boxes), "Frame 0")
    assert boxes.read_text() == "earlier results\n", "a run that failed before its first frame keeps the old file"
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "tomp_deploy", "track", str(sequence_folder), "--model", "tiny", "--output", str(boxes)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    assert all(run.wait() == 0 for run in runs)
    lines = boxes.read_text().splitlines()
    assert len(lines) == 6 and all(len(line.split(",")) == 4 for line in lines)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_train_validates_before_writing_data(tmp_path):
    run = tmp_path / "run"
    assert_clean_error(
        run_cli("train", "--preset", "tiny", "--out", run, "--set", "batch_size=0"), "batch_size=0 (must be 1 or more)"
    )
    assert_clean_error(run_cli("train", "--preset", "tiny", "--out", run, "--init", tmp_path / "missing.pt"), "does not exist")
    assert_clean_error(run_cli("train", "--preset", "tiny", "--out", run, "--resume"), "holds no intact checkpoint")
    assert not (run / "synthetic-data").exists(), "no training data written for a run that cannot start"


def test_build_reads_the_export_before_asking_for_tensorrt(tmp_path):
    script = (
        "import sys; sys.modules['tensorrt'] = None; sys.modules['tensorrt_rtx'] = None; "
        "from tomp_deploy.cli import app; app(prog_name='tomp-deploy')"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, "build", str(tmp_path / "nothing"), "--out", str(tmp_path / "engines")],
        capture_output=True,
        text=True,
    )
    assert_clean_error(result, "is not an export folder")


@pytest.mark.parametrize(
    "edit",
    [
        lambda manifest: manifest.pop("model"),
        lambda manifest: manifest.pop("graphs"),
        lambda manifest: manifest.update(graphs=[1, 2]),
        lambda manifest: manifest.update(model={"num_heads": "many"}),
    ],
)
def test_damaged_model_json(tmp_path, edit, shipped_export):
    from tomp_deploy.runtime.manifests.export import read_export

    folder = tmp_path / "export"
    shutil.copytree(shipped_export, folder)
    manifest = json.loads((folder / "model.json").read_text())
    edit(manifest)
    (folder / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ToMPError, match="model.json"):
        read_export(folder)
    (folder / "model.json").write_text("[1, 2, 3]")
    with pytest.raises(ToMPError, match="is not a tomp-deploy export manifest"):
        read_export(folder)


def test_resume_falls_back_to_the_newest_intact_checkpoint_and_refuses_changed_settings(tmp_path):
    from tomp_deploy.train.config import preset
    from tomp_deploy.train.resume import changed_settings, resume_point

    run = tmp_path / "run"
    model = load_model(resolve_model("tiny"))
    config = preset("tiny")
    meta = {"train_config": json.loads(json.dumps(__import__("dataclasses").asdict(config)))}
    for epoch in (1, 2):
        training = {"epoch": epoch, "optimizer": {"state": {}, "param_groups": []}}
        save_checkpoint(model, run / "checkpoints" / f"epoch_{epoch:04d}.pt", meta, training)
    shutil.copy(run / "checkpoints" / "epoch_0002.pt", run / "latest.pt")
    with open(run / "latest.pt", "r+b") as f:
        f.truncate(os.path.getsize(run / "latest.pt") // 2)
    path, content, note = resume_point(run)
    assert path.name == "epoch_0002.pt" and content["training"]["epoch"] == 2
    assert note.startswith("latest.pt cannot be used") and "resuming from" in note
    __import__("torch").save({"weights": __import__("torch").zeros(3)}, run / "latest.pt")  # a foreign file
    path, _, note = resume_point(run)
    assert path.name == "epoch_0002.pt" and "not a tomp-deploy training checkpoint" in note
    changed = __import__("dataclasses").replace(config, lr_head=0.5, epochs=90)
    assert changed_settings(meta["train_config"], changed) == ["lr_head: 0.0001 -> 0.5"]
    result = run_cli("train", "--preset", "tiny", "--out", run, "--resume", "--set", "lr_head=0.5")
    assert_clean_error(result, "lr_head: 0.0001 -> 0.5", "drop those --set options")
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "latest.pt"], "refused before writing any data"


def test_a_full_device_keeps_the_boxes_written_so_far(sequence_folder, tmp_path):
    """The file-size limit makes the kernel refuse writes past 100 bytes, as a full device would."""
    import resource
    import signal

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))

    boxes = tmp_path / "boxes.txt"
    result = subprocess.run(
        [sys.executable, "-m", "tomp_deploy", "track", str(sequence_folder), "--model", "tiny", "--output", str(boxes)],
        capture_output=True,
        text=True,
        preexec_fn=limit_file_size,
    )
    assert_clean_error(result, "--output", "cannot write the boxes")
    kept = boxes.read_text().splitlines()
    assert 1 <= len(kept) < 6 and all(len(line.split(",")) == 4 for line in kept[:-1])
