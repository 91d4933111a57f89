"""The dependency direction of the tree, read from every import statement (lazy ones inside functions
and those under TYPE_CHECKING included), by folder: each folder imports only the folders below it, the
torch-free folders import no torch, and no module imports itself through others."""

import ast
import graphlib
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
    "tomp_deploy/cli": {
        "tomp_deploy/runtime",
        "tomp_deploy/model",
        "tomp_deploy/evaluation",
        "tomp_deploy/checks",
        "tomp_deploy/pipeline",
        "train",
        "export",
        "engines",
        "tomp_deploy",
    },
    "tomp_deploy": {"tomp_deploy/runtime", "tomp_deploy/model", "tomp_deploy/cli"},
    "benchmarks": {
        "tomp_deploy/runtime",
        "tomp_deploy/model",
        "tomp_deploy/evaluation",
        "tomp_deploy/checks",
        "tomp_deploy/pipeline",
        "train",
        "export",
        "engines",
    },
}
"""Folder -> the folders its modules may import besides itself (`tomp_deploy` alone: the package root)."""
TORCH_FREE = ("tomp_deploy/runtime", "tomp_deploy/evaluation", "tomp_deploy/checks")


MAPPED = ("train", "export", "engines")
"""Repository folders installed as subpackages of tomp_deploy (pyproject's package-dir)."""


def folder_of_module(name: str) -> str:
    """'tomp_deploy.runtime.tracker' -> 'tomp_deploy/runtime'; 'tomp_deploy.export.quantize' -> 'export'."""
    parts = name.split(".")
    if parts[0] != "tomp_deploy" or len(parts) == 1:
        return parts[0]
    if parts[1] in MAPPED:
        return parts[1]
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


@pytest.mark.parametrize(
    "path", [p for p in MODULES if folder_of_file(p) in TORCH_FREE], ids=lambda p: p.relative_to(ROOT).as_posix()
)
def test_torch_free_folders_import_no_torch(path):
    packages = {name.split(".")[0] for name in imported_modules(path)}
    assert not {"torch", "torchvision"} & packages, f"{path.relative_to(ROOT)} imports torch"


def module_name(path: Path) -> str:
    """The name a file is imported by: train/trainer.py -> tomp_deploy.train.trainer."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    parts = ("tomp_deploy", *parts) if parts[0] in MAPPED else parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_module_imports_itself_through_others():
    """`from package import name` depends on the submodule where `name` is one, else on the package."""
    modules = {module_name(p): p for p in MODULES}
    graph = {}
    for name, path in modules.items():
        dependencies = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                dependencies.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                dependencies.update(
                    f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                    for alias in node.names
                )
        graph[name] = {d for d in dependencies if d in modules and d != name}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as cycle:
        pytest.fail(f"import cycle: {' -> '.join(cycle.args[1])}")
