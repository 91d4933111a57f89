"""The training module: sampling, processing geometry, losses, frozen layers, learning rates, a real
short run, and bad input."""

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.cli import run_cli
from tests.seeded import seeded_model
from tests.training_setup import SMALL
from tomp_deploy import ToMPError, load_model
from tomp_deploy.cli.training import _training_config
from tomp_deploy.evaluation.datasets.readers import read_lasot
from tomp_deploy.model import save_checkpoint
from tomp_deploy.runtime.overrides import apply_overrides
from tomp_deploy.runtime.presets import preset as model_preset
from tomp_deploy.train.data import FrameSampler, TrainSequence, load_sources, parse_data_spec
from tomp_deploy.train.losses import giou_loss, hinge_classification_loss
from tomp_deploy.train.processing import crop_around, jittered_box, process, sampling_region, training_label
from tomp_deploy.train.trainer import Trainer


def test_sampler_chooses_visible_frames_in_a_window():
    visible = np.zeros(1000, bool)
    visible[[10, 300, 400, 450, 460, 900]] = True
    sequence = TrainSequence([Path(f"{i}.jpg") for i in range(1000)], np.ones((1000, 4)), visible)
    config = dataclasses.replace(SMALL, max_gap=100)
    sampler = FrameSampler({"synthetic": [sequence]}, {"synthetic": 1}, config)
    for index in range(50):
        _, train, test = sampler.sample(sampler.rng(0, index))
        assert len(train) == 2 and len(test) == 1
        assert all(visible[f] for f in train + test)
        anchor = train[0]
        assert anchor - 100 <= train[1] < anchor < test[0] <= anchor + 100  # the window of max_gap frames
    assert sampler.sample(sampler.rng(0, 3))[1:] == sampler.sample(sampler.rng(0, 3))[1:]  # pure in (epoch, index)


def test_datasets_are_mixed_by_weight():
    one = TrainSequence([Path("a.jpg")], np.ones((1, 4)), np.array([True]))
    two = TrainSequence([Path("b.jpg")], np.ones((1, 4)), np.array([True]))
    sampler = FrameSampler({"lasot": [one], "coco": [two]}, {"lasot": 3, "coco": 1}, SMALL)
    picks = [sampler.sample(sampler.rng(0, i))[0] is one for i in range(2000)]
    assert np.mean(picks) == pytest.approx(0.75, abs=0.03)


def test_jitter_and_crop_geometry():
    rng = np.random.default_rng(0)
    box = np.array([280.0, 190.0, 40.0, 20.0])
    assert np.array_equal(jittered_box(box, rng, 0.0, 0.0), box)  # training frames: no jitter
    image = np.zeros((400, 600, 3), np.float32)
    _, mapped = crop_around(image, box, box, SMALL, 288)
    # Search region 5 x sqrt(40 * 20) = 141.4 px around the box centre (300, 200): scale 288 / 141 px.
    side = round(5 * math.sqrt(800))
    scale = 288 / side
    assert mapped[2] == pytest.approx(40 * scale, rel=0.02) and mapped[3] == pytest.approx(20 * scale, rel=0.02)
    centre = mapped[:2] + mapped[2:] / 2
    np.testing.assert_allclose(centre, [144, 144], atol=2.5)
    near_top = np.array([280.0, 20.0, 40.0, 20.0])  # the region would start 40 px above the image:
    _, shifted = crop_around(image, near_top, near_top, SMALL, 288)  # inside_major moves it down
    assert shifted[1] + shifted[3] / 2 == pytest.approx(30 * scale, abs=2.5)


def test_training_targets_by_hand():
    model = load_model_config()
    box = np.array([124.0, 124.0, 40.0, 40.0])  # centred at 144 = the crop centre
    label = training_label(box, model, SMALL)
    sigma = 0.25 / 5 * 18
    np.testing.assert_allclose(label[8:10, 8:10], math.exp(-0.5 * 0.5 / sigma**2), rtol=1e-6)
    region = sampling_region(box, 18, 16, 1.0)
    # Cells whose centres (16k + 8) lie strictly within 16 px of 144: 136 and 152 -> cells 8 and 9.
    assert np.flatnonzero(region[0].any(axis=0)).tolist() == [8, 9]
    assert region.sum() == 4


