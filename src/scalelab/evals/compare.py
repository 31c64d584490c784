"""Two result folders on the same items: paired bootstrap for every metric, McNemar for 0/1 ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scalelab.errors import UserError
from scalelab.evals.runner import read_results, read_samples
from scalelab.evals.stats import mcnemar, paired_difference


def _results(path: Path) -> tuple[Path, dict]:
    folder = path.parent if path.is_file() else path
    return folder, read_results(folder)


def _scores(folder: Path, task: str) -> dict[str, dict[str, float]]:
    """Item id -> scores, from an eval folder's samples file."""
    out = {}
    for n, row in enumerate(read_samples(folder, task), 1):
        if not isinstance(row.get("scores"), dict) or "id" not in row:
            raise UserError(f"{folder / f'samples_{task}.jsonl'}: row {n} has no 'id' and 'scores'")
        out[str(row["id"])] = row["scores"]
    return out


def compare(a: str | Path, b: str | Path) -> dict[str, Any]:
    """Per task and metric: A - B on the items both scored, with a paired CI and p-values."""
    (dir_a, res_a), (dir_b, res_b) = _results(Path(a)), _results(Path(b))
    out: dict[str, Any] = {"a": res_a.get("model"), "b": res_b.get("model"), "tasks": {}}
    shared = [t for t in res_a["tasks"] if t in res_b["tasks"]]
    if not shared:
        raise UserError(f"{a} and {b} share no task")
    for task in shared:
        rows_a, rows_b = _scores(dir_a, task), _scores(dir_b, task)
        ids = [i for i in rows_a if i in rows_b]
        if not ids:
            raise UserError(f"{a} and {b} share no item of task '{task}'; compare runs on the same items")
        metrics = {}
        for m in dict.fromkeys(k for i in ids for k in rows_a[i]):
            both = [i for i in ids if m in rows_a[i] and m in rows_b[i]]
            if not both:
                continue
            xa, xb = [rows_a[i][m] for i in both], [rows_b[i][m] for i in both]
            entry = {"a": sum(xa) / len(xa), "b": sum(xb) / len(xb), **paired_difference(xa, xb)}
            if all(v in (0.0, 1.0) for v in xa + xb):
                entry["mcnemar"] = mcnemar(xa, xb)
            metrics[m] = entry
        out["tasks"][task] = {"n_shared": len(ids), "metrics": metrics}
    return out
