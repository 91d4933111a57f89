import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from tests.cli import error_message, run_cli
from tests.reference_checkpoints import LAYOUT, ltr_package_installed, reference_state_dict, write_reference_checkpoint
from tomp_deploy import ToMPError, load_model
from tomp_deploy.model import save_checkpoint


@pytest.mark.parametrize("network,backbone", [("tompnet50", "resnet50"), ("tompnet101", "resnet101")])
@pytest.mark.parametrize("use_test_frame_encoding", [True, False])
def test_reference_checkpoint_loads_every_weight(tmp_path, network, backbone, use_test_frame_encoding):
    path = write_reference_checkpoint(tmp_path / f"{network}.pth.tar", network, use_test_frame_encoding)
    model = load_model(path)

    assert model.config.backbone == backbone
    assert model.config.use_test_frame_encoding is use_test_frame_encoding
    assert (model.config.feature_dim, model.config.num_encoder_layers, model.config.num_decoder_layers) == (256, 6, 6)
    written = reference_state_dict(network, use_test_frame_encoding)
    loaded = model.state_dict()
    used = {k for k in written if not k.startswith(("feature_extractor.layer4.", "feature_extractor.fc."))}
    assert set(loaded) == used
    assert all(torch.equal(loaded[k], written[k]) for k in used)
    assert sorted(model.checkpoint_info.dropped_keys) == sorted(set(written) - used)
    assert model.checkpoint_info.meta["epoch"] == 300
    assert model.checkpoint_info.meta["description"] == "ToMP50"


@pytest.mark.parametrize("network", ["tompnet50", pytest.param("tompnet101", marks=pytest.mark.slow)])
def test_inspect_reports_reference_checkpoint(tmp_path, network):
    path = write_reference_checkpoint(tmp_path / "net.pth.tar", network, use_test_frame_encoding=False)
    result = run_cli("inspect", str(path), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    expected_params = sum(
        torch.Size(shape).numel()
        for name, shape, dtype in LAYOUT[f"{network}/test_frame_encoding=False"]
        if dtype == "float32"
        and "running_" not in name
        and "query_embed_fg_decoder" not in name
        and not name.startswith(("feature_extractor.layer4.", "feature_extractor.fc."))
    )
    assert report["format"] == "reference"
    assert report["config"]["backbone"] == {"tompnet50": "resnet50", "tompnet101": "resnet101"}[network]
    assert report["config"]["use_test_frame_encoding"] is False
    assert report["config"]["num_encoder_layers"] == 6
    assert report["search_size"] == 288
    assert report["parameters"] == expected_params
    assert report["source"]["constructor"] == f"ltr.models.tracking.tompnet.{network}"

    table = run_cli("inspect", str(path))
    assert table.returncode == 0
    assert "test-frame encoding" in table.stdout and "no" in table.stdout


class Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.pth.tar"
    content = {"net": reference_state_dict("tompnet50", True), "settings": Payload(marker)}
    torch.save(content, path)

    with pytest.raises(ToMPError, match="could run code") as excinfo:
        load_model(path)
    assert "system" in str(excinfo.value)
    result = run_cli("inspect", str(path))
    assert result.returncode == 2
    assert not marker.exists()


def test_reference_record_that_calls_itself_stays_inert(tmp_path):
    """A REDUCE on an `ltr` global only builds an inert record: no reference code can run."""
    path = write_reference_checkpoint(tmp_path / "net.pth.tar")
    with ltr_package_installed():
        import ltr.admin.settings as settings_module  # the stand-in module made above

        class Loader:
            def __reduce__(self):
                return (settings_module.Settings, ())

        Loader.__module__ = "ltr.admin.settings"
        content = torch.load(path, weights_only=False)
        content["settings"] = Loader()
        torch.save(content, path)
    assert load_model(path).config.backbone == "resnet50"


def test_own_format_round_trip(tmp_path, tiny_model):
    path = save_checkpoint(tiny_model, tmp_path / "tiny.pt", meta={"note": "round trip"})
    raw = torch.load(path, weights_only=True)  # plain tensors and containers only
    assert raw["format"] == "tomp-deploy"

    loaded = load_model(path)
    assert loaded.config == tiny_model.config
    assert loaded.checkpoint_info.meta == {"note": "round trip"}
    image = torch.rand(2, 3, 288, 288) * 255
    with torch.no_grad():
        assert torch.equal(loaded.backbone(image), tiny_model.backbone(image))
        for (name, a), b in zip(tiny_model.state_dict().items(), loaded.state_dict().values()):
            assert torch.equal(a, b), name


def test_missing_file(tmp_path):
    with pytest.raises(ToMPError, match="does not exist"):
        load_model(tmp_path / "absent.pth.tar")


def test_truncated_file(tmp_path, tiny_model):
    path = save_checkpoint(tiny_model, tmp_path / "tiny.pt")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ToMPError, match="truncated"):
        load_model(path)


def test_file_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pth.tar"
    path.write_text("these are not weights\n")
    with pytest.raises(ToMPError, match="is not a PyTorch checkpoint"):
        load_model(path)
    other = tmp_path / "tensor.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(ToMPError, match="not a ToMP checkpoint"):
        load_model(other)


def test_checkpoint_of_another_architecture(tmp_path):
    path = write_reference_checkpoint(tmp_path / "dimp.pth.tar", fun_name="dimpnet50")
    with pytest.raises(ToMPError, match="'dimpnet50' network, not ToMP"):
        load_model(path)


def test_weights_of_another_architecture_are_listed(tmp_path):
    weights = reference_state_dict("tompnet101", True)  # 23 blocks in layer3, constructor says ResNet-50
    path = write_reference_checkpoint(tmp_path / "mixed.pth.tar", "tompnet50", state_dict=weights)
    with pytest.raises(ToMPError) as excinfo:
        load_model(path)
    message = str(excinfo.value)
    assert "unexpected (306)" in message  # ResNet-101 layer3 blocks 6..22: 17 x (3 convs + 3 BN x 5 entries)
    assert "feature_extractor.layer3.10.conv1.weight" in message


def test_missing_weights_are_an_error(tmp_path, tiny_model):
    path = save_checkpoint(tiny_model, tmp_path / "tiny.pt")
    content = torch.load(path, weights_only=True)
    del content["state_dict"]["head.classifier.linear.weight"]
    torch.save(content, path)
    with pytest.raises(ToMPError, match=r"missing \(1\):\s+head.classifier.linear.weight"):
        load_model(path)


@pytest.mark.parametrize("kind", ["missing", "truncated", "not_checkpoint", "other_architecture"])
def test_cli_bad_input_exits_2_without_traceback(tmp_path, tiny_model, kind):
    path = tmp_path / "model.pth.tar"
    if kind == "truncated":
        save_checkpoint(tiny_model, path)
        path.write_bytes(path.read_bytes()[:4096])
    elif kind == "not_checkpoint":
        path.write_bytes(pickle.dumps([1, 2, 3]))
    elif kind == "other_architecture":
        write_reference_checkpoint(path, fun_name="atom_resnet18")
    result = run_cli("inspect", str(path))
    assert result.returncode == 2
    error_message(result.stderr)
    assert "Traceback" not in result.stdout
