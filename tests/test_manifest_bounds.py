"""Export and engine manifests are read as hostile input (issue 31): every file they name stays inside
their folder, every field is checked for type and range with an error naming it, and their size and
nesting are bounded."""

import json
import shutil

import pytest

from tomp_deploy import ToMPError
from tomp_deploy.runtime.manifests.engine import EngineManifest
from tomp_deploy.runtime.manifests.export import read_export, read_export_manifest
from tomp_deploy.runtime.manifests.json_files import MAX_MANIFEST_BYTES


@pytest.fixture
def export(shipped_export, tmp_path):
    folder = tmp_path / "export"
    shutil.copytree(shipped_export, folder, ignore=shutil.ignore_patterns(".*"))
    return folder


def edit(folder, change) -> None:
    path = folder / "model.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "name, message",
    [
        ("/etc/passwd", "not a file name inside its folder"),
        ("../outside.onnx", "not a file name inside its folder"),
        ("sub/head.onnx", "not a file name inside its folder"),
        ("..", "not a file name inside its folder"),
        (7, "graphs.head.file = 7 is not str"),
    ],
)
def test_graph_names_that_leave_the_folder_are_refused(export, name, message):
    edit(export, lambda manifest: manifest["graphs"]["head"].update(file=name))
    with pytest.raises(ToMPError, match=message):
        read_export(export)


def test_a_graph_that_is_a_link_out_of_the_folder_is_refused(export, tmp_path):
    """Even with the hash of the file it leads to: another model's graph would load."""
    outside = tmp_path / "elsewhere.onnx"
    shutil.copy(export / "head.onnx", outside)
    (export / "head.onnx").unlink()
    (export / "head.onnx").symlink_to(outside)
    with pytest.raises(ToMPError, match="leads out of"):
        read_export(export)


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda m: m.update(max_batch=0), "max_batch = 0 is outside 1..64"),
        (lambda m: m.update(max_batch=-5), "max_batch = -5"),
        (lambda m: m.update(max_batch=True), "max_batch = True is not int"),
        (lambda m: m.update(precision="fp4"), "precision = 'fp4' is not one of fp32, fp16, int8"),
        (lambda m: m.update(opset="18"), "opset = '18' is not int"),
        (lambda m: m.update(version="2"), "version 2"),
        (lambda m: m["tracker"].update(conf_ths=float("nan")), "conf_ths = nan must be a finite number"),
        (lambda m: m["tracker"].update(target_not_found_threshold=float("inf")), "= inf must be a finite number"),
        (lambda m: m["tracker"].update(search_area_rescaling_at_occlusion=1), "must be true or false"),
        (lambda m: m["graphs"]["head"].update(fp16_weight_fraction=3), "fp16_weight_fraction = 3 is outside"),
        (lambda m: m["graphs"].update(extra=m["graphs"]["head"]), "besides backbone, predictor, head"),
    ],
)
def test_fields_are_checked_by_type_and_range(export, change, field):
    edit(export, change)
    with pytest.raises(ToMPError) as error:
        read_export_manifest(export)
    assert field in str(error.value) and "export the model again" in str(error.value)


def test_a_manifest_nested_100000_deep_or_too_large_is_refused(export):
    (export / "model.json").write_text('{"format": "tomp-deploy-onnx", "version": 2, "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ToMPError, match="nested deeper than a manifest ever is"):
        read_export_manifest(export)
    with open(export / "model.json", "w") as file:
        file.truncate(MAX_MANIFEST_BYTES + 1)
    with pytest.raises(ToMPError, match="a manifest is at most 16 MiB"):
        read_export_manifest(export)


ENGINE_FIELDS = {
    "library": "tensorrt-rtx",
    "library_version": "1.7.1",
    "precision": "fp16",
    "onnx_sha256": {"backbone": "a", "predictor": "b", "head": "c"},
    "max_batch": 4,
}


@pytest.mark.parametrize(
    "change, field",
    [
        ({"library": "tensorflow"}, "library = 'tensorflow' is not one of"),
        ({"precision": "fp4"}, "precision = 'fp4'"),
        ({"max_batch": 0}, "max_batch = 0 is outside 1..64"),
        ({"onnx_sha256": {"backbone": "a"}}, "onnx_sha256.predictor = None is not str"),
        ({"engine_bytes": {"head": -1}}, "engine_bytes.head = -1"),
        ({"library_version": 11}, "library_version = 11 is not str"),
    ],
)
def test_engine_manifest_fields_are_checked(tmp_path, change, field):
    EngineManifest(**ENGINE_FIELDS).write(tmp_path)
    assert EngineManifest.read(tmp_path).max_batch == 4
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest.update(change)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ToMPError, match="rebuild the engines") as error:
        EngineManifest.read(tmp_path)
    assert field in str(error.value)
