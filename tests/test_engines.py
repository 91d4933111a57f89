"""Engine building: profiles, precision checks, manifests and compatibility, and real builds with TensorRT
for RTX (its ahead-of-time builder needs no GPU). Tests that run engines are in test_gpu_backends.py."""

import dataclasses
import importlib.util
import subprocess
import sys

import pytest

from tests.seeded import seeded_model
from tomp_deploy import ToMPError
from tomp_deploy.engines.builder import (
    RTX_PORTABLE_DEFAULT,
    BuildOptions,
    build_engines,
    network_inputs,
    network_layers,
    parse_network,
)
from tomp_deploy.engines.plan import precision_problems, profile_problems, profile_shapes
from tomp_deploy.export.onnx_export import export_model
from tomp_deploy.runtime.contract import GraphTensor, TensorSpec, graph_io, graph_io_problems
from tomp_deploy.runtime.manifests.engine import (
    ENGINE_VERSION,
    EngineManifest,
    EngineTarget,
    check_engines,
    mismatches,
)
from tomp_deploy.runtime.manifests.export import read_export, read_export_manifest

needs_rtx = pytest.mark.skipif(
    importlib.util.find_spec("tensorrt_rtx") is None,
    reason="TensorRT for RTX is not installed (pip install -e '.[tensorrt-rtx]')",
)


@pytest.fixture(scope="module")
def exported(tiny_export):
    return read_export(tiny_export[1])


@pytest.fixture(scope="module")
def exported_fp16(tiny_export_fp16):
    return read_export(tiny_export_fp16)


def test_profiles_from_model_json(exported):
    profiles = profile_shapes(exported, max_batch=4)
    assert profiles["backbone"] == {"image": ((1, 3, 288, 288), (1, 3, 288, 288), (4, 3, 288, 288))}
    assert profiles["predictor"]["key_padding_mask"] == ((1, 2, 972), (1, 2, 972), (4, 2, 972))
    assert profiles["predictor"]["train_feat"][2] == (4, 2, 64, 18, 18)
    assert profiles["head"]["cls_filter"] == ((1, 64), (1, 64), (4, 64))
    with pytest.raises(ToMPError, match="--max-batch 65 is outside 1..64"):
        profile_shapes(exported, max_batch=65)
    with pytest.raises(ToMPError, match="outside"):
        profile_shapes(exported, max_batch=0)


def test_profile_problems_by_hand():
    profile = {"train_feat": ((1, 2, 64), (1, 2, 64), (4, 2, 64)), "mask": ((1, 972), (1, 972), (4, 972))}
    assert profile_problems([("train_feat", (-1, 2, 64)), ("mask", (-1, 972))], profile) == []
    assert profile_problems([("train_feat", (1, 2, 64)), ("mask", (-1, 2, 972)), ("extra", (3,))], profile) == [
        "input 'train_feat' is 1 in dimension 0, the profile 1..4",  # a target batch exported static
        "input 'mask' has 3 dimensions, its profile 2",
        "input 'extra' has no optimisation profile",
    ]


def test_precision_problems_by_hand():
    layers = [
        ("ln", "NORMALIZATION", "FLOAT"),
        ("fc", "MATRIX_MULTIPLY", "HALF"),
        ("conv", "CONVOLUTION", "FLOAT"),
        ("soft", "SOFTMAX", "HALF"),
        ("relu", "ACTIVATION", "HALF"),
    ]
    assert precision_problems(layers, ["ln", "soft", "gone"], "fp16") == [
        "layer conv (CONVOLUTION) runs in FLOAT, not FP16",
        "layer soft (SOFTMAX) of an FP32 island runs in HALF",
        "the FP32 island node gone has no layer in the network",
    ]
    assert precision_problems([("ln", "NORMALIZATION", "FLOAT"), ("fc", "MATRIX_MULTIPLY", "FLOAT")], [], "fp32") == []
    assert precision_problems([("fc", "MATRIX_MULTIPLY", "HALF")], [], "fp32") == [
        "layer fc (MATRIX_MULTIPLY) of an FP32 export runs in FP16"
    ]


def test_buffer_sizes():
    assert TensorSpec("image", ("batch", 3, 288, 288)).nbytes(4) == 4 * 3 * 288 * 288 * 4
    assert TensorSpec("key_padding_mask", (2, 972), "bool").nbytes(4) == 2 * 972
    assert TensorSpec("train_feat", (2, 256, 18, 18)).nbytes(8) == 2 * 256 * 18 * 18 * 4


def manifest(**changes) -> EngineManifest:
    built = EngineManifest(
        "tensorrt",
        "10.3.0",
        "fp16",
        {"backbone": "a", "predictor": "b", "head": "c"},
        gpu_name="NVIDIA GeForce RTX 4090",
        compute_capability="8.9",
        max_batch=4,
        built_at="2026-11-25T00:00:00",
    )
    return dataclasses.replace(built, **changes)


def rtx_manifest(**changes) -> EngineManifest:
    fields = {
        "library": "tensorrt-rtx",
        "library_version": "1.7.1.116",
        "gpu_name": None,
        "compute_capability": None,
        "target_compute_capabilities": list(RTX_PORTABLE_DEFAULT),
        "build_options": {"portable_default": True},
    }
    return manifest(**{**fields, **changes})


