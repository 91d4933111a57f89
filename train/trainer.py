"""The training loop: frozen backbone stages, AdamW with two learning rates, step decay, AMP on CUDA,
DistributedDataParallel under torchrun, atomic per-epoch checkpoints and exact resumption."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from tomp_deploy.model import ToMPNet, load_model, save_checkpoint
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.presets import preset as model_preset
from tomp_deploy.train import distributed
from tomp_deploy.train.config import TrainConfig
from tomp_deploy.train.data import FrameSampler
from tomp_deploy.train.losses import giou_loss, hinge_classification_loss
from tomp_deploy.train.processing import process
from tomp_deploy.train.resume import LATEST, RunStart, check_resumable, check_start, resume_point


class SampleDataset(Dataset):
    """`samples_per_epoch` samples; sample i of epoch e depends on (seed, e, i) only."""

    def __init__(self, sampler: FrameSampler, config: TrainConfig):
        self.sampler = sampler
        self.config = config
        self.model_config = model_preset(config.model)
        self.epoch = 0

    def __len__(self) -> int:
        return self.config.samples_per_epoch

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        rng = self.sampler.rng(self.epoch, index)
        sequence, train_ids, test_ids = self.sampler.sample(rng)
        return process(sequence, train_ids, test_ids, rng, self.model_config, self.config)


def seed_worker(worker_id: int) -> None:
    """Each loader worker gets its own numpy/torch seeds derived from the loader's base seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)


def freeze_backbone(model: ToMPNet, config: TrainConfig) -> None:
    """Only `trainable_backbone_layers` of the backbone learn; with `freeze_backbone_batchnorm` every
    backbone BatchNorm keeps its weights and running statistics."""
    backbone = model.feature_extractor
    for name, parameter in backbone.named_parameters():
        is_batchnorm = ".bn" in name or name.startswith("bn") or "downsample.1" in name
        parameter.requires_grad = name.split(".")[0] in config.trainable_backbone_layers and not (
            is_batchnorm and config.freeze_backbone_batchnorm
        )
    if config.freeze_backbone_batchnorm:
        for module in backbone.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eval()


def param_groups(model: ToMPNet, config: TrainConfig) -> list[dict]:
    backbone = [p for p in model.feature_extractor.parameters() if p.requires_grad]
    return [
        {"params": list(model.head.parameters()), "lr": config.lr_head, "name": "head"},
        {"params": backbone, "lr": config.lr_backbone, "name": "backbone"},
    ]


def forward_losses(model: ToMPNet, batch: dict[str, torch.Tensor], config: TrainConfig) -> dict[str, torch.Tensor]:
    train_images, test_images = batch["train_images"], batch["test_images"]
    size, frames = train_images.shape[0], train_images.shape[1]
    images = torch.cat([train_images.flatten(0, 1), test_images[:, 0]])
    feats = model.backbone(images)
    train_feat = feats[: size * frames].unflatten(0, (size, frames))
    test_feat = feats[size * frames :]
    weights, encoded = model.predictor.predict_batch(train_feat, batch["train_label"], batch["train_ltrb"], test_feat)
    scores = model.head.classifier(encoded, weights)
    ltrb = model.head.bb_regressor(encoded, weights)
    clf = hinge_classification_loss(scores, batch["test_label"][:, 0], config.hinge_threshold)
    region = batch["test_region"][:, 0]
    counted_cells = distributed.mean_over_ranks((region > 0).sum().to(torch.float32))
    giou, ious = giou_loss(ltrb, batch["test_ltrb"][:, 0], region, counted_cells)
    return {
        "loss": config.weight_clf * clf + config.weight_giou * giou,
        "clf": clf,
        "giou": giou,
        "iou": ious.sum() / counted_cells if counted_cells > 0 else torch.zeros(()),
    }


class TrainingStep(torch.nn.Module):
    """The model and its losses as one forward. DistributedDataParallel all-reduces the gradients of the
    parameters its wrapped forward used, so the whole loss computation must run through it."""

    def __init__(self, model: ToMPNet, config: TrainConfig):
        super().__init__()
        self.model = model
        self.config = config

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return forward_losses(self.model, batch, self.config)


