"""The synthetic scene families: determinism, ground truth against hand-computed geometry, occlusion,
the held-out family's isolation from training material, and the motion models' bounds."""

import json

import numpy as np
import pytest

from tomp_deploy import ToMPError
from tomp_deploy.evaluation.datasets import open_dataset
from tomp_deploy.evaluation.synth import FAMILIES, HELD_OUT_FAMILY, TRAINING_FAMILIES, generate_benchmark, photos
from tomp_deploy.evaluation.synth.motion import bouncing_path, wandering_path
from tomp_deploy.evaluation.synth.scene import Layer, Scene, Sprite, measured_attributes, render_frame


def plain_scene(target: Layer, front=(), frames=3) -> Scene:
    background = np.full((480, 640, 3), 50, np.float32)
    camera = np.tile([[320.0, 240.0, 1.0]], (frames, 1))
    return Scene(background, camera, target, front=list(front))


def block(width: int, height: int, value: float = 200) -> Sprite:
    return Sprite(np.full((height, width, 3), value, np.float32), np.ones((height, width), np.float32))


def test_box_is_the_rendered_target_in_frame_pixels():
    layer = Layer(block(40, 20), np.array([[100.0, 80.0]] * 3), np.array([[40.0, 20.0]] * 3))
    image, box, hidden = render_frame(plain_scene(layer), 0, (320, 240), np.random.default_rng(0))
    assert box == [80, 70, 40, 20] and hidden == 0
    assert image[70:90, 80:120].min() == 200 and image[69, 80:120].max() == 50 and image[70:90, 120].max() == 50


def test_rotation_turns_the_box_and_leaving_the_frame_clips_it():
    turned = Layer(block(40, 20), np.array([[100.0, 80.0]]), np.array([[40.0, 20.0]]), angle=np.array([90.0]))
    _, box, _ = render_frame(plain_scene(turned, frames=1), 0, (320, 240), np.random.default_rng(0))
    assert box[2] == pytest.approx(20, abs=1) and box[3] == pytest.approx(40, abs=1)
    assert box[0] + box[2] / 2 == pytest.approx(100, abs=1) and box[1] + box[3] / 2 == pytest.approx(80, abs=1)
    edge = Layer(block(40, 20), np.array([[310.0, 80.0], [400.0, 80.0]]), np.array([[40.0, 20.0]] * 2))
    _, clipped, _ = render_frame(plain_scene(edge, frames=2), 0, (320, 240), np.random.default_rng(0))
    assert clipped == [290, 70, 30, 20]
    assert render_frame(plain_scene(edge, frames=2), 1, (320, 240), np.random.default_rng(0))[1] == [0, 0, 0, 0]


def test_an_occluder_hides_the_target_but_not_its_box():
    target = Layer(block(40, 20), np.array([[100.0, 80.0]]), np.array([[40.0, 20.0]]))
    half = Layer(block(20, 20, 10), np.array([[110.0, 80.0]]), np.array([[20.0, 20.0]]))
    whole = Layer(block(60, 40, 10), np.array([[100.0, 80.0]]), np.array([[60.0, 40.0]]))
    _, box, hidden = render_frame(plain_scene(target, [half], frames=1), 0, (320, 240), np.random.default_rng(0))
    assert box == [80, 70, 40, 20] and hidden == pytest.approx(0.5, abs=0.03)
    image, box, hidden = render_frame(plain_scene(target, [whole], frames=1), 0, (320, 240), np.random.default_rng(0))
    assert box == [80, 70, 40, 20] and hidden == pytest.approx(1.0) and image[70:90, 80:120].max() == 10


