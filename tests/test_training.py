"""The training module: sampling, processing geometry, losses, frozen layers, learning rates, a real
short run, resumption after a kill, and bad input."""

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.seeded import seeded_model
from tomp_deploy import ToMPError, load_model
from tomp_deploy.datasets.readers import read_lasot
from tomp_deploy.model import ToMPNet, save_checkpoint
from tomp_deploy.overrides import apply_overrides
from tomp_deploy.presets import preset as model_preset
from train.config import preset
from train.data import FrameSampler, TrainSequence, load_sources, parse_data_spec
from train.losses import giou_loss, hinge_classification_loss
from train.processing import crop_around, jittered_box, process, sampling_region, training_label
from train.trainer import Trainer

SMALL = dataclasses.replace(preset("tiny"), samples_per_epoch=16, batch_size=4, num_workers=0,
                            synthetic_sequences=2, synthetic_frames=12, warmup_steps=2)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    return load_sources(parse_data_spec("synthetic"), SMALL, run), run


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
    from tomp_deploy.presets import preset as model_preset

    return model_preset("tiny")


def test_process_outputs(sources):
    loaded, _ = sources
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
    assert giou_loss(pred, target, weights)[0].item() == pytest.approx(0.5, rel=1e-5)  # all-zero weights: mean


def test_frozen_parameters_and_two_learning_rates(sources, tmp_path):
    loaded, _ = sources
    config = dataclasses.replace(SMALL, trainable_backbone_layers=("layer3",), lr_head=1e-3, lr_backbone=1e-5,
                                 warmup_steps=0, freeze_backbone_batchnorm=True)
    trainer = Trainer(config, FrameSampler(loaded, config.dataset_weights, config), tmp_path)
    groups = {g["name"]: g for g in trainer.optimizer.param_groups}
    assert groups["head"]["lr"] == 1e-3 and groups["backbone"]["lr"] == 1e-5
    backbone = dict(trainer.model.feature_extractor.named_parameters())
    trained = {id(p) for p in groups["backbone"]["params"]}
    assert all(id(p) in trained for n, p in backbone.items() if n.startswith("layer3") and "bn" not in n
               and "downsample.1" not in n)
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


def interrupt_after(steps: int):
    """A progress callback that interrupts the run after `steps` steps, as Ctrl-C or a kill would."""
    def report(epoch, step, *_):
        if step >= steps:
            raise KeyboardInterrupt(f"interrupted after {step} steps")
    return report


@pytest.mark.parametrize("mixed_precision", [(), ("cpu",)], ids=["fp32", "amp"])
def test_kill_and_resume_equals_uninterrupted(sources, tmp_path, mixed_precision):
    """With AMP the gradient scaler's state (scale, growth tracker) must come back too: a resumed run
    that restarted from the initial scale would skip steps the straight run took. Two steps an epoch:
    fp16 autocast is slow on a CPU."""
    loaded, _ = sources
    config = dataclasses.replace(SMALL, mixed_precision=mixed_precision, samples_per_epoch=4, batch_size=2)
    sampler = FrameSampler(loaded, config.dataset_weights, config)
    straight = Trainer(config, sampler, tmp_path / "a")
    straight.fit(2)
    assert straight.amp == bool(mixed_precision)

    killed = Trainer(config, sampler, tmp_path / "b")
    killed.fit(1)
    killed.progress = interrupt_after(1)
    with pytest.raises(KeyboardInterrupt):
        killed.train_epoch(1)
    resumed = Trainer(config, sampler, tmp_path / "b", resume=True)
    assert resumed.start_epoch == 1
    saved = torch.load(tmp_path / "b" / "latest.pt", weights_only=True)["training"]["scaler"]
    assert resumed.scaler.state_dict() == saved
    resumed.fit(2)
    assert resumed.scaler.state_dict() == straight.scaler.state_dict()
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    state_a, state_b = straight.optimizer.state_dict(), resumed.optimizer.state_dict()
    for key in state_a["state"]:
        assert torch.equal(state_a["state"][key]["exp_avg"], state_b["state"][key]["exp_avg"])
    assert [g["lr"] for g in state_a["param_groups"]] == [g["lr"] for g in state_b["param_groups"]]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "tomp_deploy", *map(str, args)], capture_output=True, text=True)


