"""What installing the project put into the environment, and the CLI's entry point."""

import subprocess
import sys
from importlib import metadata

import pytest

CONFLICTING_BUILDS = [
    {"opencv-python", "opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless"},
    {"onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino"},
]


def installed_distributions() -> set[str]:
    return {dist.metadata["Name"].lower() for dist in metadata.distributions()}


def test_one_build_of_opencv_and_onnxruntime():
    installed = installed_distributions()
    for family in CONFLICTING_BUILDS:
        present = installed & family
        assert len(present) == 1, f"expected exactly one of {sorted(family)}, found {sorted(present)}"


def test_declared_dependencies_are_installed():
    installed = installed_distributions()
    required = [r for r in metadata.requires("tomp-deploy") if "extra ==" not in r]
    for requirement in required:
        name = requirement.split(">")[0].split("=")[0].split("<")[0].split(";")[0].strip().lower()
        assert name in installed, f"{name} is a dependency but not installed"


def test_console_script_help_lists_commands():
    result = subprocess.run(["tomp-deploy", "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "inspect" in result.stdout


def test_package_root_does_not_import_torch():
    code = "import sys, tomp_deploy; assert 'torch' not in sys.modules, 'tomp_deploy imported torch'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_shipped_tiny_model():
    from tomp_deploy.model import load_model
    from tomp_deploy.runtime.shipped import resolve_model

    path = resolve_model("tiny")
    assert path.stat().st_size <= 10 * 1024 * 1024
    model = load_model(path)
    assert model.config.backbone == "resnet18"
    assert "trained_with" in model.checkpoint_info.meta
    result = subprocess.run(["tomp-deploy", "inspect", "tiny", "--json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_shipped_tiny_model_tracks_a_scene_family_it_never_saw(tmp_path):
    """The shipped model on a few sequences of the held-out family (other photographs, objects and motion
    than any training family), against a box that never moves: a lower bar than the benchmark's
    (benchmarks/results/tiny_heldout.md), on sequences of another seed."""
    from benchmarks.tiny_heldout import score_trackers
    from tomp_deploy.evaluation.datasets import open_dataset
    from tomp_deploy.evaluation.sequence_jobs import TrackerSetup
    from tomp_deploy.evaluation.synth import HELD_OUT_FAMILY, generate_benchmark
    from tomp_deploy.runtime.shipped import resolve_model

    generate_benchmark(tmp_path / "heldout", 4, 60, seed=3, family=HELD_OUT_FAMILY)
    sequences = open_dataset(tmp_path / "heldout", "lasot")
    scores = score_trackers(sequences, {"model": TrackerSetup("torch", str(resolve_model("tiny")))}, tmp_path / "results")
    tracked, never_moves = scores["model"]["overall"]["auc"], scores["static box"]["overall"]["auc"]
    assert tracked >= never_moves + 10, (tracked, never_moves)


def test_the_ray_extra_installs_ray_client():
    """`eval --ray ray://HOST:10001` goes through Ray Client, which plain 'ray' lacks."""
    ray = [r for r in metadata.requires("tomp-deploy") if r.startswith("ray") and 'extra == "ray"' in r]
    assert ray and ray[0].startswith("ray[client]"), ray


def test_only_tomp_deploy_is_importable_outside_the_checkout(tmp_path):
    """train/, export/ and engines/ install as tomp_deploy.train, .export and .engines; benchmarks/ and
    tests/ are the repository's own. Run from a folder outside the checkout, so it is not on sys.path."""
    code = (
        "import importlib.util as u\n"
        "for name in ('train', 'export', 'engines', 'benchmarks', 'tests'):\n"
        "    assert u.find_spec(name) is None, name + ' is importable at the top level'\n"
        "import tomp_deploy.train.trainer, tomp_deploy.export.onnx_export, tomp_deploy.engines.builder\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_wheel_lists_every_package_of_the_tree():
    """A package missing from pyproject's list would be left out of the wheel (an editable install finds it
    anyway, so only this comparison notices); data folders (the shipped model) are packages of their own."""
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")
    root = Path(__file__).resolve().parents[1]
    settings = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    in_tree = set()
    for package, folder in settings["package-dir"].items():
        for init in (root / folder).rglob("__init__.py"):
            in_tree.add(".".join((package, *init.parent.relative_to(root / folder).parts)))
    assert set(settings["packages"]) == in_tree | set(settings["package-data"])