def load_model_config():

    return model_preset("tiny")


def test_absent_test_frames_are_crops_off_the_target(training_sources):
    """With absent_test_probability 1 every test crop misses the target: label and regression region all
    zero, while the memory frames still show it. The default (0) draws the same samples as before."""
    loaded, _ = training_sources
    absent = dataclasses.replace(SMALL, absent_test_probability=1.0)
    sampler = FrameSampler(loaded, absent.dataset_weights, absent)
    model = load_model_config()
    for index in range(4):
        rng = sampler.rng(0, index)
        sample = process(*sampler.sample(rng), rng, model, absent)
        assert sample["test_label"].max() == 0 and sample["test_region"].max() == 0
        assert sample["train_label"].max() > 0.5 and sample["train_region"].sum() >= 1
    plain_sampler = FrameSampler(loaded, SMALL.dataset_weights, SMALL)
    rng = plain_sampler.rng(0, 0)
    plain = process(*plain_sampler.sample(rng), rng, model, SMALL)
    assert plain["test_label"].max() > 0.5, "the reference's sampling: the target in every test crop"


def test_a_crop_moved_off_the_target_leaves_it_outside():
    from tomp_deploy.train.processing import away_from_target

    rng = np.random.default_rng(5)
    for _ in range(200):
        box = np.concatenate([rng.uniform(0, 300, 2), rng.uniform(5, 80, 2)])
        region = jittered_box(box, rng, 0.5, 4.5)
        moved = away_from_target(box, region, rng, SMALL)
        half_side = math.sqrt(moved[2] * moved[3]) * SMALL.tracker.search_area_scale / 2
        gap = np.abs((moved[:2] + moved[2:] / 2) - (box[:2] + box[2:] / 2)) - box[2:] / 2
        assert (gap >= half_side - 1e-9).any(), "the target lies beyond the crop's edge on one axis"
        np.testing.assert_array_equal(moved[2:], region[2:])


def test_process_outputs(training_sources):
    loaded, _ = training_sources
    sampler = FrameSampler(loaded, SMALL.dataset_weights, SMALL)
    rng = sampler.rng(0, 0)
    sample = process(*sampler.sample(rng), rng, load_model_config(), SMALL)
    assert sample["train_images"].shape == (2, 3, 288, 288) and sample["test_images"].shape == (1, 3, 288, 288)
    assert sample["train_ltrb"].shape == (2, 4, 18, 18) and sample["test_region"].sum() >= 1
    assert 0 <= sample["test_images"].min() and sample["test_images"].max() <= 255


def test_hinge_loss_by_hand():
    scores = torch.tensor([[0.5, -0.3], [0.8, 0.2]])
    labels = torch.tensor([[0.0, 0.01], [1.0, 0.5]])
    # Below 0.05: relu(score) vs 0 -> 0.5^2 and 0; above: (0.8-1)^2 and (0.2-0.5)^2.
    expected = (0.25 + 0 + 0.04 + 0.09) / 4
    assert hinge_classification_loss(scores, labels, 0.05).item() == pytest.approx(expected)


def test_giou_loss_by_hand():
    target = torch.tensor([1.0, 1.0, 1.0, 1.0]).view(4, 1, 1)  # a 2x2 box around the cell
    same, _ = giou_loss(target.clone(), target)
    assert same.item() == pytest.approx(0.0, abs=1e-6)
    pred = torch.tensor([1.0, 1.0, 3.0, 1.0]).view(4, 1, 1)  # 4x2 box sharing the left half
    loss, ious = giou_loss(pred, target)
    assert ious.item() == pytest.approx(4 / 8, rel=1e-5)  # IoU 4/8, enclosing box = union -> GIoU = IoU
    assert loss.item() == pytest.approx(0.5, rel=1e-5)
    weights = torch.tensor([0.0]).view(1, 1, 1)
    pred.requires_grad_(True)
    nothing, ious = giou_loss(pred, target, weights)
    assert nothing.item() == 0.0 and ious.numel() == 0, "no counted cell (test frames without the target): no box loss"
    nothing.backward()
    assert (pred.grad == 0).all()


