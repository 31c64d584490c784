"""Fit speed: 250 synthetic runs, 1000 bootstrap resamples, both forms (target: under 30 s on 2 cores).

Writes bench/results/fit_speed.json. Run: .venv/bin/python bench/fit_speed.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from scalelab.provenance import code_version, machine
from scalelab.scaling import Points, fit
from scalelab.scaling.fit import chinchilla_predict

TRUTH = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def main() -> None:
    rng = np.random.default_rng(0)
    n = np.exp(rng.uniform(np.log(1e6), np.log(1e9), 250))
    d = np.exp(rng.uniform(np.log(1e8), np.log(1e11), 250))
    loss = chinchilla_predict(TRUTH, n, d) * np.exp(rng.normal(0, 0.01, 250))
    points = Points.from_columns(params=n, tokens=d, loss=loss)
    rows = []
    for form, query in (("gpt4", {"flops": 1e22}), ("chinchilla", {"params": 1e10, "tokens": 2e11})):
        start = time.perf_counter()
        result = fit(points, form, [query], n_bootstrap=1000)
        seconds = time.perf_counter() - start
        rows.append({"form": form, "n_points": 250, "n_bootstrap": result.n_bootstrap, "seconds": seconds,
                     "params": result.params})
        print(f"{form}: 250 points, {result.n_bootstrap} resamples in {seconds:.1f} s")
    out = Path(__file__).parent / "results" / "fit_speed.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "machine": machine(), "code": code_version()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
