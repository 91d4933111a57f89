"""The export folder's manifest, `model.json`, as a typed record: written by export, read and validated
here only (backends, the engine builder and bench all go through `read_export`/`read_export_manifest`).

It records the model config, the tracker parameters the export's tracker uses, the source checkpoint,
the opset and every graph's file, hash and contract I/O; a folder whose parts disagree is refused.
Importing this module needs neither torch nor onnx.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from tomp_deploy.runtime.contract import GRAPHS, MAX_BATCH, graph_io
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.manifests.json_files import (
    checked_field,
    confined_file,
    file_sha256,
    read_manifest_json,
    write_manifest_json,
)
from tomp_deploy.runtime.presets import ModelConfig, TrackerParams

EXPORT_FORMAT = "tomp-deploy-onnx"
EXPORT_VERSION = 2
"""2: the predictor and head take a batch of targets (version 1 took one target)."""
EXPORT_MANIFEST_FILE = "model.json"
COMPILE_CACHE_FOLDER = ".openvino-cache"
"""Where the openvino backend caches an export's compiled graphs: part of the export folder, and stale
once the export is replaced."""
REEXPORT = "export the model again with 'tomp-deploy export'"
EXPORT_PRECISIONS = ("fp32", "fp16", "int8")
"""The number formats an export's graphs are written in (model.json's `precision`; engines take theirs from
the graphs): `export --precision` writes the first two, `quantize` the last. Not to be confused with a
backend's compute precision (`--precision` of the tracking commands), which each backend names itself."""
OPSETS = (18, 20)
"""The opsets an export may record: the exporter's lowest native one to TensorRT 10.0's parser's highest."""


@dataclass(frozen=True)
class GraphFile:
    file: str
    sha256: str
    inputs: list[dict]
    outputs: list[dict]
    fp32_nodes: list[str] = field(default_factory=list)
    """The FP32 islands of an FP16 graph: its nodes that compute in FP32 (empty in an FP32 graph)."""
    fp16_weight_fraction: float = 0.0


@dataclass(frozen=True)
class SourceCheckpoint:
    path: str
    format: str
    sha256: str


@dataclass
class ExportManifest:
    model: ModelConfig
    tracker: TrackerParams
    checkpoint: SourceCheckpoint | None
    opset: int
    exporter: str
    max_batch: int
    graphs: dict[str, GraphFile]
    precision: str = "fp32"
    """Of the weights and compute inside the graphs (fp32, fp16, or int8: QDQ graphs from `tomp-deploy
    quantize`); inputs and outputs are float32."""
    quantization: dict | None = None
    """How an int8 export was quantised: quantiser, quantised layers, calibration data."""

    def write(self, folder: Path) -> Path:
        fields = asdict(self)
        fields["model"], fields["tracker"] = self.model.to_dict(), self.tracker.to_dict()
        return write_manifest_json(Path(folder) / EXPORT_MANIFEST_FILE, EXPORT_FORMAT, EXPORT_VERSION, fields)

    @classmethod
    def read(cls, folder: Path) -> "ExportManifest":
        path = Path(folder) / EXPORT_MANIFEST_FILE
        fields = read_manifest_json(path, EXPORT_FORMAT, EXPORT_VERSION, "tomp-deploy export manifest", REEXPORT)
        try:
            manifest = cls(
                model=ModelConfig.from_dict(_mapping(fields["model"])),
                tracker=TrackerParams.from_dict(_mapping(fields["tracker"])),
                checkpoint=_source_checkpoint(fields.get("checkpoint")),
                opset=checked_field(fields["opset"], "opset", int, *OPSETS),
                exporter=checked_field(fields.get("exporter", ""), "exporter", str),
                max_batch=checked_field(fields["max_batch"], "max_batch", int, 1, MAX_BATCH),
                graphs={name: _graph_file(name, entry) for name, entry in _mapping(fields["graphs"]).items()},
                precision=checked_field(fields.get("precision", "fp32"), "precision", str, choices=EXPORT_PRECISIONS),
                quantization=fields.get("quantization"),
            )
        except ToMPError as exc:
            raise ToMPError(f"{path}: {str(exc).rstrip('.')}; {REEXPORT}.") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise ToMPError(f"{path} is incomplete or malformed ({exc.__class__.__name__}: {exc}); {REEXPORT}.") from None
        manifest._check_graphs(path)
        return manifest

    def _check_graphs(self, path: Path) -> None:
        expected_io = graph_io(self.model)
        unknown = sorted(set(self.graphs) - set(GRAPHS))
        if unknown:
            raise ToMPError(f"{path} lists graphs {unknown[:3]} besides {', '.join(GRAPHS)}; {REEXPORT}.")
        for graph in GRAPHS:
            entry = self.graphs.get(graph)
            if entry is None:
                raise ToMPError(f"{path} lists no '{graph}' graph; {REEXPORT}.")
            confined_file(path.parent, entry.file, f"{path}'s {graph} graph", REEXPORT)
            inputs, outputs = expected_io[graph]
            if (entry.inputs, entry.outputs) != ([s.to_dict() for s in inputs], [s.to_dict() for s in outputs]):
                raise ToMPError(
                    f"The {graph} graph's recorded inputs/outputs in {path} do not match the model config "
                    f"it records (another model's files were mixed in); {REEXPORT}."
                )


