"""Scaling-law fits with bootstrap uncertainty. Needs numpy and scipy, nothing of scalelab's.

Two forms:
- GPT-4's L(C) = a·C^b + c (c the irreducible loss), least squares on log L;
- Chinchilla approach 3, L(N, D) = E + A/N^α + B/D^β, fitted as Hoffmann et al. did: Huber
  loss (δ = 1e-3) on log L with the log-sum-exp parametrisation, L-BFGS from a grid of
  starting points, the best kept.

Uncertainty comes from a bootstrap over runs (resample with replacement, refit). Prediction
intervals add the fit's own residual scatter to each resample's prediction, so they cover a
new run's loss, not only the mean curve.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares, minimize
from scipy.special import logsumexp


class FitUntrusted(RuntimeError):
    """The points do not support a fit (too few, loss not falling with compute, ...)."""


@dataclass(frozen=True)
class Points:
    params: np.ndarray  # N
    tokens: np.ndarray  # D
    flops: np.ndarray  # C
    loss: np.ndarray

    def __len__(self) -> int:
        return len(self.loss)

    def take(self, idx: np.ndarray) -> Points:
        return Points(self.params[idx], self.tokens[idx], self.flops[idx], self.loss[idx])

    @classmethod
    def from_columns(cls, params=None, tokens=None, flops=None, loss=None) -> Points:
        """Any two of N, D, C suffice; C = 6ND fills the gap (Kaplan's approximation)."""
        arr = {k: None if v is None else np.asarray(v, float) for k, v in
               dict(params=params, tokens=tokens, flops=flops).items()}
        if arr["flops"] is None:
            arr["flops"] = 6 * arr["params"] * arr["tokens"]
        elif arr["params"] is None and arr["tokens"] is not None:
            arr["params"] = arr["flops"] / (6 * arr["tokens"])
        elif arr["tokens"] is None and arr["params"] is not None:
            arr["tokens"] = arr["flops"] / (6 * arr["params"])
        n = len(loss)
        nan = np.full(n, np.nan)
        return cls(arr["params"] if arr["params"] is not None else nan,
                   arr["tokens"] if arr["tokens"] is not None else nan, arr["flops"], np.asarray(loss, float))


# --- GPT-4 form -------------------------------------------------------------------------


def gpt4_predict(params: dict[str, float], flops: np.ndarray | float) -> np.ndarray:
    return params["a"] * np.asarray(flops, float) ** params["b"] + params["c"]


def _fit_gpt4(flops: np.ndarray, loss: np.ndarray, start: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
    """Least squares on log L over (log a', b, c) with C scaled by its largest value."""
    scale = flops.max()
    x = flops / scale
    log_loss = np.log(loss)

    def residuals(theta: np.ndarray) -> np.ndarray:
        log_a, b, c = theta
        return np.log(np.exp(log_a) * x**b + c) - log_loss

    lo, hi = np.array([-30.0, -3.0, 0.0]), np.array([30.0, -1e-4, loss.min() * (1 - 1e-6)])
    if start is not None:
        starts = [np.clip(start, lo + 1e-9, hi - 1e-9)]
    else:
        starts = [np.array([np.log(max(loss.max() - c, 1e-6)), b, c])
                  for c in loss.min() * np.array([0.0, 0.3, 0.6, 0.8, 0.9, 0.95])
                  for b in (-0.05, -0.2, -0.5)]
    best = None
    for s in starts:
        r = least_squares(residuals, np.clip(s, lo + 1e-9, hi - 1e-9), bounds=(lo, hi), method="trf")
        if best is None or r.cost < best.cost:
            best = r
    log_a, b, c = best.x
    params = {"a": float(np.exp(log_a) * scale ** (-b)), "b": float(b), "c": float(c)}
    return params, best.x


# --- Chinchilla approach 3 ----------------------------------------------------------------

HUBER_DELTA = 1e-3


def _huber(r: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    small = np.abs(r) <= delta
    value = np.where(small, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta))
    grad = np.where(small, r, delta * np.sign(r))
    return value, grad


def _chinchilla_objective(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray):
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
    lse = logsumexp(terms, axis=0)
    value, dr = _huber(lse - log_l, HUBER_DELTA)
    w = np.exp(terms - lse)  # softmax weights: d lse / d term
    grad = np.array([
        np.sum(dr * w[0]), np.sum(dr * w[1]), np.sum(dr * w[2]),
        np.sum(dr * w[0] * -log_n), np.sum(dr * w[1] * -log_d),
    ])
    return value.sum(), grad


CHINCHILLA_GRID = np.array(list(itertools.product(
    [0, 5, 10, 15, 20, 25],  # a = log A
    [0, 5, 10, 15, 20, 25],  # b = log B
    [-1, -0.5, 0, 0.5, 1],  # e = log E
    [0, 0.5, 1, 1.5, 2],  # alpha
    [0, 0.5, 1, 1.5, 2],  # beta
)), dtype=float)


def _grid_objective(grid: np.ndarray, log_n, log_d, log_l) -> np.ndarray:
    a, b, e, alpha, beta = (grid[:, i : i + 1] for i in range(5))
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.broadcast_to(e, (len(grid), len(log_n)))])
    value, _ = _huber(logsumexp(terms, axis=0) - log_l, HUBER_DELTA)
    return value.sum(axis=1)