def test_frozen_parameters_and_two_learning_rates(training_sources, tmp_path):
    loaded, _ = training_sources
    config = dataclasses.replace(
        SMALL,
        trainable_backbone_layers=("layer3",),
        lr_head=1e-3,
        lr_backbone=1e-5,
        warmup_steps=0,
        freeze_backbone_batchnorm=True,
    )
    trainer = Trainer(config, FrameSampler(loaded, config.dataset_weights, config), tmp_path)
    groups = {g["name"]: g for g in trainer.optimizer.param_groups}
    assert groups["head"]["lr"] == 1e-3 and groups["backbone"]["lr"] == 1e-5
    backbone = dict(trainer.model.feature_extractor.named_parameters())
    trained = {id(p) for p in groups["backbone"]["params"]}
    assert all(
        id(p) in trained for n, p in backbone.items() if n.startswith("layer3") and "bn" not in n and "downsample.1" not in n
    )
    before = {n: p.detach().clone() for n, p in backbone.items()}
    buffers = {n: b.clone() for n, b in trainer.model.feature_extractor.named_buffers()}
    head_before = trainer.model.head.classifier.linear.weight.detach().clone()
    trainer.train_epoch(0)
    for name, parameter in trainer.model.feature_extractor.named_parameters():
        frozen = not name.startswith("layer3") or ".bn" in name or "downsample.1" in name
        assert torch.equal(parameter, before[name]) == frozen, name
    for name, buffer in trainer.model.feature_extractor.named_buffers():
        assert torch.equal(buffer, buffers[name]), name  # BatchNorm statistics stay frozen
    assert not torch.equal(trainer.model.head.classifier.linear.weight, head_before)


@pytest.mark.slow
def test_one_epoch_run_loads_exports_and_tracks(tmp_path):
    run = tmp_path / "run"
    result = run_cli(
        "train",
        "--preset",
        "tiny",
        "--data",
        "synthetic",
        "--out",
        run,
        "--set",
        "samples_per_epoch=96",
        "--set",
        "batch_size=4",
        "--set",
        "num_workers=1",
        "--set",
        "synthetic_sequences=3",
        "--set",
        "synthetic_frames=12",
    )
    assert result.returncode == 0, result.stderr
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 1 and metrics[0]["epoch"] == 1
    assert metrics[0]["last_quarter_loss"] < metrics[0]["first_quarter_loss"]
    model = load_model(run / "latest.pt")
    assert model.config.backbone == "resnet18"
    exported = tmp_path / "export"
    assert run_cli("export", run / "latest.pt", "--out", exported).returncode == 0
    sequence = read_lasot(run / "synthetic-data" / "cutouts")[0]
    boxes = tmp_path / "boxes.txt"
    tracked = run_cli("track", sequence.frames[0].parent, "--model", exported, "--backend", "onnxruntime", "--output", boxes)
    assert tracked.returncode == 0, tracked.stderr
    assert len(boxes.read_text().splitlines()) == 12


@pytest.mark.parametrize(
    "args,message",
    [
        (["--data", "lasot=/does/not/exist"], "does not exist"),
        (["--data", "imagenet=/tmp"], "Unknown training dataset 'imagenet'"),
        (["--data", "synthetic", "--set", "learning_rate=3"], "Unknown training setting 'learning_rate'"),
        (["--data", "synthetic", "--set", "epochs=many"], "epochs=many"),
        (["--data", "bouncing"], "held out for evaluation"),
        (["--data", "synthetic,longterm-heldout"], "held out for evaluation"),
        (["--data", "cutouts,lasot="], "names no folder"),
    ],
)
def test_bad_input_fails_before_training(tmp_path, args, message):
    result = run_cli("train", "--preset", "tiny", "--out", tmp_path / "run", *args)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "latest.pt").exists()


def test_data_spec_names_synthetic_families_and_dataset_roots(tmp_path):
    assert parse_data_spec("synthetic") == {"patches": None, "cutouts": None, "shapes": None}
    assert parse_data_spec(f"shapes,lasot={tmp_path}") == {"shapes": None, "lasot": tmp_path}