def test_one_epoch_run_loads_exports_and_tracks(tmp_path):
    run = tmp_path / "run"
    result = run_cli("train", "--preset", "tiny", "--data", "synthetic", "--out", run, "--set", "samples_per_epoch=96",
                     "--set", "batch_size=4", "--set", "num_workers=1", "--set", "synthetic_sequences=3",
                     "--set", "synthetic_frames=12")
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
    tracked = run_cli("track", sequence.frames[0].parent, "--model", exported, "--backend", "onnxruntime",
                      "--output", boxes)
    assert tracked.returncode == 0, tracked.stderr
    assert len(boxes.read_text().splitlines()) == 12


@pytest.mark.parametrize("args,message", [
    (["--data", "lasot=/does/not/exist"], "does not exist"),
    (["--data", "imagenet=/tmp"], "Unknown training dataset 'imagenet'"),
    (["--data", "synthetic", "--set", "learning_rate=3"], "Unknown training setting 'learning_rate'"),
    (["--data", "synthetic", "--set", "epochs=many"], "epochs=many"),
    (["--data", "bouncing"], "held out for evaluation"),
    (["--data", "cutouts,lasot="], "names no folder"),
])
def test_bad_input_fails_before_training(tmp_path, args, message):
    result = run_cli("train", "--preset", "tiny", "--out", tmp_path / "run", *args)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "latest.pt").exists()


def test_data_spec_names_synthetic_families_and_dataset_roots(tmp_path):
    assert parse_data_spec("synthetic") == {"patches": None, "cutouts": None, "shapes": None}
    assert parse_data_spec(f"shapes,lasot={tmp_path}") == {"shapes": None, "lasot": tmp_path}


def test_synthetic_families_are_written_per_family_and_mixed_by_the_preset_weights(sources):
    loaded, run = sources
    assert set(loaded) == {"patches", "cutouts", "shapes"}
    assert all(len(loaded[family]) == SMALL.synthetic_sequences for family in loaded)
    assert all((run / "synthetic-data" / family / "attributes.json").is_file() for family in loaded)
    sampler = FrameSampler(loaded, SMALL.dataset_weights, SMALL)
    chosen = [next(f for f, sequences in loaded.items() if any(s is picked for s in sequences))
              for picked in (sampler.sample(sampler.rng(0, i))[0] for i in range(800))]
    assert chosen.count("cutouts") / len(chosen) == pytest.approx(0.5, abs=0.06)  # weights 1 : 2 : 1


def test_wrong_layout_and_empty_dataset(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ToMPError, match="LaSOT layout"):
        load_sources(parse_data_spec(f"lasot={tmp_path / 'empty'}"), SMALL, tmp_path)
    with pytest.raises(ToMPError, match="not a COCO root"):
        load_sources(parse_data_spec(f"coco={tmp_path / 'empty'}"), SMALL, tmp_path)


def test_resume_from_another_preset_is_refused(sources, tmp_path):
    loaded, _ = sources
    Trainer(SMALL, FrameSampler(loaded, SMALL.dataset_weights, SMALL), tmp_path).fit(1)
    other = dataclasses.replace(SMALL, model="tomp50")
    with pytest.raises(ToMPError, match="'tiny' model preset, not 'tomp50'"):
        Trainer(other, FrameSampler(loaded, other.dataset_weights, other), tmp_path, resume=True)


def test_overrides():
    config = apply_overrides(SMALL, ["lr_milestones=3,5", "pretrained=false", "dataset_weights=lasot:2,coco:1"])
    assert config.lr_milestones == (3, 5) and config.pretrained is False
    assert config.dataset_weights == {"lasot": 2.0, "coco": 1.0}


def test_batchnorm_learns_when_not_frozen(sources, tmp_path):
    loaded, _ = sources
    config = dataclasses.replace(SMALL, freeze_backbone_batchnorm=False, samples_per_epoch=8)
    trainer = Trainer(config, FrameSampler(loaded, config.dataset_weights, config), tmp_path)
    statistics = trainer.model.feature_extractor.layer3[0].bn1.running_mean.clone()
    conv1_bn = trainer.model.feature_extractor.bn1.weight.detach().clone()
    trainer.train_epoch(0)
    assert not torch.equal(trainer.model.feature_extractor.layer3[0].bn1.running_mean, statistics)
    assert torch.equal(trainer.model.feature_extractor.bn1.weight, conv1_bn)  # conv1's stage is not trained


