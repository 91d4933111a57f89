"""Export to ONNX, the ONNX Runtime backend against the PyTorch reference, bad inputs (FP16: test_export_fp16)."""

import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.cli import error_message, run_cli
from tests.contract_checks import FEAT, assert_contract_parity
from tests.reference_checkpoints import write_reference_checkpoint
from tests.seeded import seeded_model
from tests.sequences import moving_target_sequence
from tomp_deploy import ToMPError
from tomp_deploy.checks.fp16_report import contract_inputs as realistic_inputs
from tomp_deploy.checks.parity import compare_sequences
from tomp_deploy.export.graph_checks import check_graph
from tomp_deploy.export.onnx_export import export_model
from tomp_deploy.export.trt_ops import unsupported_nodes
from tomp_deploy.model import save_checkpoint
from tomp_deploy.model.torch_backend import TorchBackend
from tomp_deploy.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from tomp_deploy.runtime.contract import TARGETS, graph_io
from tomp_deploy.runtime.driver import track_boxes
from tomp_deploy.runtime.manifests.export import read_export


@pytest.mark.parametrize("memory_frames", [1, 2])
def test_tiny_graphs_match_pytorch(tiny_export, memory_frames):
    network, folder = tiny_export
    assert_contract_parity(TorchBackend(network), OnnxRuntimeBackend(folder), memory_frames)


@pytest.mark.slow
@pytest.mark.parametrize("preset_name", ["tomp50", "tomp101"])
def test_full_size_graphs_match_pytorch(tmp_path, preset_name):
    """The paper's networks exported whole (40 s for ToMP-50 on two cores: a slow test); the default suite
    checks the same graphs at the tiny preset's size."""
    network = seeded_model(preset_name, 1, 0.5, True, 0.2)
    export_model(network, tmp_path / preset_name)
    exported = read_export(tmp_path / preset_name)
    ort_backend = OnnxRuntimeBackend(exported)
    for memory_frames in (1, 2):
        assert_contract_parity(TorchBackend(network), ort_backend, memory_frames)
    manifest = exported.manifest
    assert manifest.opset == 18
    assert manifest.graphs["predictor"].inputs[4] == {
        "name": "key_padding_mask",
        "shape": [TARGETS, 2, 3 * FEAT * FEAT],
        "dtype": "bool",
    }


def test_exported_io_follows_the_contract(tiny_export):
    network, folder = tiny_export
    expected = graph_io(network.config)
    for graph, (inputs, outputs) in expected.items():
        model = onnx.load(str(folder / f"{graph}.onnx"))
        actual_inputs = [
            (i.name, [d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim], i.type.tensor_type.elem_type)
            for i in model.graph.input
        ]
        assert actual_inputs == [
            (s.name, list(s.shape), TensorProto.BOOL if s.dtype == "bool" else TensorProto.FLOAT) for s in inputs
        ]
        assert [o.name for o in model.graph.output] == [s.name for s in outputs]
    batch = np.random.default_rng(0).uniform(0, 255, (3, 3, 288, 288)).astype(np.float32)
    feats = OnnxRuntimeBackend(folder).run("backbone", {"image": batch})["feat"]
    assert feats.shape == (3, network.config.feature_dim, FEAT, FEAT)  # dynamic batch


def test_onnxruntime_tracks_like_torch(tiny_export):
    network, folder = tiny_export
    frames, boxes = moving_target_sequence(0, 30)
    reference = track_boxes(TorchBackend(network), frames, boxes[0])
    candidate = track_boxes(OnnxRuntimeBackend(folder), frames, boxes[0])
    assert compare_sequences(reference, candidate).ious.min() >= 0.999


