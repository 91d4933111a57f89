"""The real VOT toolkit (vot-toolkit 0.9) runs tomp-deploy through TraX: a workspace over a VOT-layout
dataset written by `synth`, `vot evaluate` and `vot analysis`, and clean failures for a bad model or
backend. Needs the `vot` extra (CI installs it)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("vot", reason="the VOT toolkit tests need the 'vot' extra: pip install -e '.[vot]'")
trax = pytest.importorskip("trax", reason="the TraX server needs the 'vot' extra: pip install -e '.[vot]'")

from tomp_deploy.evaluation.datasets import open_dataset  # noqa: E402
from tomp_deploy.evaluation.trax_server import region_box  # noqa: E402
from tomp_deploy.runtime.box_text import as_trax_sends  # noqa: E402
from tomp_deploy.runtime.errors import ToMPError  # noqa: E402
from tomp_deploy.runtime.geometry import clip_box, iou  # noqa: E402

VOT = Path(sys.executable).with_name("vot")
STACK = """title: tomp-deploy test stack
experiments:
  baseline:
    type: unsupervised
    repetitions: 1
    analyses:
      - type: average_accuracy
        name: quality
        burnin: 0
        ignore_unknown: False
        weighted: False
"""


def tracker_entry(name: str, model: Path | str, backend: str | None) -> str:
    chosen = f" --backend {backend}" if backend else ""
    return (
        f"[{name}]\nlabel = {name}\nprotocol = trax\ncommand = {sys.executable} -m tomp_deploy trax --model {model}{chosen}\n\n"
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, shipped_export) -> Path:
    root = tmp_path_factory.mktemp("vot")
    written = subprocess.run(
        [
            sys.executable,
            "-m",
            "tomp_deploy",
            "synth",
            root / "sequences",
            "--sequences",
            "2",
            "--frames",
            "12",
            "--seed",
            "21",
            "--family",
            "bouncing",
            "--layout",
            "vot",
        ],
        capture_output=True,
        text=True,
    )
    assert written.returncode == 0, written.stderr
    (root / "config.yaml").write_text("stack: ./stack.yaml\nregistry:\n- ./trackers.ini\n")
    (root / "stack.yaml").write_text(STACK)
    # The shipped model by name and the default backend: trax makes its export once into the user cache.
    (root / "trackers.ini").write_text(
        tracker_entry("tomp_tiny", "tiny", None)
        + tracker_entry("missing_model", root / "no-such-export", "onnxruntime")
        + tracker_entry("unknown_backend", shipped_export, "tensorflow")
    )
    return root


def run_vot(workspace: Path, *args: str, timeout: float = 300) -> str:
    done = subprocess.run([VOT, *args, "--workspace", workspace], capture_output=True, text=True, timeout=timeout, cwd=workspace)
    return done.stdout + done.stderr


def toolkit_boxes(workspace: Path, tracker: str, sequence: str) -> tuple[list, np.ndarray]:
    from vot.region.io import read_trajectory

    regions = read_trajectory(str(workspace / "results" / tracker / "baseline" / sequence / f"{sequence}_001.bin"))
    return regions, np.array([[r.x, r.y, r.width, r.height] for r in regions[1:]])


def test_the_toolkit_tracks_as_tomp_deploy_track_does(workspace, shipped_export):
    """The baseline experiment initialises on the first frame; the trajectories the toolkit stores equal
    `tomp-deploy track` on the same frames (to the text precision both use), and `vot analysis` scores
    them: its average accuracy is the IoU with the ground truth (bounded to the image, the initial frame
    counted as 0) that these boxes give."""
    output = run_vot(workspace, "evaluate", "tomp_tiny")
    assert "Evaluation concluded" in output, output[-3000:]
    qualities = []
    for sequence in open_dataset(workspace / "sequences", "vot"):
        regions, boxes = toolkit_boxes(workspace, "tomp_tiny", sequence.name)
        assert str(regions[0]) == "1", "the first frame is the initialisation"
        tracked = workspace / f"{sequence.name}.txt"
        init_box = ",".join(str(v) for v in sequence.ground_truth[0])
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "tomp_deploy",
                "track",
                sequence.frames[0].parent,
                "--model",
                shipped_export,
                "--backend",
                "onnxruntime",
                "--init-box",
                init_box,
                "--toolkit-box",
                "--output",
                tracked,
            ],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        expected = np.loadtxt(tracked, delimiter=",")[1:]
        np.testing.assert_allclose(boxes, expected, atol=1e-4)
        qualities.append(_bounded_iou(expected, sequence.ground_truth[1:]).sum() / len(sequence.frames))
    run_vot(workspace, "analysis", "tomp_tiny", "--format", "json", "--name", "quality")
    report = json.loads((workspace / "analysis" / "quality.json").read_text())
    quality = report["results"]["baseline"]["results"][0][0][0]
    assert quality == pytest.approx(np.mean(qualities), abs=5e-3), "the toolkit rasterises regions: within 0.5%"


def _libtrax_round_trip(box) -> np.ndarray:
    """The rectangle a TraX server decodes from the message libtrax encodes for `box`."""
    import ctypes

    from trax import _ctypes as libtrax

    rectangle = trax.Rectangle.create(*box)
    message = ctypes.cast(libtrax.trax_region_encode(rectangle.reference), ctypes.c_char_p).value
    received = [ctypes.c_float() for _ in range(4)]
    libtrax.trax_region_get_rectangle(libtrax.trax_region_decode(message), *map(ctypes.byref, received))
    return np.array([value.value for value in received])


def test_track_starts_from_the_box_libtrax_delivers():
    """`as_trax_sends` (what `track --toolkit-box` starts from) equals, bit for bit, the rectangle the
    TraX server receives: on boxes with two decimals, as ground truth files hold, and on arbitrary ones."""
    generator = np.random.default_rng(3)
    boxes = np.concatenate(
        [
            np.round(generator.uniform(0, 2000, (200, 4)), 2),
            generator.uniform(0, 2000, (200, 4)),
            [[0.5, 1.25, 3.00005, 1234.56789]],
        ]
    )
    moved = 0
    for box in boxes:
        sent = as_trax_sends(box)
        np.testing.assert_array_equal(sent, _libtrax_round_trip(box))
        moved += not np.array_equal(sent, box)
    assert moved > 0, "float32 and four decimals move most boxes by a little"


def _bounded_iou(a: np.ndarray, b: np.ndarray, size=(320, 240)) -> np.ndarray:
    def clip(boxes):
        return np.array([clip_box(box, *size, min_size=0) for box in boxes])

    return iou(clip(a), clip(b))


@pytest.mark.parametrize(
    "tracker,message", [("missing_model", "is not an export folder"), ("unknown_backend", "Unknown backend 'tensorflow'")]
)
def test_a_bad_model_or_backend_fails_cleanly_in_the_toolkit(workspace, tracker, message):
    """The toolkit reports our error within a minute (it takes about 3 s); a server that hung instead would
    raise TimeoutExpired here."""
    output = run_vot(workspace, "evaluate", tracker, timeout=60)
    assert "Server terminated the session: " in output and message in output, output[-3000:]


def test_regions_are_tracked_as_their_bounding_boxes():
    np.testing.assert_allclose(region_box(trax.Rectangle.create(10.5, 20, 30, 40)), [10.5, 20, 30, 40])
    triangle = trax.Polygon.create([(10, 50), (40, 20), (70, 60)])
    np.testing.assert_allclose(region_box(triangle), [10, 20, 60, 40])
    mask = np.zeros((30, 40), np.uint8)
    mask[5:15, 8:28] = 1
    np.testing.assert_array_equal(region_box(trax.Mask.create(mask, 100, 50)), [108, 55, 20, 10])
    with pytest.raises(ToMPError, match="mask is empty"):
        region_box(trax.Mask.create(np.zeros((4, 4), np.uint8)))
