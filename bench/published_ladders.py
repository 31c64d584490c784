"""How well does `scalelab fit` forecast real models? Published zero-shot results of three families.

Each family's smaller sizes are the ladder, its larger sizes the targets, fed to the library exactly as
`scalelab fit --form direct --chance ...` reads them (the lm-eval files and sizes CSV under bench/data/).
The targets' rows are dropped before the fit; they are read only to score it. OPT, BLOOM and the Pythia
sizes up to 1.4B (a ladder inside a ladder) were the development set the method was chosen on; the
Pythia and Pythia-deduped targets 2.8B/6.9B/12B (ladder: sizes up to 1/8 of 12B's compute) were not
used in any choice. Writes bench/results/published_ladders.json.
Run: .venv/bin/python bench/published_ladders.py [--out FILE] [--n-bootstrap N]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from scalelab.provenance import code_version, machine
from scalelab.scaling.capability import fit_capabilities, fit_task
from scalelab.scaling.capability_data import read_capabilities

DATA = Path(__file__).parent / "data"
CHANCE = {"lambada_openai": 0.0, "piqa": 0.5, "winogrande": 0.5, "wsc": 0.5, "sciq": 0.25, "arc_easy": 0.25,
          "arc_challenge": 0.25, "logiqa": 0.25}
# (name, sizes CSV, largest ladder size in parameters, role)
LADDERS = [
    ("opt", "opt/sizes.csv", 6.7e9, "dev"),
    ("bloom", "bloom/sizes.csv", 3.1e9, "dev"),
    ("pythia-internal", "pythia/sizes.csv", 1.05e9, "dev"),  # 70m-1b -> 1.4b only; the real targets unread
    ("pythia", "pythia/sizes.csv", 1.5e9, "test"),
    ("pythia-deduped", "pythia/sizes-deduped.csv", 1.5e9, "test"),
]


def _score(task: str, result: dict, actual: dict[float, float]) -> list[dict]:
    rows = []
    for p in result["predictions"]:
        truth, (lo, hi) = actual[p["flops"]], p["interval"]
        rows.append({"task": task, "flops": p["flops"], "predicted": p["accuracy"], "interval": [lo, hi],
                     "actual": truth, "error": p["accuracy"] - truth, "width": hi - lo,
                     "width_drivers": p["width_drivers"], "covered": lo <= truth <= hi})
    return rows


def _summary(rows: list[dict]) -> dict:
    if not rows:
        return {"n": 0}
    err = np.array([r["error"] for r in rows])
    return {"n": len(rows), "mae": float(np.abs(err).mean()), "mean_error": float(err.mean()),
            "coverage": float(np.mean([r["covered"] for r in rows])),
            "median_width": float(np.median([r["width"] for r in rows]))}


def run_ladder(csv: Path, top_params: float, n_bootstrap: int, dev_cut: float | None = None) -> dict:
    _, full = read_capabilities(csv, CHANCE)
    full = {t: lad for t, lad in full.items() if t in CHANCE}
    params = next(iter(full.values())).points.params
    flops = next(iter(full.values())).points.flops
    ladder_idx = np.flatnonzero(params <= top_params)
    target_idx = np.flatnonzero(params > top_params)
    if dev_cut is not None:  # a ladder inside a ladder: only the next size up is a target
        target_idx = target_idx[:1]
    ladders = {t: lad.take(ladder_idx) for t, lad in full.items()}
    queries = [{"flops": float(flops[i])} for i in target_idx]
    actual = {t: {float(lad.points.flops[i]): float(lad.accuracy[i]) for i in target_idx} for t, lad in full.items()}
    direct = fit_capabilities(ladders, "direct", queries, n_bootstrap=n_bootstrap)
    rows, verdicts = [], {}
    for task, result in direct["tasks"].items():
        verdicts[task] = result["verdict"]
        if result["verdict"] == "ok":
            rows += _score(task, result, actual[task])
    per_task = {t: _summary([r for r in rows if r["task"] == t]) | {"verdict": verdicts[t]} for t in verdicts}
    two_step = fit_task(ladders["lambada_openai"], "two-step", queries, n_bootstrap=n_bootstrap)
    two_rows = _score("lambada_openai", two_step, actual["lambada_openai"]) if two_step["verdict"] == "ok" else []
    return {"ladder_params": params[ladder_idx].tolist(), "target_params": params[target_idx].tolist(),
            "direct": {"all_tasks": _summary(rows), "per_task": per_task, "rows": rows,
                       "pooled_over": next((r["extrapolation"].get("pooled_over") for r in direct["tasks"].values()
                                            if r.get("extrapolation")), None)},
            "two_step_lambada": {"summary": _summary(two_rows), "verdict": two_step["verdict"], "rows": two_rows}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "published_ladders.json"))
    ap.add_argument("--n-bootstrap", type=int, default=1000)
    args = ap.parse_args()
    out = {"code_version": code_version(), "machine": machine(), "chance": CHANCE, "ladders": {}}
    for name, csv, top, role in LADDERS:
        res = run_ladder(DATA / csv, top, args.n_bootstrap, dev_cut=top if name == "pythia-internal" else None)
        out["ladders"][name] = {"role": role, **res}
        s, t = res["direct"]["all_tasks"], res["two_step_lambada"]["summary"]
        print(f"{name:16s} {role:4s} direct: n={s['n']} MAE {s.get('mae', float('nan')):.3f} "
              f"cover {s.get('coverage', float('nan')):.2f} medW {s.get('median_width', float('nan')):.3f} | "
              f"two-step lambada: MAE {t.get('mae', float('nan')):.3f} cover {t.get('coverage', float('nan')):.2f} "
              f"medW {t.get('median_width', float('nan')):.3f}")
        for task, pt in res["direct"]["per_task"].items():
            if pt["n"]:
                print(f"    {task:15s} MAE {pt['mae']:.3f} mean err {pt['mean_error']:+.3f} cover {pt['coverage']:.2f} "
                      f"medW {pt['median_width']:.3f}")
            else:
                print(f"    {task:15s} {pt['verdict']}")
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