def test_manifest_round_trip(tmp_path):
    for written in (manifest(), rtx_manifest()):
        written.write(tmp_path)
        assert EngineManifest.read(tmp_path) == written


def test_manifest_mismatches():
    here = EngineTarget("tensorrt", "10.3.0", "NVIDIA GeForce RTX 4090", "8.9")
    assert mismatches(manifest(), here, {"backbone": "a", "predictor": "b", "head": "c"}) == []
    assert mismatches(manifest(), dataclasses.replace(here, library_version="10.5.0")) == [
        "built with TensorRT 10.3.0, this runtime uses TensorRT 10.5.0"
    ]
    assert "compute capability 8.9" in mismatches(manifest(), EngineTarget("tensorrt", "10.3.0", "NVIDIA H100", "9.0"))[0]
    assert mismatches(manifest(), dataclasses.replace(here, gpu_name="NVIDIA RTX 6000 Ada")) == [
        "built on a NVIDIA GeForce RTX 4090, this GPU is a NVIDIA RTX 6000 Ada"
    ]
    assert mismatches(manifest(), here, {"backbone": "a", "predictor": "x", "head": "c"}) == [
        "the predictor engine was not built from this export's predictor.onnx (hash differs)"
    ]
    assert mismatches(manifest(), dataclasses.replace(here, library="tensorrt-rtx", library_version="1.7.1.116")) == [
        "built with TensorRT 10.3.0, this runtime uses TensorRT for RTX 1.7.1.116"
    ]
    with pytest.raises(ToMPError, match="Rebuild them for this machine: tomp-deploy build"):
        check_engines(manifest(), EngineTarget("tensorrt", "10.5.0", "NVIDIA H100", "9.0"))


def test_rtx_engines_run_on_the_compute_capabilities_they_target():
    rtx = EngineTarget("tensorrt-rtx", "1.7.1.116", "NVIDIA GeForce RTX 4090", "8.9")
    assert mismatches(rtx_manifest(), rtx) == []
    blackwell = dataclasses.replace(rtx, gpu_name="NVIDIA GeForce RTX 5090", compute_capability="12.0")
    assert mismatches(rtx_manifest(), blackwell) == []
    assert mismatches(rtx_manifest(), dataclasses.replace(rtx, compute_capability="12.1")) == [], "later ones too"
    assert mismatches(
        rtx_manifest(), dataclasses.replace(rtx, gpu_name="NVIDIA GeForce RTX 2080 Ti", compute_capability="7.5")
    ) == [
        "built for compute capabilities 8.0, 8.6, 8.9, 12.0, this GPU (NVIDIA GeForce RTX 2080 Ti) is 7.5; "
        "build with --compute-capability 7.5"
    ]
    only_turing = rtx_manifest(target_compute_capabilities=["7.5"], build_options={"portable_default": False})
    assert len(mismatches(only_turing, rtx)) == 1


def test_manifest_read_errors(tmp_path):
    with pytest.raises(ToMPError, match="manifest.json is missing"):
        EngineManifest.read(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ToMPError, match="not valid JSON"):
        EngineManifest.read(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "something-else", "version": 1}')
    with pytest.raises(ToMPError, match="not a tomp-deploy engine manifest"):
        EngineManifest.read(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "tomp-deploy-engines", "version": 1, "tensorrt": "10.3.0"}')
    with pytest.raises(
        ToMPError, match=f"of version 1, and this tomp-deploy reads version {ENGINE_VERSION}; rebuild the engines"
    ):
        EngineManifest.read(tmp_path)


