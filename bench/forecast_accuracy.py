"""The embedded forecast (`scalelab forecast`, preset cpu) with 3 seeds: relative error and coverage.

Writes bench/results/forecast_accuracy.json. Each seed is a full forecast (~10 minutes on 2 cores);
finished seeds are reused (`--resume`), so the script can be stopped and restarted.
Run: .venv/bin/python bench/forecast_accuracy.py [--seeds 0 1 2] [--preset cpu]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scalelab.report.forecast_report import write_forecast_report
from scalelab.scaling.fit import FitUntrusted
from scalelab.scaling.forecast import forecast_config, run_forecast


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-forecast"))
    args = parser.parse_args()
    rows = []
    for seed in args.seeds:
        out = args.out / f"{args.preset}-seed{seed}"
        try:
            result = run_forecast(forecast_config(args.preset, seed=seed), out, resume=(out / "plan.json").exists())
        except FitUntrusted as e:  # an honest refusal is a result too: `scalelab forecast` exits 3 here
            rows.append({"seed": seed, "refused": str(e)})
            print(f"seed {seed}: no prediction: {e}")
            continue
        write_forecast_report(result, out)
        rows.append({"seed": seed, "predicted_loss": result["predicted_loss"], "interval_90": result["interval_90"],
                     "actual_loss": result["actual_loss"], "relative_error": result["relative_error"],
                     "within_interval": result["within_interval"], "wall_seconds": result["wall_seconds"],
                     "max_ladder_compute_fraction": result["max_ladder_compute_fraction"],
                     "ladder_span_decades": result["ladder_span_decades"], "target_flops": result["target_flops"]})
        print(f"seed {seed}: predicted {result['predicted_loss']:.4f} {result['interval_90']}, actual "
              f"{result['actual_loss']:.4f}, error {100 * result['relative_error']:+.2f}%, "
              f"{'covered' if result['within_interval'] else 'NOT covered'}, {result['wall_seconds']:.0f} s")
    made = [r for r in rows if "refused" not in r]
    summary = {"preset": args.preset, "runs": rows, "n_refused": len(rows) - len(made),
               "max_abs_relative_error": max((abs(r["relative_error"]) for r in made), default=None),
               "coverage": sum(r["within_interval"] for r in made) / len(made) if made else None}
    path = Path(__file__).parent / "results" / "forecast_accuracy.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
