"""Training on several processes (torchrun, gloo): one model on every rank, the loss of the whole batch,
one writer, and the GIoU normalisation that makes the ranks' mean the global mean."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tomp_deploy import load_model
from tomp_deploy.model import ToMPNet
from tomp_deploy.runtime.presets import preset as model_preset
from tomp_deploy.train.data import FrameSampler, load_sources, parse_data_spec
from tomp_deploy.train.losses import giou_loss
from tomp_deploy.train.trainer import Trainer


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory):
    """tests/distributed_training.py run by two gloo processes under torchrun."""
    from tests.distributed_training import CONFIG

    data, out = tmp_path_factory.mktemp("data"), tmp_path_factory.mktemp("ranks")
    load_sources(parse_data_spec("synthetic"), CONFIG, data)
    torchrun = Path(sys.executable).with_name("torchrun")
    done = subprocess.run(
        [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "tests.distributed_training", data, out],
        capture_output=True,
        text=True,
        timeout=600,
    )
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
    from tomp_deploy.train.trainer import forward_losses, freeze_backbone

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


@pytest.mark.slow
def test_torchrun_cli_run_writes_and_prints_once(tmp_path):
    """The user's two-process run: rank 0 alone writes the synthetic data, the metrics and checkpoints, and
    prints; the other rank waits for the data rank 0 writes."""
    run = tmp_path / "run"
    torchrun = Path(sys.executable).with_name("torchrun")
    done = subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "tomp_deploy",
            "train",
            "--preset",
            "tiny",
            "--data",
            "patches",
            "--out",
            run,
            "--epochs",
            "2",
            "--set",
            "samples_per_epoch=8",
            "--set",
            "batch_size=2",
            "--set",
            "num_workers=0",
            "--set",
            "synthetic_sequences=2",
            "--set",
            "synthetic_frames=12",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("checkpoint:") == 1, done.stdout
    assert [done.stdout.count(f"epoch {n}: loss") for n in (1, 2)] == [1, 1], done.stdout
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
