"""The dependency direction of the tree, read from every import statement (lazy ones inside functions
included): the runtime imports no training, export or engine code; only the CLI combines them."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL = ("tomp_deploy", "train", "export", "engines")
ALLOWED = {
    "tomp_deploy": set(),
    "tomp_deploy/cli": {"train", "export", "engines"},
    "export": {"tomp_deploy"},
    "engines": {"tomp_deploy"},
    "train": {"tomp_deploy"},
}
TORCH_USERS = ("tomp_deploy/model/", "tomp_deploy/backends/torch_backend.py", "tomp_deploy/backends/torch_cuda_backend.py",
               "tomp_deploy/cli/")
"""Runtime modules outside these import no torch."""


def imported_packages(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def layer(path: Path) -> str:
    relative = path.relative_to(ROOT).as_posix()
    return "tomp_deploy/cli" if relative.startswith("tomp_deploy/cli/") else relative.split("/")[0]


MODULES = sorted(p for package in TOP_LEVEL for p in (ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_imports_point_one_way(path):
    own = layer(path).split("/")[0]
    foreign = {name for name in imported_packages(path) if name in TOP_LEVEL and name != own}
    assert foreign <= ALLOWED[layer(path)], f"{path.relative_to(ROOT)} imports {sorted(foreign - ALLOWED[layer(path)])}"


RUNTIME = [p for p in MODULES if layer(p) == "tomp_deploy" and not p.relative_to(ROOT).as_posix().startswith(TORCH_USERS)]


@pytest.mark.parametrize("path", RUNTIME, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_runtime_imports_no_torch(path):
    assert not {"torch", "torchvision"} & imported_packages(path), f"{path.relative_to(ROOT)} imports torch"
