"""The forms of one model that `bench` and `demo` need, made on demand from a checkpoint: the checkpoint
itself (torch, torch-cuda), an FP32 ONNX export (onnxruntime) and FP16 engines (tensorrt) built from an
FP16 export with whichever TensorRT library is installed. An export already in the work folder is reused
where it is intact (its ONNX hashes) and was made from the same checkpoint (its sha256) at the same precision.
"""

from __future__ import annotations

import functools
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tomp_deploy.runtime.backends.fitting import fitting_model, form_of
from tomp_deploy.runtime.backends.options import BackendOptions
from tomp_deploy.runtime.backends.registry import backend_names, backend_spec
from tomp_deploy.runtime.cache_files import user_cache
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.manifests.engine import DEFAULT_MAX_BATCH, ENGINE_MANIFEST_FILE
from tomp_deploy.runtime.manifests.export import EXPORT_MANIFEST_FILE, read_export, read_export_manifest
from tomp_deploy.runtime.manifests.json_files import file_sha256
from tomp_deploy.runtime.presets import TrackerParams
from tomp_deploy.runtime.shipped import SHIPPED, resolve_model


@dataclass
class ModelForms:
    checkpoint: Path | None = None
    export: Path | None = None
    engines: Path | None = None
    work: Path = Path(".work")
    """Where missing forms are written."""
    engines_built: str | None = None
    """What building the engines did, e.g. 'TensorRT for RTX 1.7.1, fp16, batches 1..4, 1 s', once they were
    built here."""
    max_batch: int = DEFAULT_MAX_BATCH
    """The most crops and targets per call of engines built here."""

    @classmethod
    def from_path(cls, path: Path, work: Path) -> "ModelForms":
        """A checkpoint file, an export folder or an engine folder (their model.json names the checkpoint)."""
        form = form_of(path)
        if form == "checkpoint":
            return cls(checkpoint=path, work=work)
        if form is not None and (path / EXPORT_MANIFEST_FILE).is_file():  # an engine folder carries model.json too
            source = read_export_manifest(path).manifest.checkpoint
            checkpoint = Path(source.path) if source and Path(source.path).is_file() else None
            if form == "engines":
                return cls(checkpoint=checkpoint, engines=path, work=work)
            return cls(checkpoint=checkpoint, export=path, work=work)
        raise ToMPError(
            f"--model {path} is neither a checkpoint file, an export folder (with {EXPORT_MANIFEST_FILE}) "
            f"nor an engine folder (with {ENGINE_MANIFEST_FILE})."
        )

    @property
    def name(self) -> str:
        return str(self.checkpoint or self.export or self.engines)

    def for_backend(self, backend: str, progress=lambda text: None) -> Path:
        if backend in ("torch", "torch-cuda"):
            if self.checkpoint is None:
                raise ToMPError(f"the model folder names no checkpoint that exists here, so {backend} cannot run it")
            return self.checkpoint
        if backend == "tensorrt":
            engines = self.engine_folder(progress)
            self._check_gpu()
            return engines
        return self.export_folder(progress)

    def _check_gpu(self) -> None:
        """Engines built here but no GPU to run them: say both."""
        from tomp_deploy.runtime.gpu import cuda_device

        try:
            cuda_device(0)
        except ToMPError as exc:
            if self.engines_built is None:
                raise
            raise ToMPError(f"engines built ({self.engines_built}) in {self.engines}; not run: {exc}") from None

    def engine_folder(self, progress=lambda text: None) -> Path:
        if self.engines is None:
            from tomp_deploy.engines.builder import BuildOptions, build_engines
            from tomp_deploy.runtime.gpu import engine_library

            engine_library()  # before exporting: without a TensorRT library the backend is skipped at once
            progress("building engines")
            engines = self.work / "engines"
            manifest = build_engines(
                self._fp16_export(progress), engines, BuildOptions(max_batch=self.max_batch), report=progress
            )
            self.engines = engines
            self.engines_built = (
                f"{manifest.built_with}, {manifest.precision}, batches 1..{self.max_batch}, {manifest.build_seconds:.0f} s"
            )
        return self.engines

    def export_folder(self, progress=lambda text: None) -> Path:
        if self.export is None:
            self.export = self._export("fp32", progress)
        return self.export

    def _fp16_export(self, progress) -> Path:
        """The export engines are built from: FP16, unless the model was given as an export folder."""
        if self.checkpoint is None and self.export is not None:
            return self.export
        return self._export("fp16", progress)

    def make_exports(self, precisions: list[str], progress=lambda text: None) -> None:
        """Makes the exports of these precisions that the work folder lacks, the first here and the others
        at the same time in processes of their own: torch's exporter runs on one core, so two cores make an
        FP32 and an FP16 export of the tiny model in the time of one (20 s against 38 s on two AMD EPYC
        cores)."""
        if self.checkpoint is None:
            return
        missing = [p for p in precisions if not self._made_here(self._export_path(p), p)]
        if not missing:
            return
        first, *others = missing
        with ProcessPoolExecutor(max(len(others), 1), mp_context=multiprocessing.get_context("spawn")) as pool:
            pending = [pool.submit(export_checkpoint, self.checkpoint, self._export_path(p), p) for p in others]
            self._export(first, progress)
            for made in pending:
                made.result()

    def _export_path(self, precision: str) -> Path:
        return self.work / ("export" if precision == "fp32" else f"export-{precision}")

    def _export(self, precision: str, progress) -> Path:
        if self.checkpoint is None:
            raise ToMPError("an engine folder cannot be run by ONNX Runtime and names no checkpoint to export")
        folder = self._export_path(precision)
        if not self._made_here(folder, precision):
            progress(f"exporting the checkpoint to ONNX ({precision})")
            export_checkpoint(self.checkpoint, folder, precision)
        return folder

    def _made_here(self, folder: Path, precision: str | None = None) -> bool:
        """Whether `folder` is an intact export (or engine folder) of this checkpoint, at `precision` where
        given, recording the tracker parameters exporting it now would record (a release that changes their
        defaults makes the shipped model's exports again)."""
        if not folder.is_dir():
            return False
        try:
            exported = read_export_manifest(folder) if (folder / ENGINE_MANIFEST_FILE).is_file() else read_export(folder)
        except ToMPError:
            return False
        source, manifest = exported.manifest.checkpoint, exported.manifest
        return (
            source is not None
            and source.sha256 == self.checkpoint_sha256
            and manifest.tracker == self.checkpoint_tracker
            and precision in (None, manifest.precision)
        )

    @functools.cached_property
    def checkpoint_sha256(self) -> str:
        return file_sha256(self.checkpoint)

    @functools.cached_property
    def checkpoint_tracker(self) -> TrackerParams:
        """The tracker parameters an export of the checkpoint records: its own, else the defaults."""
        from tomp_deploy.model.checkpoint import load_checkpoint

        return load_checkpoint(self.checkpoint)[2].tracker_params