def _fit_chinchilla(points: Points, starts: np.ndarray | None = None, n_best: int = 8) -> tuple[dict, np.ndarray]:
    log_n, log_d, log_l = np.log(points.params), np.log(points.tokens), np.log(points.loss)
    if starts is None:
        scores = _grid_objective(CHINCHILLA_GRID, log_n, log_d, log_l)
        starts = CHINCHILLA_GRID[np.argsort(scores)[:n_best]]
    best = None
    for s in np.atleast_2d(starts):
        r = minimize(_chinchilla_objective, s, args=(log_n, log_d, log_l), jac=True, method="L-BFGS-B")
        if best is None or r.fun < best.fun:
            best = r
    a, b, e, alpha, beta = best.x
    params = {"E": float(np.exp(e)), "A": float(np.exp(a)), "B": float(np.exp(b)),
              "alpha": float(alpha), "beta": float(beta)}
    return params, best.x


def chinchilla_predict(params: dict[str, float], n, d) -> np.ndarray:
    n, d = np.asarray(n, float), np.asarray(d, float)
    return params["E"] + params["A"] / n ** params["alpha"] + params["B"] / d ** params["beta"]


def compute_optimal(params: dict[str, float], flops) -> dict[str, np.ndarray]:
    """N*(C), D*(C) minimising L(N, D) under C = 6ND, and tokens per parameter."""
    alpha, beta = params["alpha"], params["beta"]
    c6 = np.asarray(flops, float) / 6
    g = (alpha * params["A"] / (beta * params["B"])) ** (1 / (alpha + beta))
    n_opt = g * c6 ** (beta / (alpha + beta))
    d_opt = c6 / n_opt
    return {"params": n_opt, "tokens": d_opt, "tokens_per_param": d_opt / n_opt}


# --- one API over both forms ----------------------------------------------------------------

FLOOR_KEYS = {"gpt4": "c", "chinchilla": "E"}
FLOOR_TOLERANCE = 0.01  # of the lowest loss: a floor this close to a bound is at it (0.01 nats of 3 is no floor)


def floor_status(params: dict, loss: np.ndarray) -> dict:
    """Where a fit's irreducible loss lies: {"floor", "at_bound": "lower" | "upper" | None, "note"}.

    A floor at 0 means the points did not place one (the law extrapolates a pure power law); a floor at
    the lowest loss measured means the curve flattened on the points themselves. Either is a finding
    about the ladder, not a number to report as the irreducible loss."""
    form = "gpt4" if "c" in params else "chinchilla"
    floor, low = float(params[FLOOR_KEYS[form]]), float(np.min(loss))
    at = "lower" if floor <= FLOOR_TOLERANCE * low else "upper" if floor >= low * (1 - FLOOR_TOLERANCE) else None
    note = {"lower": f"the fitted floor {FLOOR_KEYS[form]} = {floor:.3g} is at its lower bound (0, within 1% of "
                     "the lowest loss): the points do not place an irreducible loss, so the law falls without limit "
                     "past them",
            "upper": f"the fitted floor {FLOOR_KEYS[form]} = {floor:.4g} is at its upper bound (within 1% of the "
                     f"lowest loss measured, {low:.4g}): the curve flattened on the points themselves",
            None: None}[at]
    return {"floor": floor, "at_bound": at, "note": note}



@dataclass
class FitResult:
    form: str
    params: dict[str, float]
    n_points: int
    level: float
    intervals: dict[str, list[float]] = field(default_factory=dict)
    predictions: list[dict] = field(default_factory=list)
    residual_std: float = 0.0  # of log L
    n_bootstrap: int = 0
    backtest: list[dict] = field(default_factory=list)
    band: dict[str, list[float]] = field(default_factory=dict)  # gpt4: the curve's interval over C
    floor: dict = field(default_factory=dict)  # floor_status of the fit

    def to_json(self) -> dict:
        return {"form": self.form, "params": self.params, "intervals": self.intervals, "n_points": self.n_points,
                "level": self.level, "n_bootstrap": self.n_bootstrap, "residual_std_log": self.residual_std,
                "predictions": self.predictions, "backtest": self.backtest, "band": self.band, "floor": self.floor}