def test_synthetic_families_without_set_weights_take_the_defaults_and_longterm_weighs_one():
    def weights(preset, data, *overrides):
        return _training_config(preset, list(overrides), None, False, parse_data_spec(data)).dataset_weights

    assert weights("tiny", "synthetic") == {"patches": 1.0, "cutouts": 2.0, "shapes": 1.0}
    assert weights("tiny", "cutouts,longterm") == {"patches": 1.0, "cutouts": 2.0, "shapes": 1.0, "longterm": 1.0}
    assert weights("tomp50", "shapes")["shapes"] == 1.0
    assert weights("tiny", "cutouts,longterm", "dataset_weights=cutouts:3") == {"cutouts": 3.0}


def test_synthetic_families_are_written_per_family_and_mixed_by_the_preset_weights(training_sources):
    loaded, run = training_sources
    assert set(loaded) == {"patches", "cutouts", "shapes"}
    assert all(len(loaded[family]) == SMALL.synthetic_sequences for family in loaded)
    assert all((run / "synthetic-data" / family / "attributes.json").is_file() for family in loaded)
    sampler = FrameSampler(loaded, SMALL.dataset_weights, SMALL)
    chosen = [
        next(f for f, sequences in loaded.items() if any(s is picked for s in sequences))
        for picked in (sampler.sample(sampler.rng(0, i))[0] for i in range(800))
    ]
    assert chosen.count("cutouts") / len(chosen) == pytest.approx(0.5, abs=0.06)  # weights 1 : 2 : 1


def test_wrong_layout_and_empty_dataset(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ToMPError, match="LaSOT layout"):
        load_sources(parse_data_spec(f"lasot={tmp_path / 'empty'}"), SMALL, tmp_path)
    with pytest.raises(ToMPError, match="not a COCO root"):
        load_sources(parse_data_spec(f"coco={tmp_path / 'empty'}"), SMALL, tmp_path)


def test_overrides():
    config = apply_overrides(SMALL, ["lr_milestones=3,5", "pretrained=false", "dataset_weights=lasot:2,coco:1"])
    assert config.lr_milestones == (3, 5) and config.pretrained is False
    assert config.dataset_weights == {"lasot": 2.0, "coco": 1.0}


def test_batchnorm_learns_when_not_frozen(training_sources, tmp_path):
    loaded, _ = training_sources
    config = dataclasses.replace(SMALL, freeze_backbone_batchnorm=False, samples_per_epoch=8)
    trainer = Trainer(config, FrameSampler(loaded, config.dataset_weights, config), tmp_path)
    statistics = trainer.model.feature_extractor.layer3[0].bn1.running_mean.clone()
    conv1_bn = trainer.model.feature_extractor.bn1.weight.detach().clone()
    trainer.train_epoch(0)
    assert not torch.equal(trainer.model.feature_extractor.layer3[0].bn1.running_mean, statistics)
    assert torch.equal(trainer.model.feature_extractor.bn1.weight, conv1_bn)  # conv1's stage is not trained


def test_shipping_a_fine_tuned_model_keeps_the_provenance_it_started_from(tmp_path):
    from tomp_deploy.train.ship import ship

    shipped = save_checkpoint(
        seeded_model("tiny", 2),
        tmp_path / "tiny.pt",
        meta={"trained_with": "tomp-deploy train --preset tiny ...", "training_seconds": 100.0},
    )
    tuned = seeded_model("tiny", 3)
    run = save_checkpoint(
        tuned,
        tmp_path / "run" / "latest.pt",
        meta={
            "train_config": {"model": "tiny", "seed": 0},
            "epoch": 4,
            "metrics": {"loss": 0.5},
            "initialised_from": str(shipped),
        },
    )
    ship(run, shipped, "tomp-deploy train --init tiny ...", seconds=50.0)
    provenance = json.loads((tmp_path / "tiny.json").read_text())
    assert provenance["trained_with"] == "tomp-deploy train --init tiny ..." and provenance["epochs"] == 4
    assert provenance["initialised_from"]["file"] == "tiny.pt"
    assert provenance["initialised_from"]["trained_with"] == "tomp-deploy train --preset tiny ..."
    assert provenance["total_training_seconds"] == 150.0
    reloaded = load_model(shipped)
    assert reloaded.checkpoint_info.meta == provenance
    for name, value in tuned.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(reloaded.state_dict()[name], value.half().float(), rtol=0, atol=0)