def test_attributes_are_read_off_the_rendering():
    frames = 4
    growing = Layer(block(20, 20), np.array([[100.0, 100.0]] * frames), np.array([[20.0, 20.0]] * 3 + [[60.0, 20.0]]))
    scene = plain_scene(growing, frames=frames)
    boxes = np.array([render_frame(scene, i, (320, 240), np.random.default_rng(0))[1] for i in range(frames)])
    found = measured_attributes(scene, boxes, [0.0, 0.5, 1.0, 0.0], (320, 240))
    assert found == ["POC", "FOC", "LR", "ARC"]  # area x3 (not SV), aspect x3, under 1000 pixels, covered 50% / 100%


@pytest.mark.parametrize("family", FAMILIES)
def test_a_sequence_depends_on_family_seed_and_index_only(tmp_path, family):
    one = generate_benchmark(tmp_path / "one", 2, 6, seed=3, family=family)
    two = generate_benchmark(tmp_path / "two", 2, 6, seed=3, family=family, workers=2)
    other = generate_benchmark(tmp_path / "other", 2, 6, seed=4, family=family)
    assert one == two == other
    first, second, third = (open_dataset(tmp_path / name, "lasot") for name in ("one", "two", "other"))
    for a, b, c in zip(first, second, third):
        assert np.array_equal(a.ground_truth, b.ground_truth)
        assert a.frames[-1].read_bytes() == b.frames[-1].read_bytes()
        assert a.frames[-1].read_bytes() != c.frames[-1].read_bytes()
        assert a.ground_truth.shape == (6, 4)
        inside = a.ground_truth[a.valid]
        assert (inside[:, :2] >= 0).all() and (inside[:, 0] + inside[:, 2] <= 320).all()
        assert (inside[:, 1] + inside[:, 3] <= 240).all()
    attributes = json.loads((tmp_path / "one" / "attributes.json").read_text())
    assert set(attributes) == {"att_name_short", "att_name_long", *one}


@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "patches"])
def test_the_first_box_lies_wholly_inside_the_frame(tmp_path, family):
    """It initialises the tracker (`patches` keeps its first generator's behaviour, which did not ensure it)."""
    generate_benchmark(tmp_path, 8, 2, seed=5, family=family)
    first = np.array([sequence.ground_truth[0] for sequence in open_dataset(tmp_path, "lasot")])
    assert (first[:, :2] > 0).all() and (first[:, 0] + first[:, 2] < 320).all() and (first[:, 1] + first[:, 3] < 240).all()


def test_training_families_never_touch_the_held_out_material(tmp_path, monkeypatch):
    assert not set(photos.TRAINING_PHOTOS + photos.TRAINING_GREY) & {
        *photos.HELD_OUT_PHOTOS,
        photos.HELD_OUT_COINS,
        photos.HELD_OUT_FACES,
    }
    assert HELD_OUT_FAMILY not in TRAINING_FAMILIES

    def refuse():
        raise AssertionError("a training family read the held-out pool")

    for loader in ("held_out_photos", "held_out_coins", "held_out_faces"):
        monkeypatch.setattr(f"tomp_deploy.evaluation.synth.families.{loader}", refuse)
    for family in TRAINING_FAMILIES:
        generate_benchmark(tmp_path / family, 6, 4, seed=11, family=family)
    with pytest.raises(AssertionError, match="held-out pool"):
        generate_benchmark(tmp_path / HELD_OUT_FAMILY, 1, 4, seed=11, family=HELD_OUT_FAMILY)


def test_unknown_family_is_named():
    with pytest.raises(ToMPError, match="Unknown synthetic family 'planes'.*bouncing"):
        generate_benchmark("unused", 1, 2, family="planes")


def test_motion_models_stay_inside_their_bounds():
    rng = np.random.default_rng(5)
    for _ in range(20):
        path = wandering_path(rng, 200, 320, 240, speed=8.0)
        assert (path >= [32, 24]).all() and (path <= [288, 216]).all()
        radius = 30.0
        thrown = bouncing_path(rng, 200, 320, 240, radius)
        assert (thrown[:, 0] >= radius - 1e-6).all() and (thrown[:, 0] <= 320 - radius + 1e-6).all()
        assert (thrown[:, 1] <= 240 - radius + 1e-6).all()
        assert np.abs(np.diff(thrown[:, 1])).max() > 2  # it moves, and keeps bouncing