def test_onnxruntime_path_imports_no_torch(tiny_export):
    _, folder = tiny_export
    script = f"""
import sys
sys.modules['torch'] = None
from tests.sequences import moving_target_sequence
from tomp_deploy.runtime.backends import open_backend
from tomp_deploy.runtime.driver import track_boxes
frames, boxes = moving_target_sequence(0, 3)
print(len(track_boxes(open_backend('onnxruntime', {str(folder)!r}), frames, boxes[0])))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3"


@pytest.mark.slow  # 16 s: three exports from the command line
def test_export_cli_replaces_only_an_earlier_export(tmp_path, tiny_export):
    """--force replaces what an export writes and nothing else: a folder holding other files is refused,
    with or without it, and keeps them."""
    network, _ = tiny_export
    checkpoint = save_checkpoint(network, tmp_path / "tiny.pt")
    work = tmp_path / "work"
    work.mkdir()
    (work / "something").write_text("keep me")
    for force in ([], ["--force"]):
        result = run_cli("export", checkpoint, "--out", work, *force)
        assert result.returncode == 2 and "holds files that are not an export (something)" in result.stderr
        assert (work / "something").read_text() == "keep me" and len(list(work.iterdir())) == 1
    out = tmp_path / "out"
    shutil.copytree(tiny_export[1], out)
    (out / "predictor.onnx").write_bytes(b"an earlier export's graph")
    result = run_cli("export", checkpoint, "--out", out)
    assert result.returncode == 2 and "already holds an export; pass --force" in result.stderr
    result = run_cli("export", checkpoint, "--out", out, "--force")
    assert result.returncode == 0, result.stderr
    assert {p.name for p in out.iterdir()} == {"backbone.onnx", "predictor.onnx", "head.onnx", "model.json"}
    read_export(out)  # the replaced graph is whole again and matches model.json
    assert "TensorRT 10 ops: pass" in result.stdout.replace("\n", " ") or "pass" in result.stdout
    assert "Skipping constant folding" not in result.stderr, "a warning about nodes the export folds itself"


@pytest.mark.parametrize("kind", ["corrupt", "foreign"])
def test_export_cli_bad_checkpoint(tmp_path, kind):
    checkpoint = tmp_path / "model.pth.tar"
    if kind == "corrupt":
        checkpoint.write_bytes(b"PK\x03\x04 truncated")
    else:
        write_reference_checkpoint(checkpoint, fun_name="dimpnet50")
    result = run_cli("export", checkpoint, "--out", tmp_path / "out")
    assert result.returncode == 2
    assert result.stderr.startswith("loading the checkpoint ..."), "a log shows the status as a line, on stderr"
    error_message(result.stderr)
    assert not (tmp_path / "out").exists()


def test_unsupported_operator_is_named(tmp_path):
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="fine"),
        helper.make_node("Unique", ["r"], ["y"], name="the_unique_node"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    assert unsupported_nodes(model) == ["node 'the_unique_node' (Unique): operator not supported by TensorRT 10's ONNX parser"]
    path = tmp_path / "bad.onnx"
    onnx.save(model, path)
    with pytest.raises(ToMPError, match="the_unique_node"):
        check_graph(path, "bad", 18)


def test_operator_restrictions():
    axes = helper.make_tensor_value_info("axes", TensorProto.INT64, [1])
    nodes = [
        helper.make_node("ReduceMean", ["x", "axes"], ["y"], name="dynamic_axes"),
        helper.make_node("Resize", ["x", "", "scales"], ["z"], name="cubic", mode="cubic"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4]), axes],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, None),
        ],
        initializer=[onnx.numpy_helper.from_array(np.ones(4, np.float32), "scales")],
    )
    problems = unsupported_nodes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))
    assert any("dynamic_axes" in p and "axes" in p for p in problems)
    assert any("cubic" in p and "resize mode" in p for p in problems)


def test_an_export_of_one_target_per_call_is_refused(tmp_path, tiny_export):
    """model.json version 1 graphs took one target; their predictor cannot be fed a target batch."""
    old = tmp_path / "old"
    shutil.copytree(tiny_export[1], old)
    manifest = json.loads((old / "model.json").read_text())
    (old / "model.json").write_text(json.dumps({**manifest, "version": 1}))
    with pytest.raises(ToMPError, match="of version 1, and this tomp-deploy reads version 2; export the model again"):
        OnnxRuntimeBackend(old)


def test_backend_refuses_folder_of_another_model(tmp_path, tiny_export, shipped_export):
    _, folder = tiny_export
    mixed = tmp_path / "mixed"
    shutil.copytree(folder, mixed)
    shutil.copy(shipped_export / "predictor.onnx", mixed / "predictor.onnx")  # the same architecture, other weights
    with pytest.raises(ToMPError, match="hash differs"):
        OnnxRuntimeBackend(mixed)

    # A model.json of a different architecture beside these graphs: the shapes disagree.
    manifest = json.loads((folder / "model.json").read_text())
    manifest["model"]["feature_dim"] = 128
    manifest["model"]["num_heads"] = 8
    for graph in manifest["graphs"].values():
        graph["inputs"] = [dict(s, shape=[128 if d == 64 else d for d in s["shape"]]) for s in graph["inputs"]]
        graph["outputs"] = [dict(s, shape=[128 if d == 64 else d for d in s["shape"]]) for s in graph["outputs"]]
    relabelled = tmp_path / "relabelled"
    shutil.copytree(folder, relabelled)
    (relabelled / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ToMPError, match="mixes files of different models"):
        OnnxRuntimeBackend(relabelled)


@pytest.mark.parametrize("kind", ["checkpoint_for_onnxruntime", "export_for_torch"])
def test_model_of_the_wrong_kind_for_a_backend(tmp_path, tiny_export, kind):
    network, folder = tiny_export
    checkpoint = save_checkpoint(network, tmp_path / "tiny.pt")
    frames, boxes = moving_target_sequence(0, 2)
    sequence = tmp_path / "seq"
    (sequence / "img").mkdir(parents=True)

    for index, frame in enumerate(frames):
        cv2.imwrite(str(sequence / "img" / f"{index:04d}.png"), frame)
    backend, model = ("onnxruntime", checkpoint) if kind == "checkpoint_for_onnxruntime" else ("torch", folder)
    result = run_cli("track", sequence / "img", "--model", model, "--backend", backend, "--init-box", "30,60,40,30")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    fits = "torch or torch-cuda" if kind == "checkpoint_for_onnxruntime" else "onnxruntime or openvino"
    assert f"which --backend {fits} runs; the {backend} backend loads" in result.stderr


def test_fused_attention_rewrite_computes_the_exported_predictor(tiny_export):
    """The onnxruntime backend's CPU rewrite: every attention block (masked or not) becomes one
    MultiHeadAttention node, with the outputs of the graph as exported (hidden keys included)."""
    import onnx
    import onnxruntime as ort

    from tomp_deploy.runtime.backends.attention_fusion import MICROSOFT, fuse_attention

    _, folder = tiny_export
    backend = OnnxRuntimeBackend(folder)
    config = backend.config
    plain = onnx.load(folder / "predictor.onnx")
    fused, blocks = fuse_attention(plain, config.num_heads, config.feature_dim)
    softmaxes = sum(1 for node in plain.graph.node if node.op_type == "Softmax")
    assert blocks == softmaxes and sum(node.domain == MICROSOFT for node in fused.graph.node) == blocks
    onnx.checker.check_model(fused)
    feeds = dict(realistic_inputs(backend)["predictor"][0])
    feeds["key_padding_mask"] = feeds["key_padding_mask"].copy()
    feeds["key_padding_mask"][0, 0, :7] = True  # hide a few keys of the annotated frame too
    sessions = [ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]) for model in (plain, fused)]
    for expected, actual in zip(*(session.run(None, feeds) for session in sessions)):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
    assert backend.fused_attention_blocks == blocks  # the backend runs the rewrite on the CPU


def test_force_is_needed_to_replace_an_export_and_nothing_is_deleted_before_the_new_one_is_complete(tmp_path):
    from tomp_deploy.export.onnx_export import EXPORT_FILES, check_output_folder
    from tomp_deploy.runtime.manifests.export import COMPILE_CACHE_FOLDER

    for name in EXPORT_FILES:
        (tmp_path / name).write_text("")
    (tmp_path / COMPILE_CACHE_FOLDER).mkdir()
    (tmp_path / COMPILE_CACHE_FOLDER / "123.blob").write_text("")
    with pytest.raises(ToMPError, match="already holds an export"):
        check_output_folder(tmp_path, force=False)
    check_output_folder(tmp_path, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(EXPORT_FILES + (COMPILE_CACHE_FOLDER,))
