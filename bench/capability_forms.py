"""The capability forms compared on the same rungs: finished forecasts' multiple-choice task refitted
by the direct form (accuracy on log compute) beside the two-step forecast they pre-registered.

After the fact and never used by a forecast: it measures how far the method the literature warns
against (direct fits extrapolate worse) would have missed on these ladders. Reads forecast folders
(e.g. those `bench/forecast_accuracy.py` leaves under runs/bench-forecast/COMMIT/); writes
bench/results/capability_forms.json.
Run: .venv/bin/python bench/capability_forms.py runs/bench-forecast/COMMIT/cpu-seed*
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scalelab.provenance import code_version, machine
from scalelab.scaling.capability import fit_task
from scalelab.scaling.capability_forecast import capability_ladders

TASK = "line_tail_choice"


def compare(folder: Path) -> dict:
    forecast = json.loads((folder / "forecast.json").read_text())
    cap = forecast["capabilities"][TASK]
    scores = [json.loads((folder / "ladder" / f"{e['name']}-seed{e['seed']}" / "capabilities.json").read_text())
              for e in forecast["ladder"]]
    ladder = capability_ladders(forecast["ladder"], scores)[TASK]
    row = {"forecast": str(folder), "actual": cap["actual"],
           "two_step": {k: cap[k] for k in ("predicted", "interval_90", "abs_error", "within_interval", "verdict")}}
    direct = fit_task(ladder, "direct", [{"flops": forecast["target_flops"]}], n_bootstrap=1000)
    if direct["verdict"] != "ok":
        row["direct"] = {"verdict": direct["verdict"]}
    else:
        pred = direct["predictions"][0]
        lo, hi = pred["interval"]
        row["direct"] = {"predicted": pred["accuracy"], "interval_90": [lo, hi], "verdict": "ok",
                         "abs_error": abs(pred["accuracy"] - cap["actual"]),
                         "within_interval": bool(lo <= cap["actual"] <= hi)}
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("forecasts", nargs="+", type=Path, help="finished forecast folders")
    args = parser.parse_args()
    rows = [compare(f) for f in args.forecasts]
    for r in rows:
        forms = [f"{name} " + (f"{r[key]['predicted']:.4f} (error {r[key]['abs_error']:.4f})"
                               if r[key]["verdict"] == "ok" else r[key]["verdict"])
                 for name, key in (("two-step", "two_step"), ("direct", "direct"))]
        print(f"{r['forecast']}: actual {r['actual']:.4f}; " + "; ".join(forms))
    out = Path(__file__).parent / "results" / "capability_forms.json"
    out.write_text(json.dumps({"task": TASK, "rows": rows, "machine": machine(), "code": code_version()},
                              indent=2) + "\n")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