def _graph_file(graph: str, entry) -> GraphFile:
    entry = _mapping(entry)
    return GraphFile(
        file=checked_field(entry["file"], f"graphs.{graph}.file", str),
        sha256=checked_field(entry["sha256"], f"graphs.{graph}.sha256", str),
        inputs=checked_field(entry["inputs"], f"graphs.{graph}.inputs", list),
        outputs=checked_field(entry["outputs"], f"graphs.{graph}.outputs", list),
        fp32_nodes=[
            checked_field(node, f"graphs.{graph}.fp32_nodes", str)
            for node in checked_field(entry.get("fp32_nodes", []), f"graphs.{graph}.fp32_nodes", list)
        ],
        fp16_weight_fraction=checked_field(
            entry.get("fp16_weight_fraction", 0.0), f"graphs.{graph}.fp16_weight_fraction", (int, float), 0.0, 1.0
        ),
    )


def _source_checkpoint(entry) -> SourceCheckpoint | None:
    if not entry:
        return None
    entry = _mapping(entry)
    return SourceCheckpoint(*(checked_field(entry[name], f"checkpoint.{name}", str) for name in ("path", "format", "sha256")))


def _mapping(value) -> dict:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, found {type(value).__name__}")
    return value


@dataclass
class ExportFolder:
    """An export folder and its manifest."""

    folder: Path
    manifest: ExportManifest

    @property
    def config(self) -> ModelConfig:
        return self.manifest.model

    @property
    def tracker(self) -> TrackerParams:
        return self.manifest.tracker

    def graph_path(self, graph: str) -> Path:
        """The graph's file, which must lie inside the folder."""
        return confined_file(self.folder, self.manifest.graphs[graph].file, f"{EXPORT_MANIFEST_FILE}'s {graph} graph", REEXPORT)

    def graph_hashes(self) -> dict[str, str]:
        return {graph: self.manifest.graphs[graph].sha256 for graph in GRAPHS}


def read_export_manifest(folder: str | Path) -> ExportFolder:
    """The folder's `model.json` alone, validated (an engine folder carries it without the ONNX files)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ToMPError(
            f"{folder} is not an export folder (expected a folder with {EXPORT_MANIFEST_FILE} and three .onnx files)."
        )
    return ExportFolder(folder, ExportManifest.read(folder))


def read_export(folder: str | Path, verify_hashes: bool = True) -> ExportFolder:
    """An export folder whose ONNX files are present and are the ones its manifest was written for."""
    exported = read_export_manifest(folder)
    for graph, digest in exported.graph_hashes().items():
        path = exported.graph_path(graph)
        if not path.is_file():
            raise ToMPError(f"{path} is missing from the export folder; {REEXPORT}.")
        if verify_hashes and file_sha256(path) != digest:
            raise ToMPError(
                f"{path} is not the file {EXPORT_MANIFEST_FILE} was written for (its hash differs): it was "
                f"replaced or damaged; {REEXPORT}."
            )
    return exported
