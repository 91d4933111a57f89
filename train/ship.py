"""Packages a trained checkpoint as a shipped model: weights stored in FP16 (load_model widens them to
FP32), training state dropped, provenance recorded in the file and in a README beside it.

    python -m train.ship RUN/latest.pt tomp_deploy/data/tiny.pt --command "tomp-deploy train ..."
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import torch

from tomp_deploy.machine import machine_facts
from tomp_deploy.model import load_model, save_checkpoint


def ship(checkpoint: Path, target: Path, command: str, seconds: float | None) -> Path:
    model = load_model(checkpoint)
    trained = torch.load(checkpoint, map_location="cpu", weights_only=True)["meta"]
    provenance = {
        "trained_with": command,
        "train_config": trained.get("train_config"),
        "epochs": trained.get("epoch"),
        "final_epoch_metrics": trained.get("metrics"),
        "training_seconds": seconds,
        "synthetic_data_seed": 1000 + int((trained.get("train_config") or {}).get("seed", 0)),
        "machine": machine_facts(),
        "shipped": datetime.date.today().isoformat(),
        "storage": "float16 (loaded as float32)",
    }
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
