"""Run by torchrun from test_training.py (`python -m tests.distributed_training DATA_RUN OUT`): every rank
trains CONFIG for two epochs from the synthetic data in DATA_RUN into the run folder OUT/run and saves its
own final weights as OUT/rankR.pt, so that the test can compare the ranks."""

import dataclasses
import sys
from pathlib import Path

import torch

from tomp_deploy.train.config import preset
from tomp_deploy.train.data import FrameSampler, load_sources, parse_data_spec
from tomp_deploy.train.trainer import Trainer

PER_RANK_BATCH = 4
CONFIG = dataclasses.replace(
    preset("tiny"),
    samples_per_epoch=2 * PER_RANK_BATCH,
    batch_size=PER_RANK_BATCH,
    num_workers=0,
    synthetic_sequences=2,
    synthetic_frames=12,
    warmup_steps=0,
)
"""The tiny preset's recipe (BatchNorm learning everywhere), one step of two ranks an epoch."""


def train(data_run: Path, out: Path) -> None:
    sources = load_sources(parse_data_spec("synthetic"), CONFIG, data_run)
    trainer = Trainer(CONFIG, FrameSampler(sources, CONFIG.dataset_weights, CONFIG), out / "run")
    trainer.fit(2)
    torch.save(trainer.model.state_dict(), out / f"rank{trainer.ranks.rank}.pt")


if __name__ == "__main__":
    train(Path(sys.argv[1]), Path(sys.argv[2]))
