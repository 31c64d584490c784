"""IsoFLOP profile at a ladder budget: held-out loss against tokens per parameter (Chinchilla approach 2).

This is the measurement behind the recipe's tokens-per-parameter policy. It trains the cpu preset's
largest ladder budget (1/30 of the target; never the target itself) with several tokens-per-parameter
settings and seeds, two single-threaded runs at a time, and writes bench/results/isoflop_profile.json.
Runs live in a folder named by the code's commit (and the recipe's hash), so a "redone" profile is
never old runs: finished runs of this commit and recipe are reused, so the script can be stopped
and restarted. Results carry the commit, the machine and the recipe.
Run: .venv/bin/python bench/isoflop_profile.py [--tokens-per-param 10 20 60 150] [--seeds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from scalelab.data import CorpusSpec, prepare
from scalelab.provenance import code_version, machine
from scalelab.scaling.forecast import forecast_config, train_ladder
from scalelab.scaling.ladder import plan_run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens-per-param", type=float, nargs="+", default=[10, 20, 60, 150])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-isoflop"))
    args = parser.parse_args()
    cfg = forecast_config("cpu")
    budget = cfg.target_flops * cfg.max_fraction
    plans = [plan_run(cfg.recipe.model_copy(update={"tokens_per_param": tpp}), budget, f"tpp{tpp:g}", seed=s)
             for tpp in args.tokens_per_param for s in range(args.seeds)]
    code = code_version()
    recipe = hashlib.sha256(json.dumps(cfg.model_dump(), sort_keys=True).encode()).hexdigest()[:8]
    root = args.out / f"{(code['commit'] or 'nocommit')[:12]}{'-dirty' if code['dirty'] else ''}-{recipe}"
    if code["dirty"] and root.exists():  # uncommitted code cannot be told apart from the last try
        shutil.rmtree(root)
    data = prepare(CorpusSpec(cfg.corpus, heldout_fraction=cfg.heldout_fraction), cfg.recipe.vocab_size)
    entries = train_ladder(cfg, plans, root, data)
    rows = []
    for tpp in args.tokens_per_param:
        runs = [e for e in entries if e["name"] == f"tpp{tpp:g}"]
        losses = [e["final_eval_loss"] for e in runs]
        rows.append({"tokens_per_param_asked": tpp, "tokens_per_param": runs[0]["tokens"] / runs[0]["params"],
                     "d_model": runs[0]["d_model"], "n_layer": runs[0]["n_layer"],
                     "batch_size": runs[0]["batch_size"], "steps": runs[0]["steps"], "flops": runs[0]["flops"],
                     "losses": losses, "mean": float(np.mean(losses)), "sd": float(np.std(losses, ddof=1))})
        print(f"tokens/param {tpp:g} (d_model {runs[0]['d_model']}): held-out loss {np.mean(losses):.3f} "
              f"± {rows[-1]['sd']:.3f} sd over {len(losses)} seeds {np.round(losses, 3).tolist()}")
    path = Path(__file__).parent / "results" / "isoflop_profile.json"
    path.write_text(json.dumps({"budget_flops": budget, "rows": rows, "config": cfg.model_dump(), "code": code,
                                "machine": machine(), "runs_folder": str(root)}, indent=2) + "\n")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