def test_vot_layout_holds_the_lasot_sequences_frame_for_frame(tmp_path):
    from tomp_deploy.evaluation.datasets.vot_layout import lasot_to_vot

    for root in (tmp_path / "lasot", tmp_path / "vot"):
        generate_benchmark(root, sequences=2, frames=6, seed=9, family="bouncing")
    assert lasot_to_vot(tmp_path / "vot") == ["bouncing-1", "bouncing-2"]
    assert (tmp_path / "vot" / "list.txt").read_text().split() == ["bouncing-1", "bouncing-2"]
    lasot, vot = open_dataset(tmp_path / "lasot", "lasot"), open_dataset(tmp_path / "vot", "vot")
    for a, b in zip(lasot, vot):
        assert a.name == b.name
        np.testing.assert_array_equal(a.ground_truth, b.ground_truth)
        assert [p.read_bytes() for p in a.frames] == [p.read_bytes() for p in b.frames]
        assert [p.name for p in b.frames] == [f"{k:08d}.jpg" for k in range(1, 7)]
        assert "channels.color=color/%08d.jpg" in (tmp_path / "vot" / b.name / "sequence").read_text()
    assert not (tmp_path / "vot" / "bouncing").exists(), "the LaSOT class folder is gone"


def test_the_long_term_family_flags_absent_frames_in_both_layouts(tmp_path):
    """The target leaves the view (a zero box and the out-of-view flag in the LaSOT layout) and comes back;
    in the VOT layout its absent frames are NaN rows; the first frame always shows it."""
    from tomp_deploy.evaluation.datasets.vot_layout import lasot_to_vot

    for root in (tmp_path / "lasot", tmp_path / "vot"):
        generate_benchmark(root, sequences=2, frames=160, seed=4, family="longterm-heldout")
    lasot_to_vot(tmp_path / "vot")
    for lasot, vot in zip(open_dataset(tmp_path / "lasot", "lasot"), open_dataset(tmp_path / "vot", "vot")):
        present = lasot.target_present
        assert present[0] and not present.all()
        assert np.abs(np.diff(present.astype(int))).sum() >= 2, "the target leaves and comes back"
        np.testing.assert_array_equal(vot.target_present, present)
        assert np.isnan(vot.ground_truth[~present]).all()
        np.testing.assert_array_equal(vot.ground_truth[present], lasot.ground_truth[present])


def test_a_sequence_appears_whole_or_not_at_all(tmp_path, monkeypatch):
    """A run that fails (or is killed) while writing a sequence leaves the sequences it finished and no
    folder with part of a sequence's frames; writing a sequence again replaces all of it."""
    import tomp_deploy.evaluation.synth.scene as scene

    root = tmp_path / "data"
    generate_benchmark(root, sequences=1, frames=6, seed=1, family="longterm")
    written = sorted(path.name for path in (root / "longterm" / "longterm-1" / "img").iterdir())
    assert len(written) == 6

    def fail(*args, **kwargs):
        raise RuntimeError("killed while writing the annotations")

    monkeypatch.setattr(scene, "write_annotations", fail)
    with pytest.raises(RuntimeError):
        generate_benchmark(root, sequences=2, frames=4, seed=1, family="longterm")
    assert sorted(path.name for path in (root / "longterm").iterdir()) == ["longterm-1"], "no partial or staging folder"
    assert sorted(path.name for path in (root / "longterm" / "longterm-1" / "img").iterdir()) == written

    monkeypatch.undo()
    generate_benchmark(root, sequences=1, frames=4, seed=1, family="longterm")
    assert len(list((root / "longterm" / "longterm-1" / "img").iterdir())) == 4, "no frame of the longer run is left"
