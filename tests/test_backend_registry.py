"""Backends are found through the `tomp_deploy.backends` entry-point group of the installed distributions'
metadata: this package's five, and any other package's, with no name of a backend module in the registry."""

import subprocess
import sys
from importlib.metadata import entry_points

import numpy as np
import pytest

from tests.sequences import moving_target_sequence
from tomp_deploy.runtime.backends import BackendOptions, BackendSpec, backend_names, installed_backends, open_backend, registry
from tomp_deploy.runtime.driver import track_boxes
from tomp_deploy.runtime.errors import ToMPError

THIRD_PARTY_MODULE = '''
from tomp_deploy.runtime.backends import BackendSpec


def load():
    from tomp_deploy.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    class MirrorBackend(OnnxRuntimeBackend):
        """Another package's backend: here ONNX Runtime under another name."""

    return MirrorBackend


SPEC = BackendSpec(model_form="export", packages=("onnxruntime",), load=load,
                   install="pip install tomp-mirror-backend", takes=("threads",))
NOT_A_SPEC = "a string"
'''


@pytest.fixture
def fresh_registry():
    """The registry reads the metadata once per process; these tests change what is installed."""
    registry._registered.cache_clear()
    registry.backend_spec.cache_clear()
    yield
    registry._registered.cache_clear()
    registry.backend_spec.cache_clear()


@pytest.fixture
def third_party_installed(tmp_path, monkeypatch, fresh_registry):
    """A distribution registering two backends, installed as a folder on sys.path with its dist-info metadata:
    nothing is pip-installed."""
    (tmp_path / "tomp_mirror_backend.py").write_text(THIRD_PARTY_MODULE)
    metadata = tmp_path / "tomp_mirror_backend-1.0.dist-info"
    metadata.mkdir()
    (metadata / "METADATA").write_text("Metadata-Version: 2.1\nName: tomp-mirror-backend\nVersion: 1.0\n")
    (metadata / "entry_points.txt").write_text(
        "[tomp_deploy.backends]\nmirror = tomp_mirror_backend:SPEC\nbroken = tomp_mirror_backend:NOT_A_SPEC\n"
    )
    monkeypatch.syspath_prepend(tmp_path)


def test_the_package_registers_its_five_backends_without_importing_them():
    assert {entry.name for entry in entry_points(group="tomp_deploy.backends")} >= {
        "torch",
        "onnxruntime",
        "openvino",
        "torch-cuda",
        "tensorrt",
    }
    code = (
        "import sys\n"
        "from tomp_deploy.runtime.backends import backend_names, backend_spec, installed_backends\n"
        "specs = [backend_spec(name) for name in backend_names()]\n"
        "installed_backends()\n"
        "heavy = {'torch', 'onnxruntime', 'openvino', 'tensorrt', 'tensorrt_rtx'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_third_party_backend_is_found_and_tracks(third_party_installed, shipped_export):
    assert "mirror" in backend_names() and "mirror" in installed_backends()
    assert "broken" in backend_names() and "broken" not in installed_backends()
    images, boxes = moving_target_sequence(frames=6)
    with open_backend("onnxruntime", shipped_export, BackendOptions(threads=1)) as ours:
        expected = track_boxes(ours, images, boxes[0])
    with open_backend("mirror", shipped_export, BackendOptions(threads=1)) as theirs:
        assert type(theirs).__name__ == "MirrorBackend" and theirs.threads == 1
        np.testing.assert_array_equal(track_boxes(theirs, images, boxes[0]), expected)
    with pytest.raises(ToMPError, match=r"--precision does not apply to the mirror backend \(it takes --threads\)"):
        open_backend("mirror", shipped_export, BackendOptions(precision="fp16"))
    with pytest.raises(ToMPError, match="broken backend's registration .* is a str, not a tomp_deploy BackendSpec"):
        open_backend("broken", shipped_export)


def test_unknown_backends_and_malformed_specs_are_refused(fresh_registry):
    with pytest.raises(ToMPError, match=r"Unknown backend .tflite.; the backends are .*torch.*, of which .* installed here"):
        open_backend("tflite", "model")
    with pytest.raises(ToMPError, match="loads one of checkpoint, export, engines"):
        BackendSpec(model_form="saved_model", packages=(), load=lambda: None, install="")
    with pytest.raises(ToMPError, match="--device 'gpu' is not a device"):
        BackendOptions(device="gpu")
