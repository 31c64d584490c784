"""The result folders a report is built from, each told by the file its command writes.

forecast.json (`scalelab forecast`, text or vision-language), results.json (`scalelab eval`),
contamination.json (`scalelab contamination`), align_report.json (`align demo`), align_eval.json
(`align eval`), redteam.json (`redteam run`, and each part of `redteam demo`), judge.json
(`redteam calibrate`), judge_attack.json (`redteam judge-attack`). A folder holding none of them is
searched one level down (a runs/ folder of several results), and a folder holding none at either
depth is an error that names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalelab.errors import UserError
from scalelab.io import read_json_object

KINDS = {"forecast.json": "forecast", "results.json": "eval", "contamination.json": "contamination",
         "align_report.json": "align_demo", "align_eval.json": "align_eval", "redteam.json": "redteam",
         "judge.json": "judge", "judge_attack.json": "judge_attack"}


@dataclass(frozen=True)
class Result:
    kind: str
    folder: Path
    data: dict[str, Any]

    @property
    def label(self) -> str:
        return self.folder.name or str(self.folder)


def _found(folder: Path) -> list[Result]:
    return [Result(kind, folder, read_json_object(folder / name)) for name, kind in KINDS.items()
            if (folder / name).is_file()]


def collect(folders: list[str | Path]) -> list[Result]:
    """Every result in the given folders (or one level below each), in the order given."""
    out: list[Result] = []
    for f in folders:
        folder = Path(f)
        if not folder.is_dir():
            raise UserError(f"{folder} is not a folder of results")
        found = _found(folder)
        if not found:
            found = [r for sub in sorted(p for p in folder.iterdir() if p.is_dir()) for r in _found(sub)]
        if not found:
            raise UserError(f"{folder} holds no result of scalelab (none of {', '.join(KINDS)}, here or one level "
                            "down)")
        out += found
    return out
