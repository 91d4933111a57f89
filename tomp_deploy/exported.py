"""Reading an export folder (`model.json` + three ONNX graphs) without torch or onnx.

`model.json` records the model config, the tracker parameters, the source checkpoint, the opset and
every graph's file, hash and contract I/O; backends refuse a folder whose parts disagree.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from tomp_deploy.contract import GRAPHS, graph_io
from tomp_deploy.errors import ToMPError
from tomp_deploy.presets import ModelConfig, TrackerParams

EXPORT_FORMAT = "tomp-deploy-onnx"
EXPORT_VERSION = 1
MANIFEST = "model.json"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class ExportedModel:
    folder: Path
    config: ModelConfig
    tracker: TrackerParams
    manifest: dict

    def graph_path(self, graph: str) -> Path:
        return self.folder / self.manifest["graphs"][graph]["file"]


def read_manifest(folder: str | Path) -> ExportedModel:
    """Reads and cross-checks `model.json` alone (an engine folder carries it without the ONNX files)."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not folder.is_dir():
        raise ToMPError(f"{folder} is not an export folder (expected a folder with {MANIFEST} and three .onnx files).")
    if not manifest_path.is_file():
        raise ToMPError(f"{folder} has no {MANIFEST}: export the model again with 'tomp-deploy export'.")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise ToMPError(f"{manifest_path} is not valid JSON ({exc}); export the model again.") from None
    if manifest.get("format") != EXPORT_FORMAT or manifest.get("version") != EXPORT_VERSION:
        raise ToMPError(
            f"{manifest_path} is not a tomp-deploy export manifest of version {EXPORT_VERSION}; export again."
        )
    config = ModelConfig.from_dict(manifest["model"])
    tracker = TrackerParams.from_dict(manifest["tracker"])
    expected_io = graph_io(config)
    for graph in GRAPHS:
        entry = manifest["graphs"].get(graph)
        if entry is None:
            raise ToMPError(f"{manifest_path} lists no '{graph}' graph; export the model again.")
        inputs, outputs = expected_io[graph]
        recorded = (entry["inputs"], entry["outputs"])
        if recorded != ([s.to_dict() for s in inputs], [s.to_dict() for s in outputs]):
            raise ToMPError(
                f"The {graph} graph's recorded inputs/outputs in {manifest_path} do not match the model config "
                "it records (another model's files were mixed in); export the model again."
            )
    return ExportedModel(folder, config, tracker, manifest)


def read_export(folder: str | Path, verify_hashes: bool = True) -> ExportedModel:
    """Reads and cross-checks an export folder; every inconsistency is a `ToMPError` saying what to do."""
    exported = read_manifest(folder)
    for graph in GRAPHS:
        path = exported.graph_path(graph)
        if not path.is_file():
            raise ToMPError(f"{path} is missing from the export folder; export the model again.")
        if verify_hashes and file_sha256(path) != exported.manifest["graphs"][graph]["sha256"]:
            raise ToMPError(
                f"{path} is not the file {MANIFEST} was written for (its hash differs): it was replaced or "
                "damaged. Export the model again."
            )
    return exported
