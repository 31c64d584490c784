"""Run tasks on a model: results.json (metrics with standard errors and CIs) and samples_<task>.jsonl."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from scalelab.errors import UserError
from scalelab.evals import sandbox
from scalelab.evals.backends.base import Backend
from scalelab.evals.cache import CachedBackend, ResponseCache, default_cache_path
from scalelab.evals.stats import summarize
from scalelab.evals.tasks import HumanEvalTask, Task
from scalelab.io import check_output_dir, read_json_object, read_jsonl, write_atomic, write_json
from scalelab.progress import progress
from scalelab.provenance import stamp


def aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-metric mean, stderr and bootstrap CI over the rows that have the metric; per group too."""
    names = list(dict.fromkeys(m for r in rows for m in r["scores"]))
    out: dict[str, Any] = {"n": len(rows),
                           "metrics": {m: summarize([r["scores"][m] for r in rows if m in r["scores"]]) for m in names}}
    invalid = sum(1 for r in rows if r.get("invalid"))
    if invalid:
        out["n_invalid"] = invalid
    groups = list(dict.fromkeys(r["group"] for r in rows if r.get("group") is not None))
    if groups:
        out["groups"] = {g: aggregate([{k: v for k, v in r.items() if k != "group"} for r in rows
                                       if r.get("group") == g]) for g in groups}
    return out


def task_fingerprint(task: Task) -> str:
    """sha256 over a task's items as the model sees them (prompts, choices, targets, images): two results
    with the same fingerprint scored the same data."""
    h = hashlib.sha256()
    for s in task.samples:
        h.update(json.dumps([s.id, s.prompt, s.choices, str(s.target), list(s.images)]).encode())
    return h.hexdigest()


def write_samples(path: Path, rows: list[dict[str, Any]]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")

    write_atomic(path, write)


def evaluate(model: Backend | None, tasks: list[Task], out: str | Path, model_name: str,
             cache_path: str | Path | None = None, show_progress: bool = True) -> dict[str, Any]:
    """Run every task, answering from the response cache first; write results when all are done."""
    out = check_output_dir(out)
    cache = ResponseCache(cache_path or default_cache_path())
    results: dict[str, Any] = {"model": model_name, "precision": getattr(model, "precision", None), "tasks": {}}
    coding = [t for t in tasks if isinstance(t, HumanEvalTask)]
    if coding:
        results["sandbox"] = sandbox.mode()
        results["sandbox_isolation"] = sandbox.isolation(coding[0].parallel)
    all_rows = {}
    with progress(disable=not show_progress) as bar:
        for task in tasks:
            job = bar.add_task(task.name, total=task.requests() or None)
            cached = CachedBackend(model, cache, on_answer=lambda n, job=job: bar.advance(job, n)) if model else None
            rows = task.run(cached)
            all_rows[task.name] = rows
            results["tasks"][task.name] = aggregate(rows) | getattr(task, "info", {}) | {
                "fingerprint": task_fingerprint(task)}
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in all_rows.items():
        write_samples(out / f"samples_{name}.jsonl", rows)
    results["provenance"] = stamp()
    write_json(out / "results.json", results)
    return results


def read_results(results_dir: str | Path) -> dict[str, Any]:
    """An eval folder's results.json (a missing or broken one is named as the problem)."""
    file = Path(results_dir) / "results.json"
    if not file.exists():
        raise UserError(f"{results_dir}: no results.json there; give an eval output folder")
    results = read_json_object(file)
    if not isinstance(results.get("tasks"), dict):
        raise UserError(f"{file}: no 'tasks' object; is it an eval's results.json?")
    return results


def read_samples(results_dir: str | Path, task: str) -> list[dict[str, Any]]:
    return [row for _, row in read_jsonl(Path(results_dir) / f"samples_{task}.jsonl")]
