"""Statistics over per-item scores: mean with standard error and bootstrap CI; paired comparisons."""

from __future__ import annotations

import numpy as np
from scipy import stats

N_BOOTSTRAP = 2000


def bootstrap_means(x: np.ndarray, seed: int, n_bootstrap: int, chunk: int = 100) -> np.ndarray:
    """Means of `n_bootstrap` resamples of x with replacement, drawn in chunks to bound memory."""
    rng = np.random.default_rng(seed)
    parts = [rng.choice(x, size=(min(chunk, n_bootstrap - i), len(x))).mean(axis=1)
             for i in range(0, n_bootstrap, chunk)]
    return np.concatenate(parts)


def summarize(values: list[float], seed: int = 0, n_bootstrap: int = N_BOOTSTRAP) -> dict:
    """Mean, its standard error (sample sd / sqrt n) and a percentile-bootstrap 95% CI."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        return {"value": float("nan"), "stderr": float("nan"), "ci95": [float("nan"), float("nan")]}
    stderr = float(x.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
    means = bootstrap_means(x, seed, n_bootstrap)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"value": float(x.mean()), "stderr": stderr, "ci95": [float(lo), float(hi)]}


def paired_difference(a: list[float], b: list[float], seed: int = 0, n_bootstrap: int = N_BOOTSTRAP) -> dict:
    """Mean of a - b on the same items, its paired-bootstrap 95% CI and two-sided p-value."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    means = bootstrap_means(d, seed, n_bootstrap)
    lo, hi = np.percentile(means, [2.5, 97.5])
    # p: how often the bootstrap mean, re-centred on 0 (the null), is as extreme as the observed one
    p = float(np.mean(np.abs(means - d.mean()) >= abs(d.mean())))
    return {"difference": float(d.mean()), "ci95": [float(lo), float(hi)], "p_bootstrap": p, "n": len(d)}


def mcnemar(a: list[float], b: list[float]) -> dict:
    """Exact McNemar test on paired 0/1 outcomes: only the items where the two disagree count."""
    a_arr, b_arr = np.asarray(a) > 0.5, np.asarray(b) > 0.5
    only_a, only_b = int(np.sum(a_arr & ~b_arr)), int(np.sum(~a_arr & b_arr))
    p = float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue) if only_a + only_b else 1.0
    return {"only_a": only_a, "only_b": only_b, "p_value": p}


def proportion(k: int, n: int) -> dict:
    """k successes in n trials: the share with its Wilson 95% CI (sound at 0/n and n/n, where a
    bootstrap of the items collapses to a point)."""
    if n == 0:
        return {"value": None, "ci95": [None, None], "n": 0}
    ci = stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
    return {"value": k / n, "ci95": [float(ci.low), float(ci.high)], "n": n}
