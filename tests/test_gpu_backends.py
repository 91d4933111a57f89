"""The GPU backends (torch-cuda, tensorrt).

Everywhere: the device-resident tracking path run on the CPU, and the errors of a machine without a
GPU or TensorRT. Marked `gpu` / `tensorrt` (deselected by default, skipped with a reason where the
hardware or library is missing): the comparisons against the CPU references that need them.
"""

import importlib.util
import json
import shutil

import cv2
import numpy as np
import pytest
import torch

from tests.seeded import seeded_model
from tests.sequences import moving_target_sequence
from tomp_deploy import ToMPError
from tomp_deploy.checks.parity import compare_contract, compare_sequences
from tomp_deploy.model import load_model, save_checkpoint
from tomp_deploy.model.torch_backend import TorchBackend
from tomp_deploy.model.torch_cuda_backend import TensorMemory, TensorTracking
from tomp_deploy.runtime.backends import open_backend
from tomp_deploy.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from tomp_deploy.runtime.backends.recording import RecordingBackend
from tomp_deploy.runtime.driver import track_boxes
from tomp_deploy.runtime.manifests.engine import ENGINE_MANIFEST_FILE, EngineManifest
from tomp_deploy.runtime.manifests.export import EXPORT_MANIFEST_FILE
from tomp_deploy.runtime.shipped import resolve_model

SCORE_TOLERANCE = 1e-2
MIN_IOU = 0.98


class TensorPathOnCpu(TensorTracking, TorchBackend):
    """The torch-cuda backend's tracking path (features and memory as tensors) on the CPU in fp32."""

    dtype = torch.float32


def test_device_resident_tracking_path_tracks_like_the_host_path():
    network = seeded_model("tiny", 2, 0.6, True, 0.2)
    images, boxes = moving_target_sequence(0, 10)
    host = track_boxes(TorchBackend(network), images, boxes[0])
    resident = track_boxes(TensorPathOnCpu(network), images, boxes[0])
    np.testing.assert_allclose(resident, host, rtol=1e-5, atol=1e-3)


def test_tensor_memory_stores_features_device_to_device():
    memory = TensorMemory(2, (3, 2, 2), torch.device("cpu"), torch.float32)
    batch = torch.arange(3 * 12, dtype=torch.float32).reshape(3, 3, 2, 2)
    memory.store(1, batch, 2)
    memory.store(0, batch, 0)
    assert torch.equal(memory.feat[0], batch[0]) and torch.equal(memory.feat[1], batch[2])
    batch.zero_()
    assert memory.feat[1].sum() == sum(range(24, 36)), "the memory must hold a copy, not a view"


@torch.inference_mode()
def test_model_runs_in_reduced_precision_close_to_fp32():
    """What torch-cuda does to the model (`.to(fp16/bf16)`), checked on the CPU in bf16: every graph
    runs in the reduced dtype and stays near the fp32 result."""
    import copy

    network = seeded_model("tiny", 2, 0.6, True, 0.2)
    reduced = copy.deepcopy(network).to(torch.bfloat16)
    config, cells = network.config, network.config.feature_size
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(3, 3, 288, 288, generator=generator) * 255
    label, ltrb = torch.rand(2, cells, cells, generator=generator), torch.rand(2, 4, cells, cells, generator=generator)
    mask = torch.zeros(2, config.num_tokens, dtype=torch.bool)
    mask[1, cells * cells : 2 * cells * cells] = True

    def run(model, dtype):
        feats = model.backbone(image.to(dtype))
        return model.head(*model.predictor(feats[None, :2], label[None].to(dtype), ltrb[None].to(dtype), feats[2:], mask[None]))

    feats = reduced.backbone(image.to(torch.bfloat16))
    assert feats.dtype == torch.bfloat16
    for exact, approximate in zip(run(network, torch.float32), run(reduced, torch.bfloat16)):
        assert approximate.dtype == torch.float32  # the head's correlation and exp are FP32 islands
        assert float((exact - approximate.float()).abs().max() / exact.abs().max()) < 0.05


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible here")
def test_torch_cuda_without_a_gpu_says_so(tmp_path):
    checkpoint = save_checkpoint(seeded_model("tiny", 2), tmp_path / "tiny.pt")
    with pytest.raises(ToMPError, match="needs an NVIDIA GPU, but PyTorch .* sees none"):
        open_backend("torch-cuda", checkpoint)


@pytest.fixture(scope="module")
def trained_export(shipped_export):
    return shipped_export


@pytest.fixture(scope="module")
def trained_export_fp16(shipped_exports):
    return shipped_exports[1]


def engine_folder_without_engines(export_folder, folder):
    folder.mkdir()
    shutil.copy(export_folder / EXPORT_MANIFEST_FILE, folder / EXPORT_MANIFEST_FILE)
    hashes = {g: e["sha256"] for g, e in json.loads((export_folder / EXPORT_MANIFEST_FILE).read_text())["graphs"].items()}
    EngineManifest(
        "tensorrt",
        "10.3.0",
        "fp16",
        hashes,
        gpu_name="NVIDIA H100 80GB HBM3",
        compute_capability="9.0",
        max_batch=4,
    ).write(folder)
    return folder


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_tensorrt_backend_without_tensorrt_names_the_package(trained_export, tmp_path):
    folder = engine_folder_without_engines(trained_export, tmp_path / "engines")
    with pytest.raises(ToMPError, match=r"'tensorrt' is not installed. Install TensorRT for RTX .*'tomp-deploy\[tensorrt\]'"):
        open_backend("tensorrt", folder)


def test_tensorrt_backend_refuses_a_folder_that_is_not_an_engine_folder(trained_export):
    with pytest.raises(
        ToMPError,
        match=r"is an export folder, .* the tensorrt backend loads an engine folder.*"
        r"tomp-deploy build",
    ):
        open_backend("tensorrt", trained_export)