def test_init_starts_from_a_checkpoint_with_a_fresh_optimiser(sources, tmp_path):
    loaded, _ = sources
    source = save_checkpoint(seeded_model("tiny", 5), tmp_path / "source.pt")
    trainer = Trainer(SMALL, FrameSampler(loaded, SMALL.dataset_weights, SMALL), tmp_path / "run", init=source)
    expected = load_model(source).state_dict()
    assert all(torch.equal(value, expected[name]) for name, value in trainer.model.state_dict().items())
    assert trainer.start_epoch == 0 and not trainer.optimizer.state
    trainer.fit(1)
    saved = torch.load(tmp_path / "run" / "latest.pt", weights_only=True)
    assert saved["meta"]["initialised_from"] == str(source)


def test_init_refuses_another_architecture_and_resume(sources, tmp_path):
    loaded, _ = sources
    other = save_checkpoint(ToMPNet(dataclasses.replace(model_preset("tiny"), feature_dim=32)), tmp_path / "other.pt")
    with pytest.raises(ToMPError, match="--init: .* another architecture"):
        Trainer(SMALL, FrameSampler(loaded, SMALL.dataset_weights, SMALL), tmp_path / "a", init=other)
    with pytest.raises(ToMPError, match="--init and --resume exclude each other"):
        Trainer(SMALL, FrameSampler(loaded, SMALL.dataset_weights, SMALL), tmp_path / "b", init=other, resume=True)


def test_shipping_a_fine_tuned_model_keeps_the_provenance_it_started_from(tmp_path):
    from train.ship import ship

    shipped = save_checkpoint(seeded_model("tiny", 2), tmp_path / "tiny.pt",
                              meta={"trained_with": "tomp-deploy train --preset tiny ...", "training_seconds": 100.0})
    tuned = seeded_model("tiny", 3)
    run = save_checkpoint(tuned, tmp_path / "run" / "latest.pt",
                          meta={"train_config": {"model": "tiny", "seed": 0}, "epoch": 4, "metrics": {"loss": 0.5},
                                "initialised_from": str(shipped)})
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


