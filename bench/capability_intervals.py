"""Do the capability forecasts' 90% intervals cover? Judged on the ladder alone (no training, no target).

For each finished forecast folder, the rungs below the largest budget are fitted (two-step for the
multiple-choice task, GPT-4's law for the pass-rate task) and predict the largest budget; each of its
seeds' measured values is then checked against the interval. The target's result is never read.
Writes bench/results/capability_intervals.json.
Run: .venv/bin/python bench/capability_intervals.py runs/bench-forecast/<commit>/cpu-seed* [--out FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from scalelab.provenance import code_version, machine
from scalelab.scaling.capability import fit_task, kept_problems
from scalelab.scaling.capability_forecast import actual_value, capability_ladders
from scalelab.scaling.capability_suite import CEILING
from scalelab.scaling.forecast import ForecastConfig, score_ladder
from scalelab.scaling.ladder import RunPlan

TASKS = {"line_tail_choice": "two-step", "line_end": "passrate"}


def check_folder(folder: Path, n_bootstrap: int) -> dict:
    forecast = json.loads((folder / "forecast.json").read_text())
    ladder = forecast["ladder"]
    suite = json.loads((folder / "capabilities" / "suite.json").read_text())
    plans = [RunPlan(**p) for p in json.loads((folder / "plan.json").read_text())["ladder"]]
    scores = score_ladder(ForecastConfig(**forecast["config"]), plans, suite, folder)  # the kept scores, read back
    for s in scores:  # folders scored before the suite stated its ceiling: the same suite, the same ceiling
        s["line_tail_choice"].setdefault("ceiling", CEILING)
    top = max(e["flops"] for e in ladder)
    below = [i for i, e in enumerate(ladder) if e["flops"] < top]
    held = [i for i, e in enumerate(ladder) if e["flops"] == top]
    out = {}
    for task, lad in capability_ladders([ladder[i] for i in below], [scores[i] for i in below]).items():
        result = fit_task(lad, TASKS[task], [{"flops": top}], n_bootstrap=n_bootstrap, seed=0)
        if result["verdict"] != "ok":
            out[task] = {"verdict": result["verdict"]}
            continue
        pred = result["predictions"][0]
        entry = {"metric": result["metric"], "kept_problems": [lad.problems[i] for i in kept_problems(lad)]
                 if TASKS[task] == "passrate" else None}
        actual = [actual_value(task, entry, scores[i]) for i in held]
        value = pred[result["metric"]]
        interval = pred.get("neg_mean_log_pass_rate_interval", pred["interval"])
        out[task] = {"predicted": value, "interval": interval, "actual": actual,
                     "covered": [bool(interval[0] <= a <= interval[1]) for a in actual],
                     "extrapolation_per_decade": result["extrapolation"]["per_decade"]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--n-bootstrap", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "capability_intervals.json")
    args = parser.parse_args()
    per_folder = {str(f): check_folder(f, args.n_bootstrap) for f in args.folders}
    summary = {}
    for task in TASKS:
        rows = [v[task] for v in per_folder.values() if "covered" in v[task]]
        covered = [c for r in rows for c in r["covered"]]
        widths = [r["interval"][1] - r["interval"][0] for r in rows]
        summary[task] = {"n_folders": len(rows), "n_checks": len(covered), "coverage": float(np.mean(covered)),
                         "median_width": float(np.median(widths))}
        print(f"{task}: {sum(covered)}/{len(covered)} seeds of the held-out top budget inside the 90% interval "
              f"({len(rows)} ladders), median width {summary[task]['median_width']:.3f}")
    args.out.write_text(json.dumps({"code": code_version(), "machine": machine(), "summary": summary,
                                    "per_folder": per_folder}, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
