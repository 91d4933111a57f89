"""Packages a trained checkpoint as a shipped model: weights stored in FP16 (load_model widens them to
FP32), training state dropped, provenance recorded in the file and in a README beside it.

    python -m tomp_deploy.train.ship RUN/latest.pt tomp_deploy/data/tiny.pt --command "tomp-deploy train ..."
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import torch

from tomp_deploy.evaluation.host_facts import host_facts
from tomp_deploy.model import load_model, save_checkpoint


def _meta(checkpoint: Path) -> dict:
    return torch.load(checkpoint, map_location="cpu", weights_only=True).get("meta") or {}


def ship(checkpoint: Path, target: Path, command: str, seconds: float | None) -> Path:
    """A model fine-tuned with `train --init` keeps the provenance of the model it started from (read
    before `target` is overwritten, since that is often the same file)."""
    model = load_model(checkpoint)
    trained = _meta(checkpoint)
    start = trained.get("initialised_from")
    earlier = _meta(Path(start)) if start and Path(start).is_file() else None
    provenance = {
        "trained_with": command,
        "train_config": trained.get("train_config"),
        "epochs": trained.get("epoch"),
        "final_epoch_metrics": trained.get("metrics"),
        "training_seconds": seconds,
        "synthetic_data_seed": 1000 + int((trained.get("train_config") or {}).get("seed", 0)),
        "machine": host_facts(),
        "shipped": datetime.date.today().isoformat(),
        "storage": "float16 (loaded as float32)",
    }
    if earlier is not None:
        provenance["initialised_from"] = {"file": Path(start).name, **earlier}
        earlier_seconds = earlier.get("total_training_seconds") or earlier.get("training_seconds")
        if seconds is not None and earlier_seconds is not None:
            provenance["total_training_seconds"] = seconds + earlier_seconds
    save_checkpoint(model.half(), target, meta=provenance)
    (target.parent / f"{target.stem}.json").write_text(json.dumps(provenance, indent=2))
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--command", required=True, help="The training command, recorded with the model")
    parser.add_argument("--seconds", type=float, default=None, help="Wall-clock training time")
    args = parser.parse_args()
    print(ship(args.checkpoint, args.target, args.command, args.seconds))


if __name__ == "__main__":
    main()