def check_trustworthy(points: Points) -> None:
    if len(points) < 4:
        raise FitUntrusted(f"{len(points)} runs are too few for a fit; at least 4 are needed")
    if len(np.unique(points.flops)) < 3:
        raise FitUntrusted("the runs span fewer than 3 distinct compute budgets")
    rho = np.corrcoef(np.argsort(np.argsort(points.flops)), np.argsort(np.argsort(points.loss)))[0, 1]
    if rho > -0.5:
        raise FitUntrusted(f"loss does not fall with compute (rank correlation {rho:+.2f}); no power law to fit")


def fit_once(form: str, points: Points, start: np.ndarray | None) -> tuple[dict, np.ndarray]:
    if form == "gpt4":
        return _fit_gpt4(points.flops, points.loss, start)
    return _fit_chinchilla(points, None if start is None else start[None])


def _predict(form: str, params: dict, query: dict) -> float:
    if form == "gpt4":
        return float(gpt4_predict(params, query["flops"]))
    return float(chinchilla_predict(params, query["params"], query["tokens"]))


def predict_points(form: str, params: dict, points: Points) -> np.ndarray:
    if form == "gpt4":
        return gpt4_predict(params, points.flops)
    return chinchilla_predict(params, points.params, points.tokens)


def percentile_interval(samples, level: float, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The central `level` interval of bootstrap samples: their (1 - level)/2 and (1 + level)/2 quantiles."""
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(samples, [tail, 100 - tail], axis=axis)
    return lo, hi


def band_grid(flops: np.ndarray, query_flops: Sequence[float] = ()) -> np.ndarray:
    """The compute grid a fit's band is drawn on: the runs and the queries, with a margin each side."""
    right = max([float(np.max(flops))] + list(query_flops))
    return np.logspace(np.log10(np.min(flops) / 1.6), np.log10(right * 1.6), 60)


def fit(points: Points, form: str = "gpt4", queries: Sequence[dict] = (), n_bootstrap: int = 1000,
        level: float = 0.9, seed: int = 0, backtest_k: int = 2) -> FitResult:
    """Fit `form`, bootstrap it, predict each query with an interval, and backtest.

    A query is {"flops": C} for gpt4, {"params": N, "tokens": D} for chinchilla.
    """
    if form not in ("gpt4", "chinchilla"):
        raise ValueError(f"unknown form {form}")
    check_trustworthy(points)
    params, theta = fit_once(form, points, None)
    log_resid = np.log(points.loss) - np.log(predict_points(form, params, points))
    dof = max(1, len(points) - len(params))
    resid_std = float(np.sqrt(np.sum(log_resid**2) / dof))
    rng = np.random.default_rng(seed)
    boot_params, boot_preds = [], []
    for _ in range(n_bootstrap):
        idx = rng.integers(0, len(points), len(points))
        if len(np.unique(points.flops[idx])) < 3:
            continue  # a resample without 3 budgets cannot identify three parameters
        p, _ = fit_once(form, points.take(idx), theta)
        boot_params.append(p)
        noise = rng.choice(log_resid, size=len(queries)) * np.sqrt(len(points) / dof)
        boot_preds.append([_predict(form, p, q) * np.exp(z) for q, z in zip(queries, noise, strict=True)])
    intervals = {k: [float(v) for v in percentile_interval([p[k] for p in boot_params], level)] for k in params}
    preds = np.array(boot_preds).reshape(len(boot_params), len(queries))
    predictions = []
    for i, q in enumerate(queries):
        lo, hi = percentile_interval(preds[:, i], level)
        predictions.append({**{k: float(v) for k, v in q.items()}, "loss": _predict(form, params, q),
                            "interval": [float(lo), float(hi)]})
    band = {}
    if form == "gpt4":
        grid = band_grid(points.flops, [q["flops"] for q in queries])
        curves = np.array([gpt4_predict(p, grid) for p in boot_params])
        lo, hi = percentile_interval(curves, level)
        band = {"flops": grid.tolist(), "lo": lo.tolist(), "hi": hi.tolist()}
    return FitResult(form, params, len(points), level, intervals, predictions, resid_std, len(boot_params),
                     leave_largest_out(points, form, backtest_k), band, floor_status(params, points.loss))


def leave_largest_out(points: Points, form: str, max_k: int = 2) -> list[dict]:
    """Refit without the k largest-compute runs and report the error in predicting them."""
    order = np.argsort(points.flops)
    rows = []
    for k in range(1, max_k + 1):
        kept = points.take(order[:-k])
        try:
            check_trustworthy(kept)
        except FitUntrusted:
            break
        p, _ = fit_once(form, kept, None)
        held = points.take(order[-k:])
        pred = predict_points(form, p, held)
        rel = (pred - held.loss) / held.loss
        rows.append({"k": k, "relative_errors": rel.tolist(), "max_abs_relative_error": float(np.abs(rel).max())})
    return rows