class TrainingProgress(Protocol):
    """What the main rank reports while training."""

    def step(self, epoch: int, step: int, steps: int, losses: dict[str, float], rate: float, lr: float) -> None: ...

    def epoch_done(self, metrics: dict) -> None:
        """After the epoch's checkpoint and metrics line are written; nothing unless a report overrides it."""


class Trainer:
    def __init__(
        self,
        config: TrainConfig,
        sampler: FrameSampler,
        run_dir: Path,
        device: str = "cpu",
        start: RunStart = RunStart(),
        tensorboard: bool = False,
        progress: TrainingProgress | None = None,
    ):
        self.config = config
        self.run_dir = Path(run_dir)
        self.ranks = distributed.start(device)
        self.world = self.ranks.world
        if device.startswith("cuda") and torch.cuda.is_available() and self.world > 1:
            device = f"cuda:{self.ranks.local_rank}"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ToMPError("--device cuda was asked for, but PyTorch sees no CUDA GPU. Use --device cpu.")
        self.device = torch.device(device)
        self.progress = progress
        torch.manual_seed(config.seed)
        self.model = ToMPNet(model_preset(config.model), pretrained_backbone=config.pretrained)
        check_start(self.run_dir, start, config)
        if start.init is not None:
            self._initialise(Path(start.init))
        freeze_backbone(self.model, config)
        self.model.to(self.device)
        self.optimizer = torch.optim.AdamW(param_groups(self.model, config), lr=config.lr_head, weight_decay=config.weight_decay)
        self.amp = self.device.type in config.mixed_precision
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp)
        self.start_epoch = 0
        self.notes: list[str] = []
        """What the user should know about how the run started (a damaged latest.pt passed over)."""
        self.initialised_from = str(start.init) if start.init is not None else None
        if start.resume:
            self._resume()
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.optimizer, list(config.lr_milestones), config.lr_gamma, last_epoch=self.start_epoch - 1
        )
        self.network = TrainingStep(self.model, config)
        if self.world > 1:
            self.network = torch.nn.parallel.DistributedDataParallel(
                self.network, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.dataset = SampleDataset(sampler, config)
        self.writer = self._tensorboard() if tensorboard and self.ranks.is_main else None

    def _tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ToMPError("--tensorboard needs the 'tensorboard' package: pip install tensorboard.") from None
        return SummaryWriter(str(self.run_dir / "tensorboard"))

    def _initialise(self, path: Path) -> None:
        """Starts from the weights of any loadable checkpoint (fine-tuning); optimiser and epochs start fresh."""
        trained = load_model(path)
        if trained.config != self.model.config:
            raise ToMPError(
                f"--init: {path} holds another architecture ({trained.config.backbone}, feature_dim "
                f"{trained.config.feature_dim}) than the {self.config.model!r} preset builds; pick the matching "
                "--preset or another checkpoint."
            )
        self.model.load_state_dict(trained.state_dict())

    def _resume(self) -> None:
        """Continues from latest.pt, or from the newest intact epoch checkpoint when latest.pt is damaged
        (`self.notes` says so); settings other than the epoch count must be the run's own."""
        path, content, note = resume_point(self.run_dir)
        if note:
            self.notes.append(note)
        check_resumable(path, content, self.config)
        self.model.load_state_dict(content["state_dict"])
        self.optimizer.load_state_dict(content["training"]["optimizer"])
        if self.amp and "scaler" in content["training"]:
            self.scaler.load_state_dict(content["training"]["scaler"])
        self.start_epoch = int(content["training"]["epoch"])
        self.initialised_from = content.get("meta", {}).get("initialised_from")

    def _loader(self, epoch: int) -> DataLoader:
        self.dataset.epoch = epoch
        sampler = DistributedSampler(self.dataset, self.world, self.ranks.rank, shuffle=False) if self.world > 1 else None
        generator = torch.Generator().manual_seed(self.config.seed * 1000 + epoch)
        return DataLoader(
            self.dataset,
            batch_size=self.config.batch_size,
            sampler=sampler,
            drop_last=True,
            num_workers=self.config.num_workers,
            worker_init_fn=seed_worker,
            generator=generator,
            persistent_workers=False,
            pin_memory=self.device.type == "cuda",
        )

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One epoch. A non-finite loss stops training with the last checkpoint left as it was."""
        self.network.train()
        freeze_backbone(self.model, self.config)
        totals: dict[str, float] = {}
        step_losses: list[float] = []
        steps, samples, started = 0, 0, time.perf_counter()
        loader = self._loader(epoch)
        scheduled = [group["lr"] for group in self.optimizer.param_groups]
        for batch in loader:
            global_step = epoch * len(loader) + steps
            if global_step < self.config.warmup_steps:
                for group, lr in zip(self.optimizer.param_groups, scheduled):
                    group["lr"] = lr * (global_step + 1) / self.config.warmup_steps
            batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
                losses = self.network(batch)
            averaged = dict(
                zip(
                    losses,
                    distributed.mean_over_ranks(torch.stack([value.detach().float() for value in losses.values()])).tolist(),
                )
            )
            if not np.isfinite(averaged["loss"]):
                raise ToMPError(
                    f"The training loss became {averaged['loss']} at epoch {epoch + 1}, step {steps + 1}: training "
                    f"diverged. {self.run_dir / LATEST} holds the last finished epoch; lower the learning rates "
                    "(--set lr_head=..., lr_backbone=...) and continue with --resume, or start again."
                )
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(losses["loss"]).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            steps += 1
            samples += batch["test_images"].shape[0] * self.world
            for key, value in averaged.items():
                totals[key] = totals.get(key, 0.0) + value
            step_losses.append(averaged["loss"])
            if self.progress and self.ranks.is_main:
                self.progress.step(
                    epoch,
                    steps,
                    len(loader),
                    {k: v / steps for k, v in totals.items()},
                    samples / (time.perf_counter() - started),
                    self.optimizer.param_groups[0]["lr"],
                )
        if steps == 0:
            raise ToMPError("The epoch had no full batch: raise samples_per_epoch or lower batch_size.")
        for group, lr in zip(self.optimizer.param_groups, scheduled):
            group["lr"] = lr
        self.scheduler.step()
        elapsed = time.perf_counter() - started
        quarter = max(len(step_losses) // 4, 1)
        return {
            **{k: v / steps for k, v in totals.items()},
            "samples_per_s": samples / elapsed,
            "seconds": elapsed,
            "first_quarter_loss": float(np.mean(step_losses[:quarter])),
            "last_quarter_loss": float(np.mean(step_losses[-quarter:])),
            "lr_head": self.optimizer.param_groups[0]["lr"],
            "lr_backbone": self.optimizer.param_groups[1]["lr"],
        }

    def save(self, epoch: int, metrics: dict) -> Path:
        meta = {
            "train_config": json.loads(json.dumps(dataclasses.asdict(self.config))),
            "epoch": epoch,
            "metrics": metrics,
            "initialised_from": self.initialised_from,
            "tracker": self.config.tracker.to_dict(),
        }
        training = {"epoch": epoch, "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict()}
        path = save_checkpoint(self.model, self.run_dir / "checkpoints" / f"epoch_{epoch:04d}.pt", meta, training)
        save_checkpoint(self.model, self.run_dir / LATEST, meta, training)
        return path

    def fit(self, epochs: int) -> list[dict]:
        history = []
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for epoch in range(self.start_epoch, epochs):
            metrics = {"epoch": epoch + 1, **self.train_epoch(epoch)}
            distributed.average_buffers(self.model)
            self.start_epoch = epoch + 1
            if self.ranks.is_main:
                self.save(epoch + 1, metrics)
                with open(self.run_dir / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(metrics) + "\n")
                if self.writer:
                    for key, value in metrics.items():
                        self.writer.add_scalar(key, value, epoch + 1)
                if self.progress:
                    self.progress.epoch_done(metrics)
            history.append(metrics)
        return history
