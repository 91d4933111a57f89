"""Which backend a command runs and what it loads: the shipped model by name in every entry point (its export
made once into the user cache, checked, remade when damaged), the one default-backend rule, and the errors
for a model form the backend does not load or a backend that does not exist."""

import dataclasses
import importlib.util
import json
import re
import shutil

import numpy as np
import pytest
import torch

from tests.cli import run_cli
from tests.seeded import seeded_model
from tests.sequences import moving_target_sequence
from tests.test_track_cli import write_lasot_sequence
from tomp_deploy import load_model
from tomp_deploy.model import save_checkpoint
from tomp_deploy.pipeline import ModelForms, model_for_backend
from tomp_deploy.runtime.backends import default_backend, open_backend
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.geometry import iou
from tomp_deploy.runtime.manifests.engine import ENGINE_MANIFEST_FILE
from tomp_deploy.runtime.manifests.export import read_export
from tomp_deploy.runtime.manifests.json_files import file_sha256
from tomp_deploy.runtime.shipped import resolve_model

OPENVINO = importlib.util.find_spec("openvino") is not None


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """The image folder of a LaSOT-layout dataset of one sequence."""
    return write_lasot_sequence(tmp_path_factory.mktemp("video"), *moving_target_sequence(0, 8))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_checkpoint(seeded_model("tiny", 2, 0.6, True, 0.2), tmp_path_factory.mktemp("model") / "seeded.pt")


def tracked(video, tmp_path, *options) -> tuple[np.ndarray, str]:
    output = tmp_path / f"boxes{len(list(tmp_path.iterdir()))}.txt"
    result = run_cli("track", video, "--model", "tiny", "--output", output, *options)
    assert result.returncode == 0, result.stderr
    return np.loadtxt(output, delimiter=","), result.stdout


def test_load_model_takes_the_shipped_name():
    by_name, by_path = load_model("tiny"), load_model(resolve_model("tiny"))
    assert by_name.config == by_path.config
    for (name, a), b in zip(by_name.state_dict().items(), by_path.state_dict().values()):
        assert torch.equal(a, b), name


def test_track_runs_the_shipped_model_on_every_cpu_backend(video, tmp_path):
    reference, said = tracked(video, tmp_path, "--backend", "torch")
    assert "backend:" not in said  # chosen, not defaulted
    onnxruntime, _ = tracked(video, tmp_path, "--backend", "onnxruntime")
    assert iou(reference, onnxruntime).min() > 0.99
    if OPENVINO:
        openvino, _ = tracked(video, tmp_path, "--backend", "openvino", "--precision", "fp32")
        assert iou(reference, openvino).min() > 0.99


def test_the_default_backend_is_said_and_follows_one_rule(video, tmp_path, checkpoint):
    _, said = tracked(video, tmp_path)
    assert "backend: onnxruntime (the fastest torch-free backend on the CPU" in said
    result = run_cli("track", video, "--model", checkpoint, "--output", tmp_path / "c.txt")
    assert result.returncode == 0 and "backend: torch (a checkpoint file runs on the torch backends" in result.stdout
    assert default_backend("tiny")[0] == "onnxruntime"
    assert default_backend(checkpoint)[0] == "torch" and default_backend(checkpoint, "cuda")[0] == "torch-cuda"


def test_the_cached_export_is_made_once_and_remade_when_damaged(user_cache):
    export = model_for_backend("tiny", "onnxruntime")
    assert export.is_relative_to(user_cache) and file_sha256(resolve_model("tiny"))[:16] in export.parent.name
    graph = export / "head.onnx"
    made = graph.stat().st_mtime_ns
    assert model_for_backend("tiny", "openvino") == export and graph.stat().st_mtime_ns == made
    intact = graph.read_bytes()
    graph.write_bytes(intact[:-64] + bytes(64))
    assert model_for_backend("tiny", "onnxruntime") == export
    assert graph.read_bytes() == intact
    with open_backend("onnxruntime", export) as backend:
        assert backend.config == load_model("tiny").config


@pytest.mark.slow  # 20 s: three whole commands; the default suite keeps track, trax and the Python entry points
def test_eval_bench_and_parity_take_the_shipped_name(video, tmp_path):
    dataset = video.parent.parent.parent
    result = run_cli(
        "eval", "--dataset-root", dataset, "--model", "tiny", "--results", tmp_path / "results", "--json", tmp_path / "s.json"
    )
    assert result.returncode == 0, result.stderr
    assert "backend: onnxruntime" in result.stdout and json.loads((tmp_path / "s.json").read_text())
    result = run_cli("parity", "torch:tiny", "onnxruntime:tiny", "--sequence", video, "--rtol", "1e-3", "--min-iou", "0.99")
    assert result.returncode == 0, result.stdout + result.stderr
    result = run_cli(
        "bench", "--model", "tiny", "--backends", "torch,onnxruntime", "--dataset-root", dataset, "--out", tmp_path / "bench"
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "bench" / "bench.json").read_text())["backends"]
    assert {name for name, row in rows.items() if row["status"] == "ok"} == {"torch", "onnxruntime"}