def export_checkpoint(checkpoint: Path, folder: Path, precision: str) -> None:
    """Exports `checkpoint` into `folder` (replacing an earlier export there) at `precision`."""
    from tomp_deploy.export.onnx_export import export_model
    from tomp_deploy.model import load_model

    export_model(load_model(checkpoint), folder, force=True, precision=precision)


def model_for_backend(model: str | Path, backend: str, options: BackendOptions | None = None, progress=lambda text: None) -> Path:
    """What `backend` loads for `model` (`runtime.backends.fitting`). A shipped model's name gives the
    export-folder and engine backends its export (or engines), made once into `options.cache_folder` (the
    user cache by default; engines for `options.max_batch` targets) and checked on every later use (ONNX
    hashes, and the checkpoint they were made from); a damaged one is made again."""
    options = options or BackendOptions()
    if (
        str(model) not in SHIPPED
        or Path(model).exists()
        or backend not in backend_names()
        or backend_spec(backend).model_form == "checkpoint"
    ):
        return fitting_model(backend, model)
    checkpoint = resolve_model(model)
    digest = file_sha256(checkpoint)
    cache = options.cache_folder or user_cache("shipped")
    max_batch = options.max_batch or DEFAULT_MAX_BATCH
    suffix = "" if max_batch == DEFAULT_MAX_BATCH else f"-batch{max_batch}"
    forms = ModelForms(checkpoint=checkpoint, work=Path(cache, f"{model}-{digest[:16]}{suffix}"), max_batch=max_batch)
    forms.checkpoint_sha256 = digest
    if (forms.work / "engines" / ENGINE_MANIFEST_FILE).is_file() and forms._made_here(forms.work / "engines"):
        forms.engines = forms.work / "engines"
    return forms.for_backend(backend, progress)
