"""The small training configuration the training tests share (its data: the `training_sources` fixture)."""

import dataclasses

from tomp_deploy.train.config import preset

SMALL = dataclasses.replace(
    preset("tiny"), samples_per_epoch=16, batch_size=4, num_workers=0, synthetic_sequences=2, synthetic_frames=12, warmup_steps=2
)
