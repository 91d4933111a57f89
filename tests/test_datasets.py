"""Each dataset reader on a small folder written here in that dataset's real layout, quirks included."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tomp_deploy import ToMPError
from tomp_deploy.evaluation.datasets import open_dataset

PIXEL = np.zeros((4, 4, 3), np.uint8)


def images(folder: Path, count: int, pattern: str = "{:08d}.jpg", start: int = 1) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + count):
        cv2.imwrite(str(folder / pattern.format(i)), PIXEL)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_lasot(tmp_path):
    for name in ("cat-1", "cat-2"):
        images(tmp_path / "cat" / name / "img", 5)
        write(tmp_path / "cat" / name / "groundtruth.txt", "1,2,3,4\n5,6,7,8\n1,1,2,2\n1,1,2,2\n1,1,2,2\n")
        write(tmp_path / "cat" / name / "full_occlusion.txt", "0,0,1,0,0")
        write(tmp_path / "cat" / name / "out_of_view.txt", "0,0,0,0,1")
    write(tmp_path / "testing_set.txt", "cat-2\n")
    write(tmp_path / "attributes.json", json.dumps({"cat-2": ["FOC", "OV"]}))
    (sequence,) = open_dataset(tmp_path, "lasot")
    assert sequence.name == "cat-2" and sequence.attributes == ["FOC", "OV"]
    assert sequence.frames[0].name == "00000001.jpg" and len(sequence.frames) == 5
    np.testing.assert_array_equal(sequence.ground_truth[1], [5, 6, 7, 8])
    assert sequence.valid.tolist() == [True, True, False, True, False]


def test_got10k_val_and_test(tmp_path):
    images(tmp_path / "val" / "GOT-10k_Val_000001", 4)
    write(tmp_path / "val" / "GOT-10k_Val_000001" / "groundtruth.txt", "1,2,3,4\n1,2,3,4\n0,0,0,0\n1,2,3,4\n")
    write(tmp_path / "val" / "GOT-10k_Val_000001" / "absence.label", "0\n1\n0\n0\n")
    images(tmp_path / "test" / "GOT-10k_Test_000001", 3)
    write(tmp_path / "test" / "GOT-10k_Test_000001" / "groundtruth.txt", "10,20,30,40\n")
    (val,) = open_dataset(tmp_path, "got10k")
    assert val.valid.tolist() == [True, False, False, True]  # absent frame 1, zero box frame 2
    (test,) = open_dataset(tmp_path, "got10k_test")
    assert np.isnan(test.ground_truth[1:]).all() and test.init_box.tolist() == [10, 20, 30, 40]


def test_trackingnet_test_split(tmp_path):
    images(tmp_path / "TEST" / "frames" / "abc", 12, "{}.jpg", start=0)
    write(tmp_path / "TEST" / "anno" / "abc.txt", "1.5,2,3,4\n")
    (sequence,) = open_dataset(tmp_path, "trackingnet")
    assert [f.name for f in sequence.frames[:3]] == ["0.jpg", "1.jpg", "2.jpg"]  # numeric, not 0, 1, 10
    assert sequence.frames[-1].name == "11.jpg" and np.isnan(sequence.ground_truth[1:]).all()


def test_otb_quirks(tmp_path):
    images(tmp_path / "BlurCar3" / "img", 6, "{:04d}.jpg")
    write(tmp_path / "BlurCar3" / "groundtruth_rect.txt", "1\t2\t3\t4\n" * 4)  # starts at image 3
    images(tmp_path / "Jogging" / "img", 3, "{:04d}.jpg")
    write(tmp_path / "Jogging" / "groundtruth_rect.1.txt", "1 2 3 4\n" * 3)
    write(tmp_path / "Jogging" / "groundtruth_rect.2.txt", "5,6,7,8\n" * 3)
    images(tmp_path / "Tiger1" / "img", 8, "{:04d}.jpg")
    write(tmp_path / "Tiger1" / "groundtruth_rect.txt", "".join(f"{i},1,5,5\n" for i in range(1, 9)))
    images(tmp_path / "KiteSurf" / "jpg", 2, "{:04d}.jpg")
    write(tmp_path / "KiteSurf" / "groundtruth_rect.txt", "1,1,5,5\n1,1,5,5\n")
    sequences = {s.name: s for s in open_dataset(tmp_path, "otb")}
    assert sorted(sequences) == ["BlurCar3", "Jogging_1", "Jogging_2", "KiteSurf", "Tiger1"]
    assert [f.name for f in sequences["BlurCar3"].frames] == ["0003.jpg", "0004.jpg", "0005.jpg", "0006.jpg"]
    assert sequences["Jogging_2"].init_box.tolist() == [5, 6, 7, 8]
    assert sequences["Tiger1"].frames[0].name == "0006.jpg" and sequences["Tiger1"].init_box[0] == 6
    assert len(sequences["KiteSurf"].frames) == 2


def test_nfs(tmp_path):
    images(tmp_path / "sequences" / "Gymnastics", 3, "{:05d}.jpg")
    write(tmp_path / "anno" / "nfs_Gymnastics.txt", "1\t2\t3\t4\n" * 3)
    (sequence,) = open_dataset(tmp_path, "nfs")
    assert sequence.name == "nfs_Gymnastics" and len(sequence.frames) == 3


def test_uav123_sub_sequences_and_nan(tmp_path):
    images(tmp_path / "data_seq" / "UAV123" / "bird1", 777, "{:06d}.jpg")
    write(tmp_path / "anno" / "UAV123" / "bird1_1.txt", "1,2,3,4\nNaN,NaN,NaN,NaN\n")
    write(tmp_path / "anno" / "UAV123" / "bird1_2.txt", "1,2,3,4\n1,2,3,4\n1,2,3,4\n")
    sequences = {s.name: s for s in open_dataset(tmp_path, "uav123")}
    assert sequences["bird1_1"].valid.tolist() == [True, False]
    assert [f.name for f in sequences["bird1_2"].frames] == ["000775.jpg", "000776.jpg", "000777.jpg"]


def test_vot_polygons(tmp_path):
    images(tmp_path / "ball" / "color", 2)
    write(tmp_path / "ball" / "groundtruth.txt", "10,10,30,10,30,20,10,20\n10,10,30,10,30,20,10,20\n")
    write(tmp_path / "list.txt", "ball\n")
    (sequence,) = open_dataset(tmp_path, "vot")
    # An axis-aligned 20x10 polygon keeps its centre (20, 15) and area: w, h = 21, 11 (inclusive pixels).
    np.testing.assert_allclose(sequence.init_box, [20 - 10.5, 15 - 5.5, 21, 11])


def test_plain_folder(tmp_path):
    images(tmp_path / "clip" / "img", 3, "frame_{}.png")
    write(tmp_path / "clip" / "groundtruth.txt", "1 2 3 4\n1 2 3 4\n1 2 3 4\n")
    (sequence,) = open_dataset(tmp_path, "folder")
    assert sequence.name == "clip" and len(sequence.frames) == 3


@pytest.mark.parametrize("format", ["lasot", "got10k", "trackingnet", "otb", "nfs", "uav123", "vot", "folder"])
def test_wrong_layout_is_a_clear_error(tmp_path, format):
    images(tmp_path / "random", 2)
    with pytest.raises(ToMPError, match=str(tmp_path)):
        open_dataset(tmp_path, format)


def test_frames_missing_for_annotation(tmp_path):
    images(tmp_path / "cat" / "cat-1" / "img", 3)
    write(tmp_path / "cat" / "cat-1" / "groundtruth.txt", "1,2,3,4\n" * 5)
    with pytest.raises(ToMPError, match="00000005.jpg does not exist"):
        open_dataset(tmp_path, "lasot")


def test_unparseable_annotation_names_file_and_line(tmp_path):
    images(tmp_path / "cat" / "cat-1" / "img", 2)
    write(tmp_path / "cat" / "cat-1" / "groundtruth.txt", "1,2,3,4\n1,2,x,4\n")
    with pytest.raises(ToMPError, match="groundtruth.txt line 2"):
        open_dataset(tmp_path, "lasot")