def synthetic_sequences(folder, count=2, frames=40):
    from tomp_deploy.evaluation.datasets import open_dataset
    from tomp_deploy.evaluation.synth import generate_benchmark

    generate_benchmark(folder, sequences=count, frames=frames, seed=11)
    for sequence in open_dataset(folder, "lasot"):
        yield sequence, [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sequence.frames]


def assert_tracks_like(reference, candidate, sequences):
    """Score maps within SCORE_TOLERANCE of the reference's on identical inputs, boxes within MIN_IOU per frame."""
    for sequence, frames in sequences:
        recorder = RecordingBackend(reference)
        reference_boxes = track_boxes(recorder, frames, sequence.init_box)
        candidate_boxes = track_boxes(candidate, frames, sequence.init_box)
        recorded = {graph: calls[:5] for graph, calls in recorder.calls.items()}
        errors = {(row.graph, row.output): row.max_rel for row in compare_contract(reference, candidate, recorded)}
        assert errors[("head", "scores")] <= SCORE_TOLERANCE, (sequence.name, errors)
        ious = compare_sequences(reference_boxes, candidate_boxes).ious
        assert ious.min() >= MIN_IOU, (sequence.name, int(np.argmin(ious)), float(ious.min()))


def require_cuda_gpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU visible to PyTorch")


@pytest.mark.gpu
def test_torch_cuda_fp16_tracks_like_the_cpu_fp32_reference(tmp_path):
    require_cuda_gpu()
    from tomp_deploy.model.torch_cuda_backend import TorchCudaBackend

    model = resolve_model("tiny")
    reference = TorchBackend(load_model(model))
    for graphs in (True, False):
        candidate = TorchCudaBackend(load_model(model), precision="fp16", cuda_graphs=graphs)
        assert_tracks_like(reference, candidate, synthetic_sequences(tmp_path / f"data-{graphs}"))


def tensorrt_or_skip():
    from tomp_deploy.runtime.gpu import cuda_device, installed_engine_libraries

    if not installed_engine_libraries() or importlib.util.find_spec("pycuda") is None:
        pytest.skip("no TensorRT library or pycuda (pip install 'tomp-deploy[tensorrt-rtx,cuda]' or '[tensorrt]')")

    try:
        cuda_device()
    except ToMPError as exc:
        pytest.skip(str(exc).splitlines()[0])


@pytest.fixture(scope="module")
def tiny_engines(trained_export_fp16, tmp_path_factory):
    tensorrt_or_skip()
    from tomp_deploy.engines.builder import BuildOptions, build_engines
    from tomp_deploy.runtime.gpu import installed_engine_libraries

    folder = tmp_path_factory.mktemp("engines") / "tiny-fp16"
    build_engines(trained_export_fp16, folder, BuildOptions(library=installed_engine_libraries()[0], max_batch=2))
    return folder


@pytest.mark.tensorrt
@pytest.mark.parametrize("cuda_graphs", [False, True])
def test_tensorrt_fp16_engines_track_like_onnxruntime(trained_export_fp16, tiny_engines, tmp_path, cuda_graphs):
    """The engines against the FP16 graphs they were built from, run by ONNX Runtime on the CPU."""
    from tomp_deploy.runtime.backends.tensorrt_backend import TensorRTBackend

    candidate = TensorRTBackend(tiny_engines, cuda_graphs=cuda_graphs)
    try:
        assert_tracks_like(OnnxRuntimeBackend(trained_export_fp16), candidate, synthetic_sequences(tmp_path / "data"))
    finally:
        candidate.close()


@pytest.mark.tensorrt
def test_tensorrt_multi_target_batch_and_its_limit(tiny_engines):
    from tomp_deploy.runtime.backends.tensorrt_backend import TensorRTBackend
    from tomp_deploy.runtime.tracker import MultiTargetTracker

    backend = TensorRTBackend(tiny_engines)
    try:
        images, boxes = moving_target_sequence(0, 4)
        tracker = MultiTargetTracker(backend)
        tracker.initialize(images[0], [boxes[0], np.array([200, 150, 50, 40.0])])
        assert len(tracker.track(images[1])) == 2
        with pytest.raises(ToMPError, match="--max-batch 3"):
            MultiTargetTracker(backend).initialize(images[0], [boxes[0]] * 3)
    finally:
        backend.close()


@pytest.mark.tensorrt
def test_tensorrt_refuses_engines_of_another_machine_or_export(tiny_engines, tmp_path):
    from tomp_deploy.runtime.backends.tensorrt_backend import TensorRTBackend

    rtx = json.loads((tiny_engines / ENGINE_MANIFEST_FILE).read_text())["library"] == "tensorrt-rtx"
    other_gpu = (
        ("target_compute_capabilities", ["7.5"], "built for compute capabilities 7.5")
        if rtx
        else ("gpu_name", "NVIDIA GeForce RTX 2080", "built on a NVIDIA GeForce RTX 2080")
    )
    for field, value, message in (
        other_gpu,
        ("library_version", "8.6.1", "built with .* 8.6.1"),
        ("onnx_sha256", {"backbone": "0", "predictor": "0", "head": "0"}, "hash differs"),
    ):
        folder = tmp_path / field
        shutil.copytree(tiny_engines, folder)
        manifest = json.loads((folder / ENGINE_MANIFEST_FILE).read_text())
        manifest[field] = value
        manifest["build_options"]["portable_default"] = False
        (folder / ENGINE_MANIFEST_FILE).write_text(json.dumps(manifest))
        with pytest.raises(ToMPError, match=f"(?s){message}.*Rebuild"):
            TensorRTBackend(folder)
