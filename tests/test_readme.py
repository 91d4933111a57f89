"""Every Python block of the README runs, in order and in one namespace as a reader would follow them, on the
shipped model (the pipeline script, which needs video sources, is run as a script by test_streams)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)


def test_every_python_block_of_the_readme_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # blocks that write files write them here
    blocks = python_blocks()
    assert len(blocks) == 5
    namespace = {"__name__": "readme"}
    for index, block in enumerate(blocks, start=1):
        exec(compile(block, f"README.md python block {index}", "exec"), namespace)
    assert tuple(namespace["scores"].shape) == (1, namespace["cells"], namespace["cells"])
    assert (tmp_path / "tiny-init.pt").is_file()
    assert namespace["result"].box.shape == (4,)
    assert list(namespace["steps"]["door"].results) == [namespace["first"], namespace["second"]]
    assert callable(namespace["main"])  # the pipeline script defines its entry point; test_streams runs it
