"""Whether the two-step sigmoid's top should be fitted or fixed at the suite's ceiling, judged on the
ladder alone (no training, no target).

For each finished forecast folder, the multiple-choice task's rungs (from prediction.json: written
before the target trained) are refitted without the largest budget or two, both ways, and each refit
predicts the held-out budgets' mean accuracy: scalelab's own leave-largest-out backtest. The target's
result is never read. Writes bench/results/two_step_ceiling.json.
Run: .venv/bin/python bench/two_step_ceiling.py runs/bench-forecast/<commit>/cpu-seed*
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from scalelab.scaling.capability import TaskLadder, fit_task
from scalelab.scaling.capability_suite import CEILING
from scalelab.scaling.fit import Points

TASK = "line_tail_choice"


def ladder_of(folder: Path, ceiling: float | None) -> TaskLadder:
    fit = json.loads((folder / "prediction.json").read_text())["capabilities"][TASK]["fit"]
    p = fit["points"]
    flops = np.array(p["flops"], float)
    nan = np.full(len(flops), np.nan)
    return TaskLadder(TASK, Points(nan, nan, flops, np.array(p["task_loss"], float)), np.array(p["value"], float),
                      fit["params"]["step2"]["chance"], None, ceiling)


def errors(ladder: TaskLadder) -> list[float]:
    rows = fit_task(ladder, "two-step", n_bootstrap=0)["backtest"]
    return [p - a for r in rows for p, a in zip(r["predicted"], r["actual"], strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "two_step_ceiling.json")
    args = parser.parse_args()
    variants = {"fitted top": None, f"top fixed at {CEILING}": CEILING}
    per_folder = {str(f): {name: errors(ladder_of(f, c)) for name, c in variants.items()} for f in args.folders}
    summary = {}
    for name in variants:
        errs = np.array([e for v in per_folder.values() for e in v[name]])
        summary[name] = {"n": len(errs), "mean_abs_error": float(np.abs(errs).mean()), "mean_error": float(errs.mean()),
                         "max_abs_error": float(np.abs(errs).max()), "n_low": int((errs < 0).sum())}
        print(f"{name:18s} backtest over {len(errs)} predictions: mean |error| {summary[name]['mean_abs_error']:.4f}, "
              f"mean {summary[name]['mean_error']:+.4f}, max |error| {summary[name]['max_abs_error']:.3f}, "
              f"{summary[name]['n_low']} low")
    args.out.write_text(json.dumps({"task": TASK, "summary": summary, "per_folder": per_folder}, indent=2) + "\n")


if __name__ == "__main__":
    main()
