"""Where the pass-rate forecast's error comes from, on finished forecasts (no training).

For each forecast folder, GPT-4's law is refitted four ways: the problem filter (every rung solves it)
decided on the same rungs that are fitted, or on seed 0's rungs while seeds 1+ are fitted (no
selection on the fitted models' own luck); and the law without or with a floor (α·C^-k + c). Each
variant is judged first on the ladder alone (refit without the top budget or two, predict them), then
on the target. Writes bench/results/passrate_selection.json.
Run: .venv/bin/python bench/passrate_selection.py runs/bench-forecast/<commit>/cpu-seed*
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.optimize import curve_fit

SOLVED = -np.log(1000)  # the suite's sample budget: a pass rate under 1/1000 counts as never solved


def _law(flops: np.ndarray, y: np.ndarray, floor: bool):
    x = np.log(flops)
    ref = x.mean()
    if not floor:
        slope, intercept = np.polyfit(x - ref, np.log(y), 1)
        return lambda c: np.exp(intercept + slope * (np.log(c) - ref))

    def g(lc, la, k, c):
        return np.exp(la - k * (lc - ref)) + c
    p, _ = curve_fit(g, x, y, p0=[np.log(y.mean()), 0.1, 0.0], bounds=([-10, 0, 0], [10, 5, y.min()]), maxfev=20000)
    return lambda c: g(np.log(c), *p)


def analyse(folder: Path) -> dict:
    forecast = json.loads((folder / "forecast.json").read_text())
    ladder = forecast["ladder"]
    log_pass = np.array([json.loads((folder / "ladder" / f"{e['name']}-seed{e['seed']}" / "capabilities.json")
                                    .read_text())["line_end"]["log_pass_rate"] for e in ladder])
    target = np.array(json.loads((folder / "target" / "capabilities.json").read_text())["line_end"]["log_pass_rate"])
    flops, seeds = np.array([e["flops"] for e in ladder]), np.array([e["seed"] for e in ladder])
    budgets = np.unique(flops)
    out: dict = {"folder": str(folder), "backtest": {}, "target": {}}
    for selection in ("same", "split"):
        for floor in (False, True):
            name = f"{selection}{'+floor' if floor else ''}"
            rows = []
            for hold in (1, 2):
                lower = ~np.isin(flops, budgets[-hold:])
                select = lower & (seeds == 0) if selection == "split" else lower
                fitted = lower & (seeds != 0) if selection == "split" else lower
                kept = np.all(log_pass[select] >= SOLVED, axis=0)
                law = _law(flops[fitted], -log_pass[fitted][:, kept].mean(axis=1), floor)
                rows += [float((law(b) - (-log_pass[flops == b][:, kept].mean())) / -log_pass[flops == b][:, kept]
                               .mean()) for b in budgets[-hold:]]
            out["backtest"][name] = rows
            every = np.ones(len(ladder), bool)
            select = seeds == 0 if selection == "split" else every
            fitted = seeds != 0 if selection == "split" else every
            kept = np.all(log_pass[select] >= SOLVED, axis=0)
            law = _law(flops[fitted], -log_pass[fitted][:, kept].mean(axis=1), floor)
            actual = float(-target[kept].mean())
            predicted = float(law(forecast["target_flops"]))
            out["target"][name] = {"predicted": predicted, "actual": actual,
                                   "relative_error": (predicted - actual) / actual, "kept": int(kept.sum())}
    top = -log_pass[flops == budgets[-1]][:, np.all(log_pass >= SOLVED, axis=0)].mean(axis=0)
    out["target_worse_than_top_rung"] = float(np.mean(-target[np.all(log_pass >= SOLVED, axis=0)] > top))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "passrate_selection.json")
    args = parser.parse_args()
    results = [analyse(f) for f in args.folders]
    for r in results:
        print(r["folder"])
        for name, errs in r["backtest"].items():
            t = r["target"][name]
            print(f"  {name:11s} ladder backtest {', '.join(f'{100 * e:+.1f}%' for e in errs):28s} target "
                  f"{100 * t['relative_error']:+.1f}% ({t['kept']} problems)")
        print(f"  kept problems the target does worse on than the top rung's mean: "
              f"{100 * r['target_worse_than_top_rung']:.0f}%")
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
