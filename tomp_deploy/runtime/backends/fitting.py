"""Which form of a model each backend loads (a checkpoint, an export folder, an engine folder), and the error
for any other: it names the backends the given form fits and the command that converts it."""

from __future__ import annotations

from pathlib import Path

from tomp_deploy.runtime.backends.registry import backend_names, backend_spec
from tomp_deploy.runtime.cache_files import user_cache
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.manifests.engine import ENGINE_MANIFEST_FILE
from tomp_deploy.runtime.manifests.export import EXPORT_MANIFEST_FILE
from tomp_deploy.runtime.shipped import SHIPPED, resolve_model

FORM_NAMES = {"checkpoint": "a checkpoint file", "export": "an export folder", "engines": "an engine folder"}


def form_of(path: Path) -> str | None:
    """The form of the model at `path`, or None where there is none (the backend then says what is missing)."""
    if path.is_file():
        return "checkpoint"
    if (path / ENGINE_MANIFEST_FILE).is_file():
        return "engines"
    if (path / EXPORT_MANIFEST_FILE).is_file():
        return "export"
    return None


def backends_for(form: str) -> list[str]:
    return [backend for backend in backend_names() if backend_spec(backend).model_form == form]


def conversion(path: Path, form: str, wanted: str) -> str:
    """The commands that make the `wanted` form from the `form` at `path`."""
    stem = path.stem if form == "checkpoint" else path.name
    if form == "checkpoint" and wanted == "export":
        return f"tomp-deploy export {path} --out {stem}-export, then --model {stem}-export"
    if form in ("checkpoint", "export") and wanted == "engines":
        export = f"tomp-deploy export {path} --out {stem}-fp16 --precision fp16 && " if form == "checkpoint" else ""
        source = f"{stem}-fp16" if form == "checkpoint" else str(path)
        return f"{export}tomp-deploy build {source} --out {stem}-engines, then --model {stem}-engines"
    return (
        f'give the checkpoint it was made from (its {EXPORT_MANIFEST_FILE} names it under "checkpoint"), or '
        "export that checkpoint again"
    )


def fitting_model(backend: str, model: str | Path) -> Path:
    """The path `backend` loads for `model`: a shipped model's name becomes its checkpoint (export-folder and
    engine backends are given its export by the commands, which make it once into the user cache)."""
    wanted = backend_spec(backend).model_form
    if str(model) in SHIPPED and not Path(model).exists():
        if wanted == "checkpoint":
            return resolve_model(model)
        raise ToMPError(
            f"{model!r} names the shipped model's checkpoint, and the {backend} backend loads {FORM_NAMES[wanted]}. "
            f"The commands (track, eval, trax, bench) make it once into {user_cache('shipped')}; in Python: "
            f"open_backend({backend!r}, tomp_deploy.pipeline.model_for_backend({str(model)!r}, {backend!r}))."
        )
    path = Path(model)
    form = form_of(path)
    if form is None or form == wanted:
        return path
    fits = " or ".join(backends_for(form))
    raise ToMPError(
        f"{path} is {FORM_NAMES[form]}, which --backend {fits} runs; the {backend} backend loads "
        f"{FORM_NAMES[wanted]}. Use --backend {backends_for(form)[0]}, or convert it: "
        f"{conversion(path, form, wanted)}."
    )
