"""The run's results: one JSON document and its Markdown, rewritten whole (temporary file, then rename) after
every measurement, so that a run killed at any point leaves the figures it had measured."""

from __future__ import annotations

import json
import os
from pathlib import Path

from benchmarks.gpu import markdown


class Results:
    def __init__(self, stem: Path, sections: list[str], header: dict):
        self.stem = stem
        self.data = {**header, "skipped": [], **{section: [] for section in sections}}

    @property
    def json_path(self) -> Path:
        return self.stem.with_suffix(".json")

    @property
    def markdown_path(self) -> Path:
        return self.stem.with_suffix(".md")

    def skip(self, what: str, why: str) -> None:
        self.data["skipped"].append(f"{what}: {why}")
        self.save()

    def adder(self, section: str):
        def add(row: dict) -> None:
            self.data[section].append(row)
            self.save()

        return add

    def save(self) -> None:
        self.stem.parent.mkdir(parents=True, exist_ok=True)
        for path, text in ((self.json_path, json.dumps(self.data, indent=2)), (self.markdown_path, markdown.render(self.data))):
            partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
            partial.write_text(text)
            os.replace(partial, path)