def test_a_checkpoint_given_to_an_export_backend_names_the_backend_and_the_conversion(checkpoint):
    with pytest.raises(ToMPError) as error:
        open_backend("onnxruntime", checkpoint)
    message = str(error.value)
    assert "is a checkpoint file, which --backend torch or torch-cuda runs" in message
    assert f"tomp-deploy export {checkpoint} --out" in message
    with pytest.raises(ToMPError, match=r"tomp-deploy export .* --precision fp16 && tomp-deploy build"):
        open_backend("tensorrt", checkpoint)


def test_an_export_given_to_torch_names_onnxruntime_and_openvino(shipped_export):
    with pytest.raises(
        ToMPError,
        match=r"is an export folder, which --backend onnxruntime or openvino runs; the torch "
        r"backend loads a checkpoint file.*names it",
    ):
        open_backend("torch", shipped_export)


def test_an_engine_folder_given_to_onnxruntime_names_tensorrt(tmp_path):
    (tmp_path / ENGINE_MANIFEST_FILE).write_text("{}")
    with pytest.raises(ToMPError, match=r"is an engine folder, which --backend tensorrt runs"):
        open_backend("onnxruntime", tmp_path)


def test_the_shipped_name_in_python_says_how_to_get_its_export():
    with pytest.raises(ToMPError, match=r"model_for_backend\('tiny', 'onnxruntime'\)"):
        open_backend("onnxruntime", "tiny")
    with open_backend("torch", "tiny") as backend:
        assert backend.config == load_model("tiny").config


def test_an_unknown_backend_lists_the_known_and_the_installed(video):
    result = run_cli("track", video, "--model", "tiny", "--backend", "tensorflow")
    assert result.returncode == 2
    listed = re.search(r"Unknown backend 'tensorflow'; the backends are (.*), of which (.*) are installed here", result.stderr)
    assert listed, result.stderr
    assert set(listed[1].split(", ")) == {"torch", "onnxruntime", "openvino", "torch-cuda", "tensorrt"}
    assert {"torch", "onnxruntime", "openvino"} <= set(listed[2].split(", "))


def test_a_file_named_like_the_shipped_model_is_the_users(tmp_path, tiny_model, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_checkpoint(tiny_model, tmp_path / "tiny")
    assert model_for_backend("tiny", "torch").resolve() == tmp_path / "tiny"
    with pytest.raises(ToMPError, match="tiny is a checkpoint file"):
        model_for_backend("tiny", "onnxruntime")


@pytest.mark.slow  # 23 s: two exports remade side by side; the cached export's checks stay in the default suite
def test_model_forms_reuse_intact_exports_and_remake_damaged_ones_side_by_side(shipped_exports, tmp_path):
    """`bench` and `demo` keep their exports in a work folder: an intact export of the same checkpoint at
    the same precision is taken as it is; damaged ones are made again, the FP16 one in a process of its own
    while this process makes the FP32 one."""
    work = tmp_path / "work"
    for name in ("export", "export-fp16"):
        shutil.copytree(shipped_exports[0].parent / name, work / name)
    forms = ModelForms(checkpoint=resolve_model("tiny"), work=work)
    written = {path: path.stat().st_mtime_ns for path in work.rglob("*.onnx")}
    said: list[str] = []
    forms.make_exports(["fp32", "fp16"], said.append)
    assert said == [] and written == {path: path.stat().st_mtime_ns for path in work.rglob("*.onnx")}
    assert forms.export_folder() == work / "export"
    assert not forms._made_here(work / "export", "fp16"), "nor at another precision"
    other = ModelForms(checkpoint=resolve_model("tiny"), work=work)
    other.checkpoint_sha256 = "0" * 64
    assert not other._made_here(work / "export"), "an export of another checkpoint is not taken"
    stale = ModelForms(checkpoint=resolve_model("tiny"), work=work)
    stale.checkpoint_tracker = dataclasses.replace(forms.checkpoint_tracker, lt_calibration_bias=-1.0)
    assert not stale._made_here(work / "export"), "nor one recording other tracker parameters (an older release's defaults)"

    for name in ("export", "export-fp16"):
        (work / name / "head.onnx").write_bytes(b"damaged")
    forms.make_exports(["fp32", "fp16"], said.append)
    assert said == ["exporting the checkpoint to ONNX (fp32)"], "the FP16 export is made in another process"
    assert [read_export(work / name).manifest.precision for name in ("export", "export-fp16")] == ["fp32", "fp16"]
    assert read_export(work / "export").manifest.checkpoint.sha256 == file_sha256(resolve_model("tiny"))
