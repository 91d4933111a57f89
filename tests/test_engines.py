"""Engine-building logic that needs no TensorRT: profiles, precision pinning, buffers, manifests, and
the errors of a machine without TensorRT. Tests that build engines are marked `tensorrt`."""

import dataclasses
import importlib.util
import subprocess
import sys

import pytest

from engines.plan import fp32_layers, profile_shapes
from export.onnx_export import export_model
from tests.seeded import seeded_model
from tomp_deploy import ToMPError
from tomp_deploy.contract import TensorSpec, graph_io
from tomp_deploy.engine_manifest import EngineManifest, EngineTarget, EngineTensor, check_engines, io_mismatches, mismatches
from tomp_deploy.export_manifest import read_export


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export") / "tiny"
    export_model(seeded_model("tiny", 2), folder)
    return read_export(folder)


def test_profiles_from_model_json(exported):
    profiles = profile_shapes(exported, max_batch=4)
    assert profiles["backbone"] == {"image": ((1, 3, 288, 288), (1, 3, 288, 288), (4, 3, 288, 288))}
    assert profiles["predictor"]["key_padding_mask"] == ((2, 972), (2, 972), (2, 972))
    assert profiles["predictor"]["train_feat"][2] == (2, 64, 18, 18)
    assert profiles["head"]["cls_filter"] == ((1, 64), (1, 64), (1, 64))
    with pytest.raises(ToMPError, match="--max-batch 65 is outside 1..64"):
        profile_shapes(exported, max_batch=65)
    with pytest.raises(ToMPError, match="outside"):
        profile_shapes(exported, max_batch=0)


def test_precision_pinning_decisions():
    layers = [("ln1", "NORMALIZATION"), ("mean", "REDUCE"), ("attn", "SOFTMAX"), ("fc", "MATRIX_MULTIPLY"),
              ("conv", "CONVOLUTION"), ("exp", "UNARY")]
    assert fp32_layers(layers, "fp16") == ["ln1", "mean", "attn"]
    assert fp32_layers(layers, "fp32") == []
    with pytest.raises(ToMPError, match="--precision"):
        fp32_layers(layers, "int8")


def test_buffer_sizes():
    assert TensorSpec("image", ("batch", 3, 288, 288)).nbytes(4) == 4 * 3 * 288 * 288 * 4
    assert TensorSpec("key_padding_mask", (2, 972), "bool").nbytes(4) == 2 * 972
    assert TensorSpec("train_feat", (2, 256, 18, 18)).nbytes(8) == 2 * 256 * 18 * 18 * 4


def manifest() -> EngineManifest:
    return EngineManifest("10.3.0", "NVIDIA GeForce RTX 4090", "8.9", "fp16",
                          {"backbone": "a", "predictor": "b", "head": "c"}, {"max_batch": 4}, "2026-11-25T00:00:00")


def test_manifest_round_trip(tmp_path):
    manifest().write(tmp_path)
    assert EngineManifest.read(tmp_path) == manifest()


def test_manifest_mismatches():
    here = EngineTarget("10.3.0", "NVIDIA GeForce RTX 4090", "8.9")
    assert mismatches(manifest(), here, {"backbone": "a", "predictor": "b", "head": "c"}) == []
    assert mismatches(manifest(), EngineTarget("10.5.0", here.gpu_name, "8.9")) == [
        "built with TensorRT 10.3.0, this machine has TensorRT 10.5.0"]
    assert "compute capability 8.9" in mismatches(manifest(), EngineTarget("10.3.0", "NVIDIA H100", "9.0"))[0]
    assert mismatches(manifest(), EngineTarget("10.3.0", "NVIDIA RTX 6000 Ada", "8.9")) == [
        "built on a NVIDIA GeForce RTX 4090, this GPU is a NVIDIA RTX 6000 Ada"]
    assert mismatches(manifest(), here, {"backbone": "a", "predictor": "x", "head": "c"}) == [
        "the predictor engine was not built from this export's predictor.onnx (hash differs)"]
    with pytest.raises(ToMPError, match="Rebuild them on this machine: tomp-deploy build"):
        check_engines(manifest(), EngineTarget("10.5.0", "NVIDIA H100", "9.0"))


def test_manifest_read_errors(tmp_path):
    with pytest.raises(ToMPError, match="manifest.json is missing"):
        EngineManifest.read(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ToMPError, match="not valid JSON"):
        EngineManifest.read(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "something-else", "version": 1}')
    with pytest.raises(ToMPError, match="not a tomp-deploy engine manifest"):
        EngineManifest.read(tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_build_without_tensorrt_exits_2_naming_the_package(exported, tmp_path):
    result = subprocess.run([sys.executable, "-m", "tomp_deploy", "build", str(exported.folder), "--out",
                             str(tmp_path / "engines")], capture_output=True, text=True)
    assert result.returncode == 2
    assert "'tensorrt' is not installed" in result.stderr and "tomp-deploy[tensorrt]" in result.stderr


def engine_tensors(config, graph):
    inputs, outputs = graph_io(config)[graph]
    return [EngineTensor(s.name, is_input, tuple(-1 if d == "batch" else d for d in s.shape), s.dtype)
            for specs, is_input in ((inputs, True), (outputs, False)) for s in specs]


def test_engine_io_is_checked_against_the_contract(exported):
    config = exported.config
    inputs, outputs = graph_io(config)["predictor"]
    assert io_mismatches("predictor", inputs, outputs, engine_tensors(config, "predictor")) == []
    assert io_mismatches("backbone", *graph_io(config)["backbone"], engine_tensors(config, "backbone")) == []

    tensors = engine_tensors(config, "predictor")
    tensors[0] = dataclasses.replace(tensors[0], dtype="float16")
    tensors[3] = dataclasses.replace(tensors[3], is_input=False)
    tensors[4] = dataclasses.replace(tensors[4], name="mask")
    tensors[5] = dataclasses.replace(tensors[5], shape=(2, 64))
    assert io_mismatches("predictor", inputs, outputs, tensors) == [
        "predictor engine lacks the tensor 'key_padding_mask'",
        "predictor engine has an unexpected tensor 'mask'",
        "predictor engine's 'train_feat' is float16, the contract's float32",
        "predictor engine's 'test_feat' is an output, the contract's an input",
        "predictor engine's 'cls_filter' has shape (2, 64), the contract's (1, 64)",
    ]
    static_batch = engine_tensors(config, "backbone")
    static_batch[0] = dataclasses.replace(static_batch[0], shape=(1, 3, 288, 288))
    assert io_mismatches("backbone", *graph_io(config)["backbone"], static_batch) == [
        "backbone engine's 'image' has shape (1, 3, 288, 288), the contract's (-1, 3, 288, 288)"]
