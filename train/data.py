"""Training data: dataset roots from a spec, and the sampler of (2 train + 1 test)-frame samples."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tomp_deploy.evaluation.datasets.readers import read_got10k, read_lasot, read_trackingnet
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.train.config import TrainConfig


@dataclass
class TrainSequence:
    frames: list[Path]
    boxes: np.ndarray
    visible: np.ndarray


def _from_sequences(sequences) -> list[TrainSequence]:
    return [TrainSequence(s.frames, s.ground_truth, s.valid) for s in sequences]


def read_coco(root: Path) -> list[TrainSequence]:
    """COCO 2017 train: ROOT/annotations/instances_train2017.json and ROOT/train2017/; every non-crowd
    object is a one-frame sequence."""
    annotations = root / "annotations" / "instances_train2017.json"
    if not annotations.is_file():
        raise ToMPError(f"{root} is not a COCO root: {annotations} is missing.")
    content = json.loads(annotations.read_text())
    files = {image["id"]: root / "train2017" / image["file_name"] for image in content["images"]}
    return [
        TrainSequence([files[a["image_id"]]], np.array([a["bbox"]], float), np.array([True]))
        for a in content["annotations"]
        if not a.get("iscrowd") and a["bbox"][2] > 0 and a["bbox"][3] > 0
    ]


def _trackingnet_training(root: Path) -> list[TrainSequence]:
    sets = sorted(p.name for p in root.glob("TRAIN_*") if p.is_dir())
    if not sets:
        raise ToMPError(f"{root} is not a TrackingNet root: no TRAIN_<k> folders.")
    return [s for name in sets for s in _from_sequences(read_trackingnet(root, name))]


READERS = {
    "lasot": lambda root: _from_sequences(read_lasot(root, training=True)),
    "got10k": lambda root: _from_sequences(read_got10k(root, "train")),
    "trackingnet": _trackingnet_training,
    "coco": read_coco,
}


def parse_data_spec(spec: str) -> dict[str, Path | None]:
    """'lasot=/data/lasot,got10k=/data/got10k' -> {name: root}. A synthetic family stands by its name and
    has no root ('cutouts,lasot=/data/lasot'); 'synthetic' stands for every training family."""
    from tomp_deploy.evaluation.synth import FAMILIES, HELD_OUT_FAMILY, LONG_TERM_HELD_OUT_FAMILY, TRAINING_FAMILIES

    roots: dict[str, Path | None] = {}
    for item in (part.strip() for part in spec.split(",")):
        name, separator, root = item.partition("=")
        if not separator:
            if name == "synthetic":
                roots.update(dict.fromkeys(TRAINING_FAMILIES))
            elif name in (HELD_OUT_FAMILY, LONG_TERM_HELD_OUT_FAMILY):
                raise ToMPError(
                    f"The {name!r} synthetic family is held out for evaluation; train on "
                    f"{', '.join(TRAINING_FAMILIES)} (or 'synthetic' for all of them)."
                )
            elif name in FAMILIES:
                roots[name] = None
            else:
                raise ToMPError(
                    f"--data item {item!r} is not NAME=ROOT, a synthetic family ({', '.join(TRAINING_FAMILIES)}) or 'synthetic'."
                )
            continue
        if not root:
            raise ToMPError(f"--data item {item!r} names no folder after '='.")
        if name not in READERS:
            raise ToMPError(
                f"Unknown training dataset {name!r}; choose from {', '.join(READERS)}, a synthetic family or 'synthetic'."
            )
        roots[name] = Path(root)
    return roots


def load_sources(spec: dict[str, Path | None], config: TrainConfig, run_dir: Path, progress=None) -> dict:
    """Reads every dataset of the spec (writing the synthetic families into RUN/synthetic-data/ first, in
    `num_workers` processes); errors before training starts."""
    from tomp_deploy.evaluation.synth import generate_benchmark

    sources = {}
    for name, root in spec.items():
        if root is None:
            root = run_dir / "synthetic-data" / name
            if not (root / "attributes.json").is_file():
                generate_benchmark(
                    root,
                    config.synthetic_sequences,
                    config.synthetic_frames,
                    seed=1000 + config.seed,
                    family=name,
                    workers=max(config.num_workers, 1),
                    progress=progress,
                )
            sequences = _from_sequences(read_lasot(root))
        else:
            if not root.is_dir():
                raise ToMPError(f"The {name} root {root} does not exist.")
            sequences = READERS[name](root)
        usable = [s for s in sequences if s.visible.sum() >= 1]
        if not usable:
            raise ToMPError(f"The {name} dataset at {root} holds no sequence with a visible target.")
        sources[name] = usable
    return sources


class FrameSampler:
    """Chooses a dataset by weight, a sequence, and train/test frames with the target visible within
    `max_gap` frames of an anchor (the window widens by 5 frames per failed try, as in DiMP's sampler).
    Every sample is a pure function of (seed, epoch, index), so workers and resumed runs agree."""

    def __init__(self, sources: dict[str, list[TrainSequence]], weights: dict[str, float], config: TrainConfig):
        missing = [name for name in sources if weights.get(name, 0) <= 0]
        if missing:
            raise ToMPError(
                f"No sampling weight for {missing}; set dataset_weights (e.g. --set dataset_weights="
                f"{','.join(f'{n}:1' for n in sources)})."
            )
        self.names = list(sources)
        self.sources = sources
        probabilities = np.array([weights[n] for n in self.names], dtype=np.float64)
        self.probabilities = probabilities / probabilities.sum()
        self.config = config

    def rng(self, epoch: int, index: int) -> np.random.Generator:
        return np.random.default_rng([self.config.seed, epoch, index])

    def sample(self, rng: np.random.Generator) -> tuple[TrainSequence, list[int], list[int]]:
        config = self.config
        needed = config.num_train_frames + config.num_test_frames
        while True:
            source = self.sources[self.names[rng.choice(len(self.names), p=self.probabilities)]]
            sequence = source[rng.integers(len(source))]
            visible = np.flatnonzero(sequence.visible)
            if len(sequence.frames) == 1:
                return sequence, [0] * config.num_train_frames, [0] * config.num_test_frames
            if len(visible) < needed:
                continue
            gap = config.max_gap
            for _ in range(50):
                anchor = int(rng.choice(visible))
                before = visible[(visible >= anchor - gap) & (visible < anchor)]
                after = visible[(visible > anchor) & (visible <= anchor + gap)]
                if len(before) >= config.num_train_frames - 1 and len(after) >= config.num_test_frames:
                    train = [anchor] + sorted(rng.choice(before, config.num_train_frames - 1, replace=False).tolist())
                    test = sorted(rng.choice(after, config.num_test_frames, replace=False).tolist())
                    return sequence, train, test
                gap += 5
