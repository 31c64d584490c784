"""How far below the target a ladder may stop: the forecast refitted with the ladder extended towards the target.

For each finished forecast folder (e.g. the forecast bench's), trains `--extra` more rungs that continue the
ladder's geometric spacing upwards (one seed each, the forecast's own recipe, precision and suite), scores
them, and refits the loss, the two-step accuracy and the pass-rate law on the ladder alone, then with one,
two, ... of the new rungs. Each fit predicts the target's budget and is compared with the target the folder
already trained. This is a diagnostic of the default ladder's reach, not a way to choose the default: the
product's forecast never sees these rungs. New rungs train under `<folder>/reach/`, so a rerun reuses them.
Writes bench/results/ladder_reach.json.
Run: .venv/bin/python bench/ladder_reach.py runs/bench-forecast/<commit>/cpu-seed* [--extra 3]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scalelab.provenance import code_version, machine
from scalelab.scaling.capability import fit_task, kept_problems
from scalelab.scaling.capability_forecast import actual_value, capability_ladders, score_run
from scalelab.scaling.fit import fit
from scalelab.scaling.forecast import ForecastConfig, ladder_points, score_ladder, train_ladder
from scalelab.scaling.ladder import RunPlan, plan_run

TASKS = {"line_tail_choice": "two-step", "line_end": "passrate"}


def extra_plans(cfg: ForecastConfig, ladder: list[dict], n: int) -> list[RunPlan]:
    """`n` rungs above the ladder's top, at its own ratio between budgets."""
    budgets = sorted({e["flops"] for e in ladder})
    ratio = (budgets[-1] / budgets[0]) ** (1 / (len(budgets) - 1))
    return [plan_run(cfg.recipe, budgets[-1] * ratio ** (i + 1), f"X{i + 1}", seed=0) for i in range(n)]


def evaluate(folder: Path, n_extra: int) -> dict:
    forecast = json.loads((folder / "forecast.json").read_text())
    cfg = ForecastConfig(**forecast["config"])
    suite = json.loads((folder / "capabilities" / "suite.json").read_text())
    plans = extra_plans(cfg, forecast["ladder"], n_extra)
    extra = train_ladder(cfg, plans, folder / "reach", None)
    extra_scores = score_ladder(cfg, plans, suite, folder / "reach")
    # the folder's own scores, as the forecast kept them (score_ladder and score_run read them back)
    ladder_plans = [RunPlan(**p) for p in json.loads((folder / "plan.json").read_text())["ladder"]]
    ladder_scores = score_ladder(cfg, ladder_plans, suite, folder)
    target_scores = score_run(folder / "target", suite, cfg.device)
    target_flops = forecast["target_flops"]
    rows = []
    for k in range(n_extra + 1):
        ladder, scores = forecast["ladder"] + extra[:k], ladder_scores + extra_scores[:k]
        loss_fit = fit(ladder_points(ladder), "gpt4", [{"flops": target_flops}], n_bootstrap=cfg.n_bootstrap,
                       level=cfg.level, seed=cfg.seed).predictions[0]
        row = {"extra_rungs": k, "max_fraction": max(e["flops"] for e in ladder) / target_flops,
               "loss": {"predicted": loss_fit["loss"], "interval": loss_fit["interval"],
                        "actual": forecast["actual_loss"]}}
        for task, lad in capability_ladders(ladder, scores).items():
            result = fit_task(lad, TASKS[task], [{"flops": target_flops}], n_bootstrap=cfg.n_bootstrap,
                              level=cfg.level, seed=cfg.seed)
            if result["verdict"] != "ok":
                row[task] = {"verdict": result["verdict"]}
                continue
            pred = result["predictions"][0]
            kept = [lad.problems[i] for i in kept_problems(lad)] if TASKS[task] == "passrate" else None
            actual = actual_value(task, {"metric": result["metric"], "kept_problems": kept}, target_scores)
            if kept is not None:
                row[task] = {"predicted": pred["neg_mean_log_pass_rate"],
                             "interval": pred["neg_mean_log_pass_rate_interval"], "actual": actual,
                             "n_kept": len(kept)}
            else:
                row[task] = {"predicted": pred["accuracy"], "interval": pred["interval"], "actual": actual,
                             "predicted_task_loss": pred["task_loss"],
                             "actual_task_loss": target_scores[task]["task_loss"]}
        for part in ("loss", *TASKS):
            r = row[part]
            if "predicted" in r:
                r["error"] = r["predicted"] - r["actual"]
                r["relative_error"] = r["error"] / r["actual"]
                r["covered"] = bool(r["interval"][0] <= r["actual"] <= r["interval"][1])
        rows.append(row)
    return {"folder": str(folder), "extra_rungs": [{k: e[k] for k in ("name", "d_model", "params", "flops",
                                                                     "final_eval_loss", "wall_seconds")}
                                                   for e in extra],
            "extra_scores": [{"accuracy": s["line_tail_choice"]["accuracy"],
                              "task_loss": s["line_tail_choice"]["task_loss"]} for s in extra_scores],
            "fits": rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--extra", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "ladder_reach.json")
    args = parser.parse_args()
    results = []
    for folder in args.folders:
        res = evaluate(folder, args.extra)
        results.append(res)
        for row in res["fits"]:
            parts = [f"+{row['extra_rungs']} rungs (top {row['max_fraction']:.3f} of target):",
                     f"loss {100 * row['loss']['relative_error']:+.1f}%"]
            for task in TASKS:
                r = row[task]
                parts.append(f"{task} {r['predicted']:.3f} vs {r['actual']:.3f} ({'in' if r['covered'] else 'OUT'})"
                             if "predicted" in r else f"{task}: {r['verdict']}")
            print(folder.name, " ".join(parts))
    out = {"code": code_version(), "machine": machine(), "extra": args.extra, "results": results}
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
