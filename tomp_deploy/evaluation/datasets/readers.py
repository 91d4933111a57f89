"""Readers for the published layouts of LaSOT (and LaSOT-ExtSub), GOT-10k, TrackingNet, OTB-100, NFS,
UAV123, VOT-style folders and plain frame folders with groundtruth.txt, quirks included."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from tomp_deploy.evaluation.datasets.sequence import Sequence, load_boxes, load_flags, polygon_to_box
from tomp_deploy.runtime.box_text import parse_row
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.images import list_images

OTB_FIRST_FRAME = {"BlurCar1": 247, "BlurCar3": 3, "BlurCar4": 18, "David": 300}
"""OTB-100 sequences whose annotation starts after image 1 (the benchmark's own configuration)."""
OTB_SKIPPED_FRAMES = {"Tiger1": 5}
"""Leading frames the OTB protocol leaves out of the sequence and its annotation."""
UAV123_FIRST_FRAME = {
    "bird1_2": 775,
    "bird1_3": 1573,
    "car1_2": 751,
    "car1_3": 1627,
    "car16_2": 415,
    "car6_2": 487,
    "car6_3": 1807,
    "car6_4": 2953,
    "car6_5": 3925,
    "car8_2": 1357,
    "group1_2": 1333,
    "group1_3": 2515,
    "group1_4": 3925,
    "group2_2": 907,
    "group2_3": 1771,
    "group3_2": 1567,
    "group3_3": 2827,
    "group3_4": 4369,
    "person12_2": 601,
    "person14_2": 847,
    "person14_3": 1813,
    "person17_2": 1501,
    "person19_2": 1243,
    "person19_3": 2791,
    "person2_2": 1189,
    "person4_2": 1501,
    "person5_2": 877,
    "person7_2": 1249,
    "person8_2": 1075,
    "truck4_2": 577,
    "uav1_2": 1555,
    "uav1_3": 2473,
}
"""UAV123 sequences cut from a longer video: the image their annotation starts at (others start at 1)."""


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise ToMPError(f"{folder} does not exist: the dataset is incomplete or in another layout.")
    return list_images(folder)


def _require(path: Path, layout: str) -> None:
    if not path.exists():
        raise ToMPError(f"{path} does not exist. Expected the {layout}.")


def _first_frame_only(path: Path, count: int) -> np.ndarray:
    """Test splits publish only the first box: the rest is NaN (not annotated)."""
    boxes = load_boxes(path)
    if len(boxes) == 1 and count > 1:
        boxes = np.vstack([boxes, np.full((count - 1, 4), np.nan)])
    return boxes


def read_lasot(root: Path, dataset: str = "lasot", training: bool = False) -> list[Sequence]:
    """ROOT/<class>/<class>-<n>/{img/00000001.jpg, groundtruth.txt, full_occlusion.txt, out_of_view.txt};
    a testing_set.txt at ROOT selects the test sequences (`training=True`: all the others);
    ROOT/attributes.json gives attributes."""
    layout = "LaSOT layout ROOT/<class>/<class>-<n>/img/00000001.jpg with groundtruth.txt beside img/"
    folders = sorted(p.parent for p in root.glob("*/*/groundtruth.txt"))
    if not folders:
        raise ToMPError(f"{root} is not in the {layout}: no ROOT/*/*/groundtruth.txt found.")
    listing = root / "testing_set.txt"
    if listing.is_file():
        listed = set(listing.read_text().split())
        folders = [f for f in folders if (f.name in listed) != training]
    attributes = json.loads((root / "attributes.json").read_text()) if (root / "attributes.json").is_file() else {}
    sequences = []
    for folder in folders:
        boxes = load_boxes(folder / "groundtruth.txt")
        visible = None
        if (folder / "full_occlusion.txt").is_file() and (folder / "out_of_view.txt").is_file():
            visible = (load_flags(folder / "full_occlusion.txt") == 0) & (load_flags(folder / "out_of_view.txt") == 0)
            if len(visible) != len(boxes):
                raise ToMPError(f"{folder}: {len(visible)} occlusion flags for {len(boxes)} boxes.")
        frames = [folder / "img" / f"{i:08d}.jpg" for i in range(1, len(boxes) + 1)]
        _require(frames[0], layout)
        _require(frames[-1], layout + f" ({len(boxes)} frames, one per groundtruth line)")
        sequences.append(Sequence(folder.name, frames, boxes, visible, attributes.get(folder.name, []), dataset))
    return sequences


def read_got10k(root: Path, split: str = "val") -> list[Sequence]:
    """ROOT/<split>/<seq>/{00000001.jpg, groundtruth.txt, absence.label}; test has the first box only."""
    base = root / split if (root / split).is_dir() else root
    folders = sorted(p.parent for p in base.glob("*/groundtruth.txt"))
    if not folders:
        raise ToMPError(f"{root} is not in the GOT-10k layout ROOT/{split}/<GOT-10k_..._n>/groundtruth.txt.")
    sequences = []
    for folder in folders:
        frames = _images(folder)
        boxes = _first_frame_only(folder / "groundtruth.txt", len(frames))
        visible = None
        if (folder / "absence.label").is_file():
            visible = load_flags(folder / "absence.label") == 0
        sequences.append(Sequence(folder.name, frames, boxes, visible, [], "got10k"))
    return sequences


def read_trackingnet(root: Path, split: str = "TEST") -> list[Sequence]:
    """ROOT/<split>/frames/<seq>/0.jpg... with ROOT/<split>/anno/<seq>.txt; TEST has the first box only."""
    anno = root / split / "anno"
    if not anno.is_dir():
        raise ToMPError(f"{root} is not in the TrackingNet layout ROOT/{split}/anno/<seq>.txt + ROOT/{split}/frames/<seq>/.")
    sequences = []
    for path in sorted(anno.glob("*.txt")):
        frames = _images(root / split / "frames" / path.stem)
        sequences.append(Sequence(path.stem, frames, _first_frame_only(path, len(frames)), None, [], "trackingnet"))
    return sequences


def read_otb(root: Path) -> list[Sequence]:
    """ROOT/<Seq>/img/0001.jpg (KiteSurf: jpg/) with groundtruth_rect.txt, or groundtruth_rect.1.txt and
    .2.txt for the two-target sequences (Jogging, Skating2, Human4: named <Seq>_1, <Seq>_2)."""
    annotations = sorted(root.glob("*/groundtruth_rect*.txt"))
    if not annotations:
        raise ToMPError(f"{root} is not in the OTB layout ROOT/<Seq>/img/0001.jpg with groundtruth_rect.txt.")
    sequences = []
    for path in annotations:
        folder = path.parent
        suffix = path.name[len("groundtruth_rect") : -len(".txt")].strip(".")
        name = f"{folder.name}_{suffix}" if suffix else folder.name
        image_folder = folder / "img" if (folder / "img").is_dir() else folder / "jpg"
        images = _images(image_folder)
        boxes = load_boxes(path)
        first = OTB_FIRST_FRAME.get(folder.name, 1) - 1
        skipped = OTB_SKIPPED_FRAMES.get(folder.name, 0)
        frames = images[first + skipped : first + len(boxes)]
        sequences.append(Sequence(name, frames, boxes[skipped:], None, [], "otb"))
    return sequences


def read_nfs(root: Path) -> list[Sequence]:
    """The 30 fps NFS as the reference toolkit lays it out: ROOT/sequences/<Seq>/00001.jpg and
    ROOT/anno/nfs_<Seq>.txt (tab-separated x, y, w, h)."""
    anno = root / "anno"
    if not anno.is_dir():
        raise ToMPError(f"{root} is not in the NFS layout ROOT/sequences/<Seq>/00001.jpg + ROOT/anno/nfs_<Seq>.txt.")
    sequences = []
    for path in sorted(anno.glob("nfs_*.txt")):
        name = path.stem[len("nfs_") :]
        boxes = load_boxes(path)
        frames = _images(root / "sequences" / name)[: len(boxes)]
        sequences.append(Sequence(path.stem, frames, boxes, None, [], "nfs"))
    return sequences


def read_uav123(root: Path) -> list[Sequence]:
    """ROOT/data_seq/UAV123/<video>/000001.jpg and ROOT/anno/UAV123/<seq>.txt, where <seq> is <video> or
    <video>_<k> for the sequences cut from one long video; NaN rows mark an invisible target."""
    anno = root / "anno" / "UAV123"
    if not anno.is_dir():
        raise ToMPError(f"{root} is not in the UAV123 layout ROOT/anno/UAV123/<seq>.txt + ROOT/data_seq/UAV123/<video>/.")
    sequences = []
    for path in sorted(anno.glob("*.txt")):
        video = re.sub(r"_\d+$", "", path.stem) if path.stem in UAV123_FIRST_FRAME or path.stem.endswith("_1") else path.stem
        boxes = load_boxes(path)
        first = UAV123_FIRST_FRAME.get(path.stem, 1) - 1
        frames = _images(root / "data_seq" / "UAV123" / video)[first : first + len(boxes)]
        sequences.append(Sequence(path.stem, frames, boxes, None, [], "uav"))
    return sequences


def read_vot(root: Path) -> list[Sequence]:
    """ROOT/<seq>/groundtruth.txt (rectangles or 8-value polygons) with frames in ROOT/<seq>/color/ or
    ROOT/<seq>/; ROOT/list.txt, where present, names the sequences."""
    listing = root / "list.txt"
    names = listing.read_text().split() if listing.is_file() else sorted(p.parent.name for p in root.glob("*/groundtruth.txt"))
    if not names:
        raise ToMPError(f"{root} is not in the VOT layout ROOT/<seq>/groundtruth.txt + ROOT/<seq>/color/00000001.jpg.")
    sequences = []
    for name in names:
        folder = root / name
        _require(folder / "groundtruth.txt", "VOT layout ROOT/<seq>/groundtruth.txt")
        boxes = read_vot_regions(folder / "groundtruth.txt")
        frames = _images(folder / "color" if (folder / "color").is_dir() else folder)
        sequences.append(Sequence(name, frames[: len(boxes)], boxes, None, [], "vot"))
    return sequences


def read_vot_regions(path: Path) -> np.ndarray:
    """A VOT region file as x,y,w,h rows: rectangles as they are, polygons (4 corners) by `polygon_to_box`,
    and NaN for a frame whose target is absent (a row of NaN, or one special code such as `0`, as the
    toolkit writes an empty region)."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        values = parse_row(line, f"{path} line {number}")
        if len(values) == 1 or np.isnan(values).any():
            rows.append(np.full(4, np.nan))
        elif len(values) == 4:
            rows.append(values)
        elif len(values) == 8:
            rows.append(polygon_to_box(values[None])[0])
        else:
            raise ToMPError(
                f"{path} line {number}: a VOT region is a rectangle (4 numbers), a polygon (8) or one special "
                f"code; found {len(values)} numbers."
            )
    if not rows:
        raise ToMPError(f"{path} holds no regions.")
    return np.array(rows, dtype=np.float64)


def read_folders(root: Path) -> list[Sequence]:
    """One sequence (frames and groundtruth.txt in ROOT or frames in ROOT/img), or a folder of them."""
    candidates = [root] if (root / "groundtruth.txt").is_file() else sorted(p.parent for p in root.glob("*/groundtruth.txt"))
    if not candidates:
        raise ToMPError(f"{root} holds no groundtruth.txt (in it or in its sub-folders).")
    sequences = []
    for folder in candidates:
        frames = _images(folder / "img" if (folder / "img").is_dir() else folder)
        boxes = load_boxes(folder / "groundtruth.txt")
        if len(boxes) == 1 and len(frames) > 1:
            boxes = _first_frame_only(folder / "groundtruth.txt", len(frames))
        sequences.append(Sequence(folder.name, frames, boxes, None, [], "folder"))
    return sequences


FORMATS = {
    "lasot": read_lasot,
    "lasot_extension": lambda root: read_lasot(root, "lasot_extension"),
    "got10k": read_got10k,
    "got10k_test": lambda root: read_got10k(root, "test"),
    "trackingnet": read_trackingnet,
    "otb": read_otb,
    "nfs": read_nfs,
    "uav123": read_uav123,
    "vot": read_vot,
    "folder": read_folders,
}


def open_dataset(root: str | Path, format: str) -> list[Sequence]:
    root = Path(root)
    if format not in FORMATS:
        raise ToMPError(f"Unknown dataset format {format!r}; choose one of {', '.join(FORMATS)}.")
    if not root.is_dir():
        raise ToMPError(f"Dataset root {root} does not exist or is not a folder.")
    sequences = FORMATS[format](root)
    if not sequences:
        raise ToMPError(f"{root} holds no sequences in the {format} layout.")
    return sequences
