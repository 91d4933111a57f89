import os

import pytest
import torch

from tomp_deploy.model import ToMPNet, preset


@pytest.fixture(scope="session", autouse=True)
def user_cache(tmp_path_factory):
    """The user cache of every test and every command a test runs (shipped-model exports, compiled graphs):
    one folder for the session, never the real ~/.cache."""
    from tomp_deploy.runtime.cache_files import CACHE_ENVIRONMENT

    folder = tmp_path_factory.mktemp("user-cache")
    os.environ[CACHE_ENVIRONMENT] = str(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model() -> ToMPNet:
    torch.manual_seed(0)
    model = ToMPNet(preset("tiny")).eval()
    # Non-trivial BatchNorm statistics so that eval-mode normalisation matters in every comparison.
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.normal_(0.0, 0.1)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 2.0)
    return model


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
    """A seeded tiny model and its FP32 export, shared by every test module."""
    from tests.seeded import seeded_model
    from tomp_deploy.export.onnx_export import export_model

    network = seeded_model("tiny", 2, 0.6, True, 0.2)
    folder = tmp_path_factory.mktemp("export") / "tiny"
    export_model(network, folder)
    return network, folder


@pytest.fixture(scope="session")
def tiny_export_fp16(tiny_export):
    """The FP16 export of `tiny_export`'s model, beside it."""
    from tomp_deploy.export.onnx_export import export_model

    network, folder = tiny_export
    fp16 = folder.parent / "tiny-fp16"
    export_model(network, fp16, precision="fp16")
    return fp16


@pytest.fixture(scope="session")
def shipped_export(tmp_path_factory):
    """The shipped tiny model's FP32 export, shared by every test module: tests that change it copy it."""
    from tomp_deploy.export.onnx_export import export_model
    from tomp_deploy.model import load_model
    from tomp_deploy.runtime.shipped import resolve_model

    folder = tmp_path_factory.mktemp("shipped") / "export"
    export_model(load_model(resolve_model("tiny")), folder)
    return folder


@pytest.fixture(scope="session")
def shipped_exports(shipped_export):
    """The shipped tiny model's FP32 and FP16 exports."""
    from tomp_deploy.export.onnx_export import export_model
    from tomp_deploy.model import load_model
    from tomp_deploy.runtime.shipped import resolve_model

    fp16 = shipped_export.parent / "export-fp16"
    export_model(load_model(resolve_model("tiny")), fp16, precision="fp16")
    return shipped_export, fp16


@pytest.fixture(scope="session")
def training_sources(tmp_path_factory):
    """Synthetic training data of every family for the small training configuration, and its run folder."""
    from tests.training_setup import SMALL
    from tomp_deploy.train.data import load_sources, parse_data_spec

    run = tmp_path_factory.mktemp("run")
    return load_sources(parse_data_spec("synthetic"), SMALL, run), run
