"""Training resumed after a kill (FP32 and AMP), started from another checkpoint, and stopped when the
loss diverges."""

import dataclasses

import pytest
import torch

from tests.seeded import seeded_model
from tests.training_setup import SMALL
from tomp_deploy import ToMPError, load_model
from tomp_deploy.model import ToMPNet, save_checkpoint
from tomp_deploy.runtime.presets import preset as model_preset
from tomp_deploy.train.data import FrameSampler
from tomp_deploy.train.resume import RunStart
from tomp_deploy.train.trainer import Trainer, TrainingProgress


def interrupt_after(steps: int):
    """A progress report that interrupts the run after `steps` steps, as Ctrl-C or a kill would."""

    class Interrupting(TrainingProgress):
        def step(self, epoch, step, *_):
            if step >= steps:
                raise KeyboardInterrupt(f"interrupted after {step} steps")

    return Interrupting()


@pytest.mark.parametrize("mixed_precision", [(), pytest.param(("cpu",), marks=pytest.mark.slow)], ids=["fp32", "amp"])
def test_kill_and_resume_equals_uninterrupted(training_sources, tmp_path, mixed_precision):
    """With AMP the gradient scaler's state (scale, growth tracker) must come back too: a resumed run
    that restarted from the initial scale would skip steps the straight run took. Two steps an epoch:
    fp16 autocast is slow on a CPU."""
    loaded, _ = training_sources
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
    resumed = Trainer(config, sampler, tmp_path / "b", start=RunStart(resume=True))
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


def test_resume_from_another_preset_is_refused(training_sources, tmp_path):
    loaded, _ = training_sources
    Trainer(SMALL, FrameSampler(loaded, SMALL.dataset_weights, SMALL), tmp_path).fit(1)
    other = dataclasses.replace(SMALL, model="tomp50")
    with pytest.raises(ToMPError, match="'tiny' model preset, not 'tomp50'"):
        Trainer(other, FrameSampler(loaded, other.dataset_weights, other), tmp_path, start=RunStart(resume=True))


def test_init_starts_from_a_checkpoint_with_a_fresh_optimiser(training_sources, tmp_path):
    loaded, _ = training_sources
    source = save_checkpoint(seeded_model("tiny", 5), tmp_path / "source.pt")
    trainer = Trainer(SMALL, FrameSampler(loaded, SMALL.dataset_weights, SMALL), tmp_path / "run", start=RunStart(init=source))
    expected = load_model(source).state_dict()
    assert all(torch.equal(value, expected[name]) for name, value in trainer.model.state_dict().items())
    assert trainer.start_epoch == 0 and not trainer.optimizer.state
    trainer.fit(1)
    saved = torch.load(tmp_path / "run" / "latest.pt", weights_only=True)
    assert saved["meta"]["initialised_from"] == str(source)


def test_init_refuses_another_architecture_and_resume(training_sources, tmp_path):
    loaded, _ = training_sources
    other = save_checkpoint(ToMPNet(dataclasses.replace(model_preset("tiny"), feature_dim=32)), tmp_path / "other.pt")
    with pytest.raises(ToMPError, match="--init: .* another architecture"):
        Trainer(SMALL, FrameSampler(loaded, SMALL.dataset_weights, SMALL), tmp_path / "a", start=RunStart(init=other))
    with pytest.raises(ToMPError, match="--init and --resume exclude each other"):
        Trainer(
            SMALL, FrameSampler(loaded, SMALL.dataset_weights, SMALL), tmp_path / "b", start=RunStart(resume=True, init=other)
        )


def test_non_finite_loss_stops_training_and_keeps_the_last_checkpoint(training_sources, tmp_path, monkeypatch):
    import tomp_deploy.train.trainer as trainer_module

    loaded, _ = training_sources
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
