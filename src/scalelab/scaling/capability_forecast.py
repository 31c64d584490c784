"""Capabilities in the main job: the suite made before the ladder, scored on every rung, a forecast
pre-registered beside the loss forecast, and the target's scores checked against it.

Folder layout under the forecast's `out`: `capabilities/suite.json` (items, prompts, checkers),
`capabilities/contamination.json` (the suite checked against the training split), and a
`capabilities.json` in each run folder (that model's scores, so a resumed forecast rescores nothing).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from scalelab.data import CorpusSpec
from scalelab.io import write_json
from scalelab.scaling.capability import PassRateLadder, TaskLadder, fit_task, kept_problems
from scalelab.scaling.capability_suite import SAMPLE_BUDGET, build_suite, prompt_examples, score_suite, suite_hash
from scalelab.scaling.fit import Points

MIN_ITEMS = 20


def prepare_suite(corpus: str | None, heldout_fraction: float, seed: int, out: Path, n_choice_items: int,
                  n_pass_items: int) -> dict:
    """The suite and its contamination check, made once (before any run trains) and then read back."""
    folder = out / "capabilities"
    path = folder / "suite.json"
    if path.exists():
        return json.loads(path.read_text())
    from scalelab.contamination import check

    corpora = [corpus or "stdlib"]

    def contaminated(items: list[dict]) -> set[str]:
        report = check(prompt_examples(items), corpora, seed=seed, show_progress=False,
                       train_split_of=heldout_fraction)
        return {row["id"] for task in report["tasks"].values() for row in task["contaminated"]}

    spec = CorpusSpec(corpus, heldout_fraction=heldout_fraction)
    suite = build_suite(spec, seed, n_choice_items, n_pass_items, clean=contaminated)
    # The suite as it stands, checked again by the same module: 0 hits is what the report states.
    report = check(prompt_examples([it for t in suite["tasks"].values() for it in t["items"]]), corpora, seed=seed,
                   show_progress=False, train_split_of=heldout_fraction)
    write_json(folder / "contamination.json", report)
    suite["contamination"] = {task: report["tasks"].get(task, {}).get("n_contaminated", 0) for task in suite["tasks"]}
    write_json(path, suite)  # last: its presence means suite and check are both done
    return suite


def score_run(run_dir: Path, suite: dict, device: str = "auto") -> dict:
    """One run's scores on the suite, computed once (fp32, as every scoring path) and kept in its folder."""
    path = run_dir / "capabilities.json"
    digest = suite_hash(suite)
    if path.exists():
        saved = json.loads(path.read_text())
        if saved.get("suite_hash") == digest:
            return saved
    from scalelab.evals.backends import load_backend

    backend = load_backend(f"run:{run_dir}", device=device)
    scores = score_suite(backend, suite) | {"suite_hash": digest, "precision": backend.precision}
    write_json(path, scores)
    return scores


def _points(entries: list[dict]) -> Points:
    return Points(np.array([e["params"] for e in entries], float), np.array([e["tokens"] for e in entries], float),
                  np.array([e["flops"] for e in entries], float), np.full(len(entries), np.nan))


def capability_ladders(ladder: list[dict], scores: list[dict]) -> dict[str, TaskLadder | PassRateLadder]:
    """The ladder's scores as a TaskLadder (line_tail_choice) and a PassRateLadder (line_end), a row per run."""
    points = _points(ladder)
    mc = [s["line_tail_choice"] for s in scores]
    choice = TaskLadder(
        "line_tail_choice", Points(points.params, points.tokens, points.flops, np.array([m["task_loss"] for m in mc])),
        np.array([m["accuracy"] for m in mc]), mc[0]["chance"], np.array([m["n_items"] for m in mc], float),
        mc[0]["ceiling"])
    log_pass = np.array([s["line_end"]["log_pass_rate"] for s in scores])
    # GPT-4's filter at a finite sample budget: a pass rate below 1/budget counts as never solved.
    log_pass = np.where(log_pass < -np.log(SAMPLE_BUDGET), -np.inf, log_pass)
    line_end = PassRateLadder("line_end", points, log_pass, tuple(scores[0]["line_end"]["problems"]))
    return {"line_tail_choice": choice, "line_end": line_end}


def preregister_capabilities(ladder: list[dict], scores: list[dict], target_flops: float, n_bootstrap: int,
                             level: float, seed: int) -> dict:
    """prediction.json's `capabilities`: each task's prediction, interval, fit and verdict."""
    out = {}
    for task, lad in capability_ladders(ladder, scores).items():
        form = "passrate" if isinstance(lad, PassRateLadder) else "two-step"
        n_items = len(lad.problems) if form == "passrate" else int(lad.n_items[0])
        if n_items < MIN_ITEMS:
            out[task] = {"metric": "neg_mean_log_pass_rate" if form == "passrate" else "accuracy", "form": form,
                         "verdict": f"not predictable: the suite holds {n_items} items of this task (at least "
                                    f"{MIN_ITEMS} are needed; the held-out split is too small)"}
            continue
        result = fit_task(lad, form, [{"flops": target_flops}], n_bootstrap=n_bootstrap, level=level, seed=seed)
        entry = {"metric": result["metric"], "form": form, "verdict": result["verdict"], "fit": result}
        if result["verdict"] == "ok":
            pred = result["predictions"][0]
            entry["predicted"] = pred[result["metric"]]
            entry["interval_90"] = pred.get("neg_mean_log_pass_rate_interval", pred["interval"])
            if form == "passrate":
                entry["kept_problems"] = [lad.problems[i] for i in kept_problems(lad)]
        out[task] = entry
    return out


def actual_value(task: str, entry: dict, scores: dict) -> float:
    """The target's measured value of a task's metric (over the pre-registered kept problems)."""
    if entry["metric"] == "accuracy":
        return scores[task]["accuracy"]
    by_id = dict(zip(scores[task]["problems"], scores[task]["log_pass_rate"], strict=True))
    return float(-np.mean([by_id[p] for p in entry["kept_problems"]]))


def check_capabilities(prediction: dict, target_scores: dict) -> dict:
    """forecast.json's `capabilities`: predicted vs actual for every task, verdicts kept."""
    out = {}
    for task, entry in prediction.items():
        row = {"metric": entry["metric"], "form": entry["form"], "verdict": entry["verdict"],
               "predicted": entry.get("predicted"), "interval_90": entry.get("interval_90"), "actual": None,
               "abs_error": None, "relative_error": None, "within_interval": None, "fit": entry.get("fit")}
        if entry["metric"] == "accuracy" or entry.get("kept_problems"):
            row["actual"] = actual_value(task, entry, target_scores)
        if entry["verdict"] == "ok":
            lo, hi = entry["interval_90"]
            row["abs_error"] = abs(entry["predicted"] - row["actual"])
            row["relative_error"] = (entry["predicted"] - row["actual"]) / row["actual"] if row["actual"] else None
            row["within_interval"] = bool(lo <= row["actual"] <= hi)
        out[task] = row
    return out
