"""Part 4: training throughput of the tiny and ToMP-50 recipes (their batch sizes and loader workers, AMP on
CUDA as the recipes set it, no ImageNet weights since speed does not depend on them) on squares scenes read
through the LaSOT training reader, and a resume check: a run continued from its checkpoint holds the saved
weights, optimiser and gradient-scaler state, and trains on.

Throughput is timed inside one epoch, from the end of the warm-up steps to the last step, and the epoch is
stopped at the part's deadline (through the trainer's progress report after each step), so a slow recipe cannot
overrun the budget."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable

import numpy as np
import torch

from benchmarks.gpu.budget import Deadline
from benchmarks.gpu.plan import Plan
from benchmarks.gpu.scenes import write_squares_dataset
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.train.config import TrainConfig, preset
from tomp_deploy.train.data import FrameSampler, load_sources
from tomp_deploy.train.resume import RunStart
from tomp_deploy.train.trainer import Trainer, TrainingProgress

Samplers = Callable[[TrainConfig], FrameSampler]
WARMUP_STEPS = {False: 3, True: 1}
"""Untimed steps first (loader start, cuDNN's algorithm search), on a GPU run and in quick mode."""
MOST_STEPS = {"tiny": 300, "tomp50": 150}
"""Timed steps at most per recipe on a GPU run; the part's deadline usually stops the epoch before."""
QUICK = {"batch_size": 2, "steps": 2, "num_workers": 0}


class DeadlineReached(Exception):
    pass


def recipe(plan: Plan, name: str) -> TrainConfig:
    config = preset(name)
    warmup = WARMUP_STEPS[plan.quick]
    if plan.quick:
        batch, steps, workers = QUICK["batch_size"], warmup + QUICK["steps"], QUICK["num_workers"]
    else:
        batch, steps, workers = config.batch_size, warmup + MOST_STEPS[name], min(config.num_workers, os.cpu_count() or 1)
    return dataclasses.replace(
        config,
        pretrained=False,
        batch_size=batch,
        samples_per_epoch=batch * steps,
        num_workers=workers,
        dataset_weights={"lasot": 1.0},
        warmup_steps=0,
    )


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
    return (
        equal_states(saved.model.state_dict(), resumed.model.state_dict())
        and equal_states(saved.optimizer.state_dict(), resumed.optimizer.state_dict())
        and equal_states(saved.scaler.state_dict(), resumed.scaler.state_dict())
    )


def throughput(plan: Plan, name: str, samplers: Samplers, deadline: Deadline) -> dict:
    config, warmup = recipe(plan, name), WARMUP_STEPS[plan.quick]
    step_ends: list[float] = []
    losses: list[float] = []

    class StepTimes(TrainingProgress):
        def step(self, epoch, steps, total, averaged, samples_per_s, lr) -> None:
            step_ends.append(time.perf_counter())
            losses.append(averaged["loss"])
            if deadline.expired():
                raise DeadlineReached

    started = time.perf_counter()
    trainer = Trainer(config, samplers(config), plan.work / f"training-{name}", device=plan.device, progress=StepTimes())
    try:
        trainer.train_epoch(0)
    except DeadlineReached:
        pass
    timed = len(step_ends) - warmup
    if timed < 1:
        raise ToMPError(
            f"the share of the budget ran out during the {warmup} warm-up steps "
            f"({len(step_ends)} done in {step_ends[-1] - started:.0f} s)"
            if step_ends
            else "the share of the budget ran out before the first step ended"
        )
    rate = timed / (step_ends[-1] - step_ends[warmup - 1])
    return {
        "recipe": name,
        "amp": trainer.amp,
        "batch_size": config.batch_size,
        "workers": config.num_workers,
        "steps": timed,
        "iterations_per_s": rate,
        "samples_per_s": rate * config.batch_size,
        "loss": losses[-1],
    }


def resume_check(plan: Plan, samplers: Samplers) -> str:
    """Two one-step epochs of the tiny recipe; the second run continues the first from its checkpoint."""
    config = dataclasses.replace(recipe(plan, "tiny"), batch_size=2, samples_per_epoch=2, num_workers=0)
    first = Trainer(config, samplers(config), plan.work / "resume-check", device=plan.device)
    first.fit(1)
    resumed = Trainer(config, samplers(config), plan.work / "resume-check", device=plan.device, start=RunStart(resume=True))
    held = resumed.start_epoch == 1 and same_state(first, resumed)
    loss = resumed.fit(2)[-1]["loss"]
    if not held:
        return "FAILED: the resumed run does not hold the saved weights, optimiser or scaler state"
    if not np.isfinite(loss):
        return f"FAILED: the resumed run's loss is {loss}"
    return f"ok: continued at epoch 2 from epoch 1's weights, optimiser and {'scaler' if first.amp else 'settings'}"


def run(plan: Plan, deadline: Deadline, add: Callable[[dict], None], say: Callable[[str], None]) -> None:
    root = write_squares_dataset(plan.work / "training-data", sequences=4, frames=12 if plan.quick else 40, seed=200)
    sources: dict = {}

    def samplers(config: TrainConfig) -> FrameSampler:
        if not sources:
            sources.update(load_sources({"lasot": root}, config, plan.work))
        return FrameSampler(sources, config.dataset_weights, config)

    if deadline.left() < 1.0:
        add({"recipe": "tiny", "check": "resume", "not_measured": "the training part's share of the budget ran out"})
    else:
        say("training: resume check (tiny recipe, two one-step epochs)")
        add({"recipe": "tiny", "check": "resume", "resume": resume_check(plan, samplers)})
    for index, name in enumerate(plan.training_recipes):
        measured = deadline.slice(len(plan.training_recipes) - index)
        if measured.left() < 1.0:
            add({"recipe": name, "not_measured": "the training part's share of the budget ran out"})
            continue
        try:
            result = throughput(plan, name, samplers, measured)
        except ToMPError as exc:
            result = {"recipe": name, "not_measured": str(exc)}
        add(result)
        if "iterations_per_s" in result:
            say(
                f"training {name}: {result['iterations_per_s']:.2f} it/s ({result['samples_per_s']:.1f} samples/s) "
                f"over {result['steps']} steps"
            )