def test_build_without_any_tensorrt_exits_2_naming_both_packages(exported, tmp_path):
    """Both libraries hidden from the interpreter, as on a machine that has neither."""
    script = (
        "import sys; sys.modules['tensorrt'] = None; sys.modules['tensorrt_rtx'] = None; "
        "from tomp_deploy.cli import app; app(prog_name='tomp-deploy')"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, "build", str(exported.folder), "--out", str(tmp_path / "e")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert "No TensorRT library is installed" in message
    assert "tomp-deploy[tensorrt-rtx]" in message and "GeForce RTX" in message
    assert "tomp-deploy[tensorrt]" in message and "data-centre GPUs" in message


@needs_rtx
@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_rtx_builds_real_engines_that_keep_the_exports_precision(exported, exported_fp16, tmp_path, precision):
    """A real TensorRT for RTX build, no GPU: the parsed networks keep the FP32 islands the export recorded
    (and run the convolutions and matrix products in FP16), the engines and manifest are written."""
    import tensorrt_rtx as trt

    export = exported_fp16 if precision == "fp16" else exported
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    for graph in ("backbone", "predictor", "head"):
        network, _parser = parse_network(trt, builder, logger, export.graph_path(graph))
        assert all(shape[0] == -1 for _, shape in network_inputs(network))  # a batch of crops or targets
        layers = network_layers(network)
        islands = export.manifest.graphs[graph].fp32_nodes
        types = {name: dtype for name, _, dtype in layers}
        assert all(types[node] == "FLOAT" for node in islands)
        heavy = [dtype for _, kind, dtype in layers if kind in ("CONVOLUTION", "MATRIX_MULTIPLY")]
        if precision == "fp16":
            assert islands and heavy.count("HALF") >= len(heavy) - sum(1 for n in islands if n in types)
            assert "HALF" in heavy
        else:
            assert not islands and set(types.values()) <= {"FLOAT", "BOOL", "INT32", "INT64"}
    built = build_engines(export.folder, tmp_path / "engines", BuildOptions(library="tensorrt-rtx", max_batch=2))
    assert (built.library, built.precision, built.gpu_name) == ("tensorrt-rtx", precision, None)
    assert built.max_batch == 2  # crops per backbone call, targets per predictor and head call
    assert built.target_compute_capabilities == list(RTX_PORTABLE_DEFAULT)
    assert built.onnx_sha256 == export.graph_hashes()
    for graph in ("backbone", "predictor", "head"):
        assert (tmp_path / "engines" / f"{graph}.engine").stat().st_size == built.engine_bytes[graph] > 0
    assert EngineManifest.read(tmp_path / "engines") == built
    assert read_export_manifest(tmp_path / "engines").manifest == export.manifest


@needs_rtx
def test_rtx_build_options_and_precision_requests(exported, exported_fp16, tmp_path):
    turing = build_engines(
        exported_fp16.folder,
        tmp_path / "turing",
        BuildOptions(library="tensorrt-rtx", compute_capabilities=("7.5",), max_batch=1),
    )
    assert turing.target_compute_capabilities == ["7.5"] and not turing.build_options["portable_default"]
    with pytest.raises(ToMPError, match="targets .*8.9"):
        build_engines(exported_fp16.folder, tmp_path / "x", BuildOptions(library="tensorrt-rtx", compute_capabilities=("6.1",)))
    with pytest.raises(ToMPError, match="TensorRT for RTX has no timing cache"):
        build_engines(exported_fp16.folder, tmp_path / "x", BuildOptions(library="tensorrt-rtx", timing_cache=tmp_path / "cache"))
    with pytest.raises(ToMPError, match="is an fp32 export.*--precision fp16"):
        build_engines(exported.folder, tmp_path / "x", BuildOptions(library="tensorrt-rtx", expected_precision="fp16"))


@needs_rtx
def test_build_command_reports_what_it_built(exported_fp16, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tomp_deploy",
            "build",
            str(exported_fp16.folder),
            "--out",
            str(tmp_path / "engines"),
            "--library",
            "tensorrt-rtx",
            "--max-batch",
            "2",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "built fp16 engines with TensorRT for RTX" in text and "8.0, 8.6, 8.9, 12.0" in text
    assert "for 1..2 crops and targets per call" in text


@needs_rtx
@pytest.mark.slow
def test_rtx_builds_tomp50_engines(tmp_path):
    network = seeded_model("tomp50", 1, 0.5, True, 0.2)
    for precision in ("fp16", "fp32"):
        export_model(network, tmp_path / precision, precision=precision)
        built = build_engines(tmp_path / precision, tmp_path / f"engines-{precision}", BuildOptions(library="tensorrt-rtx"))
        assert built.precision == precision and all(size > 0 for size in built.engine_bytes.values())


def engine_tensors(config, graph):
    inputs, outputs = graph_io(config)[graph]
    return [
        GraphTensor(s.name, is_input, s.symbolic, s.dtype)
        for specs, is_input in ((inputs, True), (outputs, False))
        for s in specs
    ]


def test_graph_io_is_checked_against_the_contract_by_name(exported):
    config = exported.config
    assert graph_io_problems(config, "predictor", engine_tensors(config, "predictor")) == []
    assert graph_io_problems(config, "backbone", engine_tensors(config, "backbone")) == []
    assert graph_io_problems(config, "head", engine_tensors(config, "head")[::-1]) == []  # order does not matter

    tensors = engine_tensors(config, "predictor")
    tensors[0] = dataclasses.replace(tensors[0], dtype="float16")
    tensors[3] = dataclasses.replace(tensors[3], is_input=False)
    tensors[4] = dataclasses.replace(tensors[4], name="mask")
    tensors[5] = dataclasses.replace(tensors[5], shape=(2, 64))
    assert graph_io_problems(config, "predictor", tensors) == [
        "predictor lacks the tensor 'key_padding_mask'",
        "predictor has an unexpected tensor 'mask'",
        "predictor's 'train_feat' is float16, the contract's float32",
        "predictor's 'test_feat' is an output, the contract's an input",
        "predictor's 'cls_filter' has shape (2, 64), the contract's ('targets', 64)",
    ]
    static_batch = engine_tensors(config, "backbone")
    static_batch[0] = dataclasses.replace(static_batch[0], shape=(1, 3, 288, 288))
    assert graph_io_problems(config, "backbone", static_batch) == [
        "backbone's 'image' has shape (1, 3, 288, 288), the contract's ('batch', 3, 288, 288)"
    ]
