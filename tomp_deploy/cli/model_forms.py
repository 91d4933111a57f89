"""The forms of one model that `bench` and `demo` need, made on demand from a checkpoint: the checkpoint
itself (torch, torch-cuda), an ONNX export (onnxruntime) and engines (tensorrt)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tomp_deploy.engine_manifest import ENGINE_MANIFEST_FILE
from tomp_deploy.errors import ToMPError
from tomp_deploy.export_manifest import EXPORT_MANIFEST_FILE, read_export_manifest


@dataclass
class ModelForms:
    checkpoint: Path | None = None
    export: Path | None = None
    engines: Path | None = None
    work: Path = Path(".work")
    """Where missing forms are written."""

    @classmethod
    def from_path(cls, path: Path, work: Path) -> "ModelForms":
        """A checkpoint file, an export folder or an engine folder (their model.json names the checkpoint)."""
        if path.is_file():
            return cls(checkpoint=path, work=work)
        if (path / EXPORT_MANIFEST_FILE).is_file():
            source = read_export_manifest(path).manifest.checkpoint
            checkpoint = Path(source.path) if source and Path(source.path).is_file() else None
            if (path / ENGINE_MANIFEST_FILE).is_file():
                return cls(checkpoint=checkpoint, engines=path, work=work)
            return cls(checkpoint=checkpoint, export=path, work=work)
        raise ToMPError(f"--model {path} is neither a checkpoint file, an export folder (with {EXPORT_MANIFEST_FILE}) "
                        f"nor an engine folder (with {ENGINE_MANIFEST_FILE}).")

    @property
    def name(self) -> str:
        return str(self.checkpoint or self.export or self.engines)

    def for_backend(self, backend: str, progress=lambda text: None) -> Path:
        if backend in ("torch", "torch-cuda"):
            if self.checkpoint is None:
                raise ToMPError(f"the model folder names no checkpoint that exists here, so {backend} cannot run it")
            return self.checkpoint
        if backend == "tensorrt":
            return self.engine_folder(progress)
        return self.export_folder(progress)

    def engine_folder(self, progress=lambda text: None) -> Path:
        if self.engines is None:
            from engines.builder import build_engines
            from tomp_deploy.gpu import require

            require("tensorrt")  # before exporting: without TensorRT the backend is skipped at once
            require("pycuda.driver")
            export = self.export_folder(progress)
            progress("building TensorRT engines")
            engines = self.work / "engines"
            build_engines(export, engines, report=progress)
            self.engines = engines
        return self.engines

    def export_folder(self, progress=lambda text: None) -> Path:
        if self.export is None:
            if self.checkpoint is None:
                raise ToMPError("an engine folder cannot be run by ONNX Runtime and names no checkpoint to export")
            from export.onnx_export import export_model
            from tomp_deploy.model import load_model

            progress("exporting the checkpoint to ONNX")
            export = self.work / "export"
            export_model(load_model(self.checkpoint), export, force=True)
            self.export = export
        return self.export
