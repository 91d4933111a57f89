"""The dependency direction of the tree, read from every import statement (lazy ones inside functions
included), by folder: each folder imports only the folders below it, and the torch-free folders import
no torch."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL = ("tomp_deploy", "train", "export", "engines", "benchmarks")

ALLOWED = {
    "tomp_deploy/runtime": set(),
    "tomp_deploy/model": {"tomp_deploy/runtime"},
    "tomp_deploy/evaluation": {"tomp_deploy/runtime"},
    "tomp_deploy/checks": {"tomp_deploy/runtime", "tomp_deploy/evaluation"},
    "engines": {"tomp_deploy/runtime"},
    "export": {"tomp_deploy/runtime", "tomp_deploy/model", "tomp_deploy/evaluation"},
    "train": {"tomp_deploy/runtime", "tomp_deploy/model", "tomp_deploy/evaluation"},
    "tomp_deploy/pipeline": {"tomp_deploy/runtime", "tomp_deploy/model", "export", "engines"},
    "tomp_deploy/cli": {"tomp_deploy/runtime", "tomp_deploy/model", "tomp_deploy/evaluation", "tomp_deploy/checks",
                        "tomp_deploy/pipeline", "train", "export", "engines", "tomp_deploy"},
    "tomp_deploy": {"tomp_deploy/runtime", "tomp_deploy/model", "tomp_deploy/cli"},
    "benchmarks": {"tomp_deploy/runtime", "tomp_deploy/model", "tomp_deploy/evaluation", "tomp_deploy/checks",
                   "tomp_deploy/pipeline", "train", "export", "engines"},
}
"""Folder -> the folders its modules may import besides itself (`tomp_deploy` alone: the package root)."""
TORCH_FREE = ("tomp_deploy/runtime", "tomp_deploy/evaluation", "tomp_deploy/checks")


def folder_of_module(name: str) -> str:
    """'tomp_deploy.runtime.tracker' -> 'tomp_deploy/runtime'; 'export.quantize' -> 'export'."""
    parts = name.split(".")
    if parts[0] != "tomp_deploy" or len(parts) == 1:
        return parts[0]
    return "tomp_deploy" if (ROOT / "tomp_deploy" / f"{parts[1]}.py").is_file() else f"tomp_deploy/{parts[1]}"


def folder_of_file(path: Path) -> str:
    parts = path.relative_to(ROOT).parts
    if parts[0] != "tomp_deploy" or len(parts) == 2:
        return parts[0]
    return f"tomp_deploy/{parts[1]}"


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


MODULES = sorted(p for package in TOP_LEVEL for p in (ROOT / package).rglob("*.py"))


def test_every_folder_has_a_rule():
    assert {folder_of_file(p) for p in MODULES} == set(ALLOWED)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_imports_point_one_way(path):
    own = folder_of_file(path)
    imported = {folder_of_module(name) for name in imported_modules(path) if name.split(".")[0] in TOP_LEVEL}
    foreign = imported - {own} - ALLOWED[own]
    assert not foreign, f"{path.relative_to(ROOT)} imports {sorted(foreign)}"


@pytest.mark.parametrize("path", [p for p in MODULES if folder_of_file(p) in TORCH_FREE],
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_torch_free_folders_import_no_torch(path):
    packages = {name.split(".")[0] for name in imported_modules(path)}
    assert not {"torch", "torchvision"} & packages, f"{path.relative_to(ROOT)} imports torch"
