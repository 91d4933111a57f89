"""Writing the VOT toolkit's dataset layout: ROOT/list.txt, and per sequence ROOT/<seq>/color/%08d.jpg,
ROOT/<seq>/groundtruth.txt (x,y,w,h rectangles) and ROOT/<seq>/sequence (its metadata: channels, fps).
`read_vot` reads it back."""

from __future__ import annotations

import shutil
from pathlib import Path

from tomp_deploy.evaluation.datasets.readers import read_lasot
from tomp_deploy.runtime.box_text import format_box

FRAME_PATTERN = "%08d.jpg"


def lasot_to_vot(root: Path, fps: int = 30) -> list[str]:
    """Rearranges a benchmark in the LaSOT layout under `root` (ROOT/<class>/<seq>/img/) into the VOT
    layout in place: frames are moved, not copied; a frame whose target is absent (fully occluded or out of
    view) gets a NaN row, VOT's empty region. Returns the sequence names, as list.txt lists them."""
    root = Path(root)
    sequences = read_lasot(root)
    for sequence in sequences:
        folder = root / sequence.name
        (folder / "color").mkdir(parents=True)
        for index, frame in enumerate(sequence.frames, start=1):
            frame.replace(folder / "color" / (FRAME_PATTERN % index))
        present = sequence.target_present
        rows = [format_box(box) if shown else "nan,nan,nan,nan" for box, shown in zip(sequence.ground_truth, present)]
        (folder / "groundtruth.txt").write_text("".join(row + "\n" for row in rows))
        (folder / "sequence").write_text(
            f"name={sequence.name}\nfps={fps}\nformat=default\nchannels.color=color/{FRAME_PATTERN}\n"
        )
    for class_folder in {sequence.frames[0].parent.parent.parent for sequence in sequences}:
        shutil.rmtree(class_folder)
    (root / "list.txt").write_text("".join(f"{sequence.name}\n" for sequence in sequences))
    return [sequence.name for sequence in sequences]
