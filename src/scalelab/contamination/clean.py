"""Scores on the clean and the contaminated items beside the full score, as GPT-4's report did."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from scalelab.contamination.scan import Example, check
from scalelab.evals.runner import read_results, read_samples
from scalelab.evals.stats import bootstrap_means, summarize
from scalelab.io import write_json


def examples_of(tasks) -> list[Example]:
    """The checked text of every sample of loaded evaluation tasks: the question, not the answers."""
    return [Example(t.name, s.id, s.question) for t in tasks for s in t.samples]


def _difference(a: list[float], b: list[float], seed: int = 0) -> dict[str, Any]:
    """contaminated - clean: two independent groups, bootstrap CI of the difference of means."""
    if not a or not b:
        return {"value": None, "ci95": None}
    da = bootstrap_means(np.asarray(a, float), seed, 2000)
    db = bootstrap_means(np.asarray(b, float), seed + 1, 2000)
    lo, hi = np.percentile(da - db, [2.5, 97.5])
    return {"value": float(np.mean(a) - np.mean(b)), "ci95": [float(lo), float(hi)]}


def clean_scores(rows: list[dict[str, Any]], contaminated_ids: set[str]) -> dict[str, Any]:
    """Each metric on all items, the clean ones and the contaminated ones, and contaminated - clean."""
    out: dict[str, Any] = {"n": len(rows), "n_contaminated": sum(r["id"] in contaminated_ids for r in rows),
                           "metrics": {}}
    for m in dict.fromkeys(k for r in rows for k in r["scores"]):
        dirty = [r["scores"][m] for r in rows if m in r["scores"] and r["id"] in contaminated_ids]
        clean = [r["scores"][m] for r in rows if m in r["scores"] and r["id"] not in contaminated_ids]
        out["metrics"][m] = {"all": summarize(dirty + clean), "clean": summarize(clean),
                             "contaminated": summarize(dirty), "contaminated_minus_clean": _difference(dirty, clean)}
    return out


def attach_clean_scores(results_dir: str | Path, report: dict[str, Any]) -> dict[str, Any]:
    """Add clean/contaminated scores from a contamination report to an eval's results.json."""
    results_dir = Path(results_dir)
    results = read_results(results_dir)
    for name, entry in report["tasks"].items():
        if name in results["tasks"]:
            ids = {c["id"] for c in entry["contaminated"]}
            results["tasks"][name]["contamination"] = clean_scores(read_samples(results_dir, name), ids)
    results["contamination"] = {k: report[k] for k in ("method", "corpora", "seed")}
    write_json(results_dir / "results.json", results)
    return results


def add_clean_scores(results_dir: str | Path, tasks, corpora: list[str], seed: int = 0) -> dict[str, Any]:
    """Run the GPT-4 check for the tasks of an eval; contamination.json and clean scores in results.json."""
    report = check(examples_of(tasks), corpora, seed=seed)
    write_json(Path(results_dir) / "contamination.json", report)
    return attach_clean_scores(results_dir, report)
