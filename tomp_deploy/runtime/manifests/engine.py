"""The manifest of an engine folder and its checks against this machine and the export it came from.

An engine folder holds backbone/predictor/head.engine, the export's model.json and manifest.json: the
engine library (TensorRT or TensorRT for RTX) and its version, the precision, the GPU and compute
capability the engines were built on (TensorRT) or the compute capabilities they target (TensorRT for
RTX, built ahead of time without a GPU), the ONNX files' hashes, build options, sizes and build time.
A serialized engine runs only with the library release it was built by and on the GPUs it was built
for, so any difference is an error that says to rebuild. Importing this module needs no TensorRT.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from tomp_deploy.runtime.contract import GRAPHS, MAX_BATCH
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.manifests.export import EXPORT_PRECISIONS
from tomp_deploy.runtime.manifests.json_files import checked_field, read_manifest_json, write_manifest_json

ENGINE_FORMAT = "tomp-deploy-engines"
ENGINE_VERSION = 3
"""3: `max_batch` is a field of its own (2 kept it among the build options)."""
ENGINE_MANIFEST_FILE = "manifest.json"
RUNTIME_CACHE_FILE = "runtime.cache"
"""TensorRT for RTX compiles its engines for the GPU at first run; the compiled kernels are kept here."""
REBUILD = "rebuild the engines with 'tomp-deploy build EXPORT_DIR --out ENGINE_DIR'"
LIBRARY_NAMES = {"tensorrt": "TensorRT", "tensorrt-rtx": "TensorRT for RTX"}
DEFAULT_MAX_BATCH = 4
"""Crops and targets per call of engines built without `--max-batch`."""


@dataclass(frozen=True)
class EngineTarget:
    """What a serialized engine is tied to: the engine library and its release, and the GPU it runs on."""

    library: str
    library_version: str
    gpu_name: str
    compute_capability: str


@dataclass
class EngineManifest:
    library: str
    """tensorrt or tensorrt-rtx."""
    library_version: str
    precision: str
    onnx_sha256: dict[str, str]
    gpu_name: str | None = None
    """The GPU a TensorRT build ran on (None for TensorRT for RTX, which builds without one)."""
    compute_capability: str | None = None
    """That GPU's compute capability: a TensorRT engine runs there only."""
    target_compute_capabilities: list[str] = field(default_factory=list)
    """Compute capabilities a TensorRT for RTX engine runs on (its library's portable set by default)."""
    max_batch: int = DEFAULT_MAX_BATCH
    """The most crops per backbone call and targets per predictor and head call (the profiles' maximum)."""
    build_options: dict = field(default_factory=dict)
    """How the engines were built beyond the above (workspace, timing cache, portable default), as recorded."""
    engine_bytes: dict[str, int] = field(default_factory=dict)
    built_at: str = ""
    build_seconds: float = 0.0

    @property
    def built_with(self) -> str:
        return f"{LIBRARY_NAMES.get(self.library, self.library)} {self.library_version}"

    def write(self, folder: Path) -> Path:
        return write_manifest_json(Path(folder) / ENGINE_MANIFEST_FILE, ENGINE_FORMAT, ENGINE_VERSION, asdict(self))

    @classmethod
    def read(cls, folder: Path) -> "EngineManifest":
        path = Path(folder) / ENGINE_MANIFEST_FILE
        fields = read_manifest_json(path, ENGINE_FORMAT, ENGINE_VERSION, "tomp-deploy engine manifest", REBUILD)
        try:
            return cls(**_checked_fields(fields))
        except (TypeError, ValueError) as exc:
            raise ToMPError(f"{path} is incomplete, malformed or of another version ({exc}); {REBUILD}.") from None


def _checked_fields(fields: dict) -> dict:
    """The manifest's fields with every type and range checked (a ValueError names the first that is not)."""
    optional_text = (str, type(None))
    checked_field(fields.get("library"), "library", str, choices=tuple(LIBRARY_NAMES))
    checked_field(fields.get("library_version"), "library_version", str)
    checked_field(fields.get("precision"), "precision", str, choices=EXPORT_PRECISIONS)
    hashes = checked_field(fields.get("onnx_sha256"), "onnx_sha256", dict)
    for graph in GRAPHS:
        checked_field(hashes.get(graph), f"onnx_sha256.{graph}", str)
    checked_field(fields.get("gpu_name"), "gpu_name", optional_text)
    checked_field(fields.get("compute_capability"), "compute_capability", optional_text)
    for capability in checked_field(fields.get("target_compute_capabilities", []), "target_compute_capabilities", list):
        checked_field(capability, "target_compute_capabilities", str)
    checked_field(fields.get("max_batch"), "max_batch", int, 1, MAX_BATCH)
    checked_field(fields.get("build_options", {}), "build_options", dict)
    for graph, size in checked_field(fields.get("engine_bytes", {}), "engine_bytes", dict).items():
        checked_field(size, f"engine_bytes.{graph}", int, 0)
    checked_field(fields.get("built_at", ""), "built_at", str)
    checked_field(fields.get("build_seconds", 0.0), "build_seconds", (int, float), 0)
    return fields


def _capability(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def mismatches(manifest: EngineManifest, target: EngineTarget, export_sha256: dict[str, str] | None = None) -> list[str]:
    """Every way the engines do not fit this library, this GPU or the given export (graph -> ONNX hash)."""
    problems = []
    here = f"{LIBRARY_NAMES.get(target.library, target.library)} {target.library_version}"
    if (manifest.library, manifest.library_version) != (target.library, target.library_version):
        problems.append(f"built with {manifest.built_with}, this runtime uses {here}")
    if manifest.library == "tensorrt-rtx":
        targets = manifest.target_compute_capabilities
        beyond_newest = manifest.build_options.get("portable_default") and _capability(target.compute_capability) > max(
            map(_capability, targets)
        )
        if target.compute_capability not in targets and not beyond_newest:
            problems.append(
                f"built for compute capabilities {', '.join(targets)}, this GPU ({target.gpu_name}) is "
                f"{target.compute_capability}; build with --compute-capability {target.compute_capability}"
            )
    elif manifest.compute_capability != target.compute_capability:
        problems.append(
            f"built for compute capability {manifest.compute_capability} ({manifest.gpu_name}), this GPU "
            f"is {target.compute_capability} ({target.gpu_name})"
        )
    elif manifest.gpu_name != target.gpu_name:
        problems.append(f"built on a {manifest.gpu_name}, this GPU is a {target.gpu_name}")
    if export_sha256 is not None:
        for graph, digest in sorted(export_sha256.items()):
            if manifest.onnx_sha256.get(graph) != digest:
                problems.append(f"the {graph} engine was not built from this export's {graph}.onnx (hash differs)")
    return problems


def check_engines(manifest: EngineManifest, target: EngineTarget, export_sha256: dict[str, str] | None = None) -> None:
    problems = mismatches(manifest, target, export_sha256)
    if problems:
        raise ToMPError(
            "These engines cannot run here:\n  "
            + "\n  ".join(problems)
            + "\nRebuild them for this machine: tomp-deploy build EXPORT_DIR --out ENGINE_DIR"
        )