def test_non_finite_loss_stops_training_and_keeps_the_last_checkpoint(sources, tmp_path, monkeypatch):
    import train.trainer as trainer_module

    loaded, _ = sources
    trainer = Trainer(SMALL, FrameSampler(loaded, SMALL.dataset_weights, SMALL), tmp_path)
    trainer.fit(1)
    saved = (tmp_path / "latest.pt").read_bytes()
    real = trainer_module.forward_losses

    def diverging(*args):
        losses = real(*args)
        return {**losses, "loss": losses["loss"] * float("nan")}

    monkeypatch.setattr(trainer_module, "forward_losses", diverging)
    with pytest.raises(ToMPError, match="loss became nan at epoch 2, step 1: training diverged"):
        trainer.fit(2)
    assert (tmp_path / "latest.pt").read_bytes() == saved


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory):
    """tests/distributed_training.py run by two gloo processes under torchrun."""
    from tests.distributed_training import CONFIG

    data, out = tmp_path_factory.mktemp("data"), tmp_path_factory.mktemp("ranks")
    load_sources(parse_data_spec("synthetic"), CONFIG, data)
    torchrun = Path(sys.executable).with_name("torchrun")
    done = subprocess.run([torchrun, "--standalone", "--nproc-per-node", "2", "-m", "tests.distributed_training",
                           data, out], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return data, out


def test_two_ranks_end_with_one_model(two_rank_run):
    _, out = two_rank_run
    ranks = [torch.load(out / f"rank{rank}.pt", weights_only=True) for rank in (0, 1)]
    initial = ToMPNet(model_preset("tiny")).state_dict()
    for key in ranks[0]:
        assert torch.equal(ranks[0][key], ranks[1][key]), key
    assert not torch.equal(ranks[0]["head.classifier.linear.weight"], initial["head.classifier.linear.weight"])
    saved = load_model(out / "run" / "latest.pt").state_dict()
    assert all(torch.equal(saved[key], ranks[0][key]) for key in saved)


def test_two_ranks_log_the_loss_of_their_whole_batch(two_rank_run):
    """The first step's logged losses are those of the global batch: the hinge loss averaged over the two
    shards (rank 0 takes the even samples, rank 1 the odd ones) and the GIoU loss over the counted cells of
    both. The run is not compared with one process on the whole batch: BatchNorm in training mode
    normalises each rank's shard by its own statistics (SyncBatchNorm, which would share them, needs CUDA),
    in the head's box encoding too, so two ranks are two shards of the batch, not one batch."""
    from tests.distributed_training import CONFIG, PER_RANK_BATCH
    from train.trainer import forward_losses, freeze_backbone

    data, out = two_rank_run
    first, second = [json.loads(line) for line in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    assert (first["epoch"], second["epoch"]) == (1, 2)
    config = dataclasses.replace(CONFIG, batch_size=2 * PER_RANK_BATCH)
    sources = load_sources(parse_data_spec("synthetic"), config, data)
    trainer = Trainer(config, FrameSampler(sources, config.dataset_weights, config), out / "one-process")
    trainer.model.train()
    freeze_backbone(trainer.model, config)
    (batch,) = list(trainer._loader(0))
    shards = [{key: value[rank::2] for key, value in batch.items()} for rank in (0, 1)]
    with torch.no_grad():
        losses = [forward_losses(trainer.model, shard, config) for shard in shards]
    cells = [float((shard["test_region"] > 0).sum()) for shard in shards]
    clf = (float(losses[0]["clf"]) + float(losses[1]["clf"])) / 2
    giou = sum(float(loss["giou"]) * count for loss, count in zip(losses, cells)) / sum(cells)
    iou = sum(float(loss["iou"]) * count for loss, count in zip(losses, cells)) / sum(cells)
    assert abs(float(losses[0]["clf"]) - float(losses[1]["clf"])) > 1e-3 * clf
    assert first["clf"] == pytest.approx(clf, rel=1e-3)
    assert first["giou"] == pytest.approx(giou, rel=1e-3)
    assert first["iou"] == pytest.approx(iou, rel=1e-3, abs=1e-6)
    assert first["loss"] == pytest.approx(config.weight_clf * clf + config.weight_giou * giou, rel=1e-3)


def test_torchrun_cli_run_writes_and_prints_once(tmp_path):
    """The user's two-process run: rank 0 alone writes the synthetic data, the metrics and checkpoints, and
    prints; the other rank waits for the data rank 0 writes."""
    run = tmp_path / "run"
    torchrun = Path(sys.executable).with_name("torchrun")
    done = subprocess.run([torchrun, "--standalone", "--nproc-per-node", "2", "-m", "tomp_deploy", "train", "--preset",
                           "tiny", "--data", "patches", "--out", run, "--epochs", "2", "--set", "samples_per_epoch=8",
                           "--set", "batch_size=2", "--set", "num_workers=0", "--set", "synthetic_sequences=2",
                           "--set", "synthetic_frames=12"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("checkpoint:") == 1 and done.stdout.count("epoch 2: loss") == 1, done.stdout
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert sorted(path.name for path in (run / "checkpoints").iterdir()) == ["epoch_0001.pt", "epoch_0002.pt"]


def test_giou_normalised_by_the_mean_count_over_ranks_averages_to_the_global_mean():
    generator = torch.Generator().manual_seed(0)
    pred, target = torch.rand(4, 4, 3, 3, generator=generator) + 0.1, torch.rand(4, 4, 3, 3, generator=generator) + 0.1
    weights = torch.zeros(4, 1, 3, 3)
    weights[0, 0, :2] = 1
    weights[1, 0, 0, 0] = 1
    weights[3, 0] = 1
    whole, _ = giou_loss(pred, target, weights)
    mean_count = (weights > 0).sum() / 2
    shards = [giou_loss(pred[half], target[half], weights[half], mean_count)[0] for half in (slice(0, 2), slice(2, 4))]
    torch.testing.assert_close((shards[0] + shards[1]) / 2, whole)
    unnormalised = [giou_loss(pred[half], target[half], weights[half])[0] for half in (slice(0, 2), slice(2, 4))]
    assert not torch.isclose((unnormalised[0] + unnormalised[1]) / 2, whole)
