"""Part 4: training throughput of the tiny and ToMP-50 recipes (their batch sizes and loader workers, AMP on
CUDA as the recipes set it, no ImageNet weights since speed does not depend on them) on squares scenes read
through the LaSOT training reader, and a resume check: a run continued from its checkpoint holds the saved
weights, optimiser and gradient-scaler state, and trains on."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import torch

from benchmarks.gpu.budget import Deadline
from benchmarks.gpu.plan import Plan
from benchmarks.gpu.scenes import write_squares_dataset
from tomp_deploy.runtime.errors import ToMPError
from train.config import TrainConfig, preset
from train.data import FrameSampler, load_sources
from train.trainer import Trainer

TIMED_STEPS = {"tiny": 40, "tomp50": 20}
"""Steps of the timed epoch per recipe on a GPU (one warm-up epoch of as many steps goes first)."""
QUICK = {"batch_size": 2, "steps": 2, "num_workers": 0}


def recipe(plan: Plan, name: str) -> TrainConfig:
    config = preset(name)
    if plan.quick:
        batch, steps, workers = QUICK["batch_size"], QUICK["steps"], QUICK["num_workers"]
    else:
        batch, steps, workers = config.batch_size, TIMED_STEPS[name], min(config.num_workers, os.cpu_count() or 1)
    return dataclasses.replace(config, pretrained=False, batch_size=batch, samples_per_epoch=batch * steps,
                               num_workers=workers, dataset_weights={"lasot": 1.0}, warmup_steps=0)


def equal_states(a, b) -> bool:
    """Whether two state dicts (nested dicts, lists, tensors, numbers) hold the same values."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a.cpu(), b.cpu())
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(equal_states(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(equal_states, a, b))
    return a == b


def same_state(saved: Trainer, resumed: Trainer) -> bool:
    return (equal_states(saved.model.state_dict(), resumed.model.state_dict())
            and equal_states(saved.optimizer.state_dict(), resumed.optimizer.state_dict())
            and equal_states(saved.scaler.state_dict(), resumed.scaler.state_dict()))


def measure(plan: Plan, name: str, sampler_of: Callable[[TrainConfig], FrameSampler], check_resume: bool) -> dict:
    config = recipe(plan, name)
    run_dir = plan.work / f"training-{name}"
    trainer = Trainer(config, sampler_of(config), run_dir, device=plan.device)
    trainer.fit(1)
    timed = trainer.fit(2)[-1]
    steps = config.samples_per_epoch // config.batch_size
    result = {"recipe": name, "amp": trainer.amp, "batch_size": config.batch_size, "workers": config.num_workers,
              "steps": steps, "iterations_per_s": steps / timed["seconds"], "samples_per_s": timed["samples_per_s"],
              "loss": timed["loss"]}
    if check_resume:
        resumed = Trainer(config, sampler_of(config), run_dir, device=plan.device, resume=True)
        held = resumed.start_epoch == 2 and same_state(trainer, resumed)
        loss = resumed.fit(3)[-1]["loss"]
        result["resume"] = (f"ok: continued at epoch 3 from epoch 2's weights, optimiser and scaler; loss {loss:.4f}"
                            if held else "FAILED: the resumed run does not hold the saved state")
    return result


def run(plan: Plan, deadline: Deadline, add: Callable[[dict], None], say: Callable[[str], None]) -> None:
    root = write_squares_dataset(plan.work / "training-data", sequences=4, frames=12 if plan.quick else 40, seed=200)
    sources: dict = {}

    def sampler_of(config: TrainConfig) -> FrameSampler:
        if not sources:
            sources.update(load_sources({"lasot": root}, config, plan.work))
        return FrameSampler(sources, config.dataset_weights, config)

    for index, name in enumerate(plan.training_recipes):
        if deadline.left() < 1.0:
            add({"recipe": name, "not_measured": "the training part's share of the budget ran out"})
            continue
        say(f"training {name}: a warm-up epoch, a timed epoch{' and a resume check' if index == 0 else ''}")
        try:
            result = measure(plan, name, sampler_of, check_resume=index == 0)
        except ToMPError as exc:
            result = {"recipe": name, "not_measured": str(exc)}
        add(result)
        if "iterations_per_s" in result:
            say(f"training {name}: {result['iterations_per_s']:.2f} it/s ({result['samples_per_s']:.1f} samples/s)")
