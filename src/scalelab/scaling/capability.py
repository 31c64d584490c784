"""Capability forecasts from a ladder: accuracy and pass rates at a compute no rung reached.

Three forms, each with a bootstrap (over rungs with seeds; over item noise for a ladder of single models
whose item counts are known; for pass rates, over problems too), a leave-largest-out backtest, and a
verdict instead of a number where the rungs support none:
- two-step (OLMo's model ladders, Llama 3): task loss L(C) = a·C^b + c (or Chinchilla's L(N, D) when
  asked at N, D), then accuracy = chance + (top - chance)·σ(-k·(L - L0)) fitted on the rungs' own
  (task loss, accuracy) pairs; `top` is fitted (OLMo's) unless the task states its ceiling (a suite
  whose right answer is always right has ceiling 1: rungs far below it cannot place it);
- direct: accuracy = chance + (top - chance)·σ(k·(log10 C - x0)); known to extrapolate worse;
- passrate (GPT-4's Figure 2): -E_P[log pass_rate(C)] = α·C^-k, the mean over the problems every
  rung solves (P), one law per difficulty bucket beside the law over all of P.
Like the loss fit, prediction intervals add the fit's residual scatter to each resample's
prediction, so they cover a new run's measured value, item noise included, not only the curve. They
also add the form's own extrapolation error: the backtest's errors, less the measurement noise of the
budgets it predicted, per decade of distance from the refit's ladder centre, grown linearly to each
query's distance (a capability metric can bend where no rung sees it; a ladder whose top budgets its
lower ones already mispredict says so with a wider interval). `fit_capabilities` pools that rate over
all the tasks it fits. Each prediction says how wide its interval is and what makes it so.
Needs numpy and scipy and the loss fit, nothing else of scalelab's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares
from scipy.special import expit
from scipy.stats import spearmanr

from scalelab.scaling.fit import (
    FitUntrusted,
    Points,
    band_grid,
    check_trustworthy,
    fit_once,
    floor_status,
    percentile_interval,
    predict_points,
)

FORMS = ("two-step", "direct", "passrate")
MIN_RUNGS = 4
MIN_ABOVE_CHANCE = 3  # distinct budgets above the floor a sigmoid needs


class NotPredictable(Exception):
    """The rungs support no forecast of this task; `trend` says how the metric moves with compute."""

    def __init__(self, reason: str, trend: dict | None = None):
        super().__init__(reason)
        self.trend = trend


@dataclass(frozen=True)
class TaskLadder:
    """One task's results on each model of a ladder: accuracy, and the task loss when measured."""

    task: str
    points: Points  # size of each model; `loss` is the task loss (NaN where not measured)
    accuracy: np.ndarray
    chance: float = 0.0
    n_items: np.ndarray | None = None  # items behind each accuracy: its binomial noise
    ceiling: float | None = None  # the sigmoid's top when known (a perfect model's accuracy); None: fitted

    @property
    def has_task_loss(self) -> bool:
        return bool(np.isfinite(self.points.loss).all())

    def take(self, idx: np.ndarray) -> TaskLadder:
        return TaskLadder(self.task, self.points.take(idx), self.accuracy[idx], self.chance,
                          None if self.n_items is None else self.n_items[idx], self.ceiling)

    @property
    def one_model_per_budget(self) -> bool:
        """A ladder of single models (a published family) rather than seeds per budget."""
        return len(np.unique(self.points.flops)) == len(self.points)

    def redrawn(self, rng: np.random.Generator) -> TaskLadder:
        """The same rungs, each accuracy drawn again from its binomial item noise (a parametric bootstrap)."""
        n = self.n_items.astype(int)
        return TaskLadder(self.task, self.points, rng.binomial(n, self.accuracy) / n, self.chance, self.n_items,
                          self.ceiling)


@dataclass(frozen=True)
class PassRateLadder:
    """Per-problem pass rates of each model of a ladder, as log pass rates (-inf: never passed)."""

    task: str
    points: Points  # size of each model
    log_pass: np.ndarray  # (models, problems)
    problems: tuple[str, ...]

    def take(self, idx: np.ndarray) -> PassRateLadder:
        return PassRateLadder(self.task, self.points.take(idx), self.log_pass[idx], self.problems)


def queries_flops(queries: Sequence[dict]) -> list[dict]:
    """Each query with its compute: C, or N and D (C = 6ND)."""
    out = []
    for q in queries:
        q = {k: float(v) for k, v in q.items()}
        if "flops" not in q:
            q["flops"] = 6 * q["params"] * q["tokens"]
        out.append(q)
    return out


# --- trends and verdicts ----------------------------------------------------------------------


def trend(flops: np.ndarray, value: np.ndarray) -> dict:
    """How a metric moves with compute: Spearman's ρ and the least-squares slope per decade."""
    if len(np.unique(flops)) < 2 or np.ptp(value) == 0:
        return {"spearman": 0.0, "per_decade": 0.0}
    rho = float(spearmanr(flops, value).statistic)
    slope = float(np.polyfit(np.log10(flops), value, 1)[0])
    return {"spearman": rho, "per_decade": slope}


def _floor_margin(ladder: TaskLadder) -> np.ndarray:
    """How far above chance a rung must be to count as above it: two binomial SEs, at least 0.02."""
    if ladder.n_items is None:
        return np.full(len(ladder.accuracy), 0.02)
    se = np.sqrt(ladder.chance * (1 - ladder.chance) / ladder.n_items)
    return np.maximum(0.02, 2 * se)


def check_accuracy(ladder: TaskLadder) -> dict:
    """The accuracy trend, or NotPredictable: every rung at chance, inverse scaling, too few above chance."""
    flops, acc = ladder.points.flops, ladder.accuracy
    t = trend(flops, acc)
    if len(np.unique(flops)) < MIN_RUNGS:
        raise NotPredictable(f"{len(np.unique(flops))} distinct budgets; at least {MIN_RUNGS} are needed", t)
    above = acc > ladder.chance + _floor_margin(ladder)
    if not above.any():
        raise NotPredictable(f"every rung is at chance (best accuracy {acc.max():.3f}, chance {ladder.chance:.3f})",
                             t)
    if t["spearman"] < -0.5:
        raise NotPredictable(f"inverse scaling: accuracy falls with compute (Spearman {t['spearman']:+.2f}, "
                             f"{t['per_decade']:+.3f} per decade)", t)
    n_above = len(np.unique(flops[above]))
    if n_above < MIN_ABOVE_CHANCE:
        raise NotPredictable(f"only {n_above} budget(s) above chance; the sigmoid needs at least "
                             f"{MIN_ABOVE_CHANCE}", t)
    if t["spearman"] < 0.5:
        raise NotPredictable(f"accuracy does not rise with compute (Spearman {t['spearman']:+.2f})", t)
    return t


def check_task_loss(ladder: TaskLadder) -> dict:
    t = trend(ladder.points.flops, ladder.points.loss)
    if t["spearman"] > 0.5:
        raise NotPredictable(f"inverse scaling: task loss rises with compute (Spearman {t['spearman']:+.2f}, "
                             f"{t['per_decade']:+.3f} per decade)", t)
    try:
        check_trustworthy(ladder.points)
    except FitUntrusted as e:
        raise NotPredictable(f"task loss: {e}", t) from None
    return t


# --- the sigmoid with chance as its floor -------------------------------------------------------


def sigmoid(theta: np.ndarray, x: np.ndarray, chance: float, sign: float) -> np.ndarray:
    top, k, x0 = theta
    return chance + (top - chance) * expit(sign * k * (np.asarray(x, float) - x0))


def fit_sigmoid(x: np.ndarray, y: np.ndarray, chance: float, sign: float,
                start: np.ndarray | None = None, ceiling: float | None = None) -> np.ndarray:
    """(top, k, x0) by least squares; sign +1 rises with x (log compute), -1 falls (task loss). A given
    `ceiling` is the top, and only k and x0 are fitted."""
    centre, spread = float(np.mean(x)), float(np.std(x)) or 1.0
    lo = np.array([chance + 1e-6, 1e-3 / spread, centre - 20 * spread])
    hi = np.array([1.0, 1e3 / spread, centre + 20 * spread])
    free = slice(0, 3) if ceiling is None else slice(1, 3)

    def full(theta_free):
        return theta_free if ceiling is None else np.concatenate([[ceiling], theta_free])

    def residuals(theta_free):
        return sigmoid(full(theta_free), x, chance, sign) - y

    if start is not None:
        starts = [start]
    else:
        starts = [np.array([top, k / spread, centre + sign * z * spread])
                  for top in (min(1.0, y.max() + 0.05), 1.0) for k in (0.5, 1.0, 2.0, 4.0)
                  for z in (-1.0, 0.0, 1.0, 2.0, 3.0)]
    best = None
    for s in starts:
        r = least_squares(residuals, np.clip(s, lo + 1e-9, hi - 1e-9)[free], bounds=(lo[free], hi[free]),
                          method="trf")
        if best is None or r.cost < best.cost:
            best = r
    return full(best.x)


def _sigmoid_params(theta: np.ndarray, chance: float, x0_name: str) -> dict[str, float]:
    return {"chance": float(chance), "top": float(theta[0]), "k": float(theta[1]), x0_name: float(theta[2])}


# --- the forms ----------------------------------------------------------------------------------


@dataclass
class _Model:
    """A fitted form: its parameters, `predict(points, noise=None)` of the metric, and its residuals
    (`residuals` additive on the metric, `log_resid` on the log of the loss the metric comes from)."""

    params: dict
    theta: tuple
    predict: Callable[..., np.ndarray]
    residuals: np.ndarray
    log_resid: np.ndarray
    task_loss: Callable[[Points], np.ndarray] | None = None


def _two_step(ladder: TaskLadder, step1: str, start: tuple | None = None) -> _Model:
    points = ladder.points
    p1, th1 = fit_once(step1, points, None if start is None else start[0])
    th2 = fit_sigmoid(points.loss, ladder.accuracy, ladder.chance, -1.0, None if start is None else start[1],
                      ladder.ceiling)
    log_resid = np.log(points.loss) - np.log(predict_points(step1, p1, points))
    resid = ladder.accuracy - sigmoid(th2, points.loss, ladder.chance, -1.0)

    def predict(queries: Points, noise: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        loss = predict_points(step1, p1, queries)
        if noise is not None:
            loss = loss * np.exp(noise[0])
        acc = sigmoid(th2, loss, ladder.chance, -1.0) + (0 if noise is None else noise[1])
        return np.clip(acc, 0.0, 1.0)

    params = {"step1": {"form": step1, **p1}, "step2": _sigmoid_params(th2, ladder.chance, "L0")}
    return _Model(params, (th1, th2), predict, resid, log_resid, lambda q: predict_points(step1, p1, q))


def _direct(ladder: TaskLadder, start: tuple | None = None) -> _Model:
    x = np.log10(ladder.points.flops)
    th = fit_sigmoid(x, ladder.accuracy, ladder.chance, 1.0, None if start is None else start[0], ladder.ceiling)
    resid = ladder.accuracy - sigmoid(th, x, ladder.chance, 1.0)

    def predict(queries: Points, noise: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        acc = sigmoid(th, np.log10(queries.flops), ladder.chance, 1.0) + (0 if noise is None else noise[1])
        return np.clip(acc, 0.0, 1.0)

    return _Model(_sigmoid_params(th, ladder.chance, "log10_C0"), (th,), predict, resid, np.zeros(len(resid)))


def neg_mean_log_pass(ladder: PassRateLadder, problems: np.ndarray) -> np.ndarray:
    """-E_P[log pass_rate] of each model over the problem indices `problems`."""
    return -ladder.log_pass[:, problems].mean(axis=1)


def _power_law(flops: np.ndarray, y: np.ndarray) -> _Model:
    """log y = log α - k·log C, least squares (C scaled by its geometric mean for conditioning)."""
    ref = float(np.exp(np.mean(np.log(flops))))
    slope, intercept = np.polyfit(np.log(flops / ref), np.log(y), 1)
    k, alpha = float(-slope), float(np.exp(intercept) * ref ** (-slope))
    resid = np.log(y) - (intercept + slope * np.log(flops / ref))

    def predict(queries: Points, noise: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        out = alpha * queries.flops ** (-k)
        return out if noise is None else out * np.exp(noise[0])

    return _Model({"alpha": alpha, "k": k}, (), predict, np.zeros(len(resid)), resid)


def kept_problems(ladder: PassRateLadder) -> np.ndarray:
    """GPT-4's filter: the problems every model solves at least once."""
    return np.flatnonzero(np.isfinite(ladder.log_pass).all(axis=0))


def _passrate(ladder: PassRateLadder, problems: np.ndarray) -> _Model:
    y = neg_mean_log_pass(ladder, problems)
    t = trend(ladder.points.flops, y)
    if len(np.unique(ladder.points.flops)) < MIN_RUNGS:
        raise NotPredictable(f"{len(np.unique(ladder.points.flops))} distinct budgets; at least {MIN_RUNGS} "
                             "are needed", t)
    if t["spearman"] > 0.5:
        raise NotPredictable(f"inverse scaling: the pass rate falls with compute (Spearman of -E[log pass_rate] "
                             f"{t['spearman']:+.2f}, {t['per_decade']:+.3f} per decade)", t)
    if t["spearman"] > -0.5 or np.any(y <= 0):
        raise NotPredictable(f"-E[log pass_rate] does not fall with compute (Spearman {t['spearman']:+.2f})", t)
    return _power_law(ladder.points.flops, y)


# --- bootstrap, backtest, one API -----------------------------------------------------------------


def _query_points(queries: list[dict]) -> Points:
    return Points(np.array([q.get("params", np.nan) for q in queries], float),
                  np.array([q.get("tokens", np.nan) for q in queries], float),
                  np.array([q["flops"] for q in queries], float), np.full(len(queries), np.nan))


def _grid(flops: np.ndarray, queries: list[dict]) -> Points:
    return _query_points([{"flops": c} for c in band_grid(flops, [q["flops"] for q in queries])])


def _step1_form(queries: list[dict]) -> str:
    return "chinchilla" if queries and all("params" in q and "tokens" in q for q in queries) else "gpt4"


def _fit_task_ladder(ladder: TaskLadder, form: str, queries: list[dict], n_bootstrap: int, level: float,
                     seed: int, extrapolation: dict | None) -> dict:
    t = check_accuracy(ladder)
    if form == "two-step":
        if not ladder.has_task_loss:
            raise NotPredictable("the two-step form needs task_loss on every row", t)
        t_loss = check_task_loss(ladder)
        step1 = _step1_form(queries)
        if step1 == "chinchilla" and np.isnan(ladder.points.params).any():
            raise NotPredictable("--predict N,D needs params and tokens on every row", t)

        def fitter(lad, start=None):
            return _two_step(lad, step1, start)
    else:
        t_loss = None

        def fitter(lad, start=None):
            return _direct(lad, start)

    model = fitter(ladder)
    backtest = _backtest(ladder, fitter, check=check_accuracy)
    own = extrapolation_rate(backtest, log=False)
    extrapolation = own if extrapolation is None else extrapolation | {"task_per_decade": own["per_decade"]}
    result = _bootstrap(ladder, model, fitter, queries, n_bootstrap, level, seed, metric_key="accuracy",
                        extrapolation=extrapolation)
    result["trend"] = t
    if t_loss is not None:
        result["task_loss_trend"] = t_loss
        result["step1_floor"] = floor_status(model.params["step1"], ladder.points.loss)
        q = _query_points(queries)
        for pred, loss in zip(result["predictions"], model.task_loss(q), strict=True):
            pred["task_loss"] = float(loss)
    result["backtest"] = backtest
    return result


def drift_distance(ladder_flops: np.ndarray, flops: np.ndarray) -> np.ndarray:
    """How far a compute past the ladder lies from the ladder's centre (the mean log10 of its budgets), in
    decades; 0 inside the ladder. A fitted curve's error grows with distance from the points that place it,
    not from its last point: measured from the top, a backtest one short rung past its refit divides its error
    by a tiny distance. Chosen on the development ladders (OPT, BLOOM; bench/published_ladders.py): from the
    centre, 15 OPT predictions were all covered at median width 0.134; from the top, 14 of 15 at 0.144."""
    flops = np.asarray(flops, float)
    centre = np.mean(np.log10(np.unique(ladder_flops)))
    return np.where(flops > np.max(ladder_flops), np.log10(flops) - centre, 0.0)


def decades_beyond(ladder_flops: np.ndarray, flops: np.ndarray) -> np.ndarray:
    """How far each compute lies past the ladder's largest budget, in decades (0 inside the ladder)."""
    return np.maximum(0.0, np.log10(np.asarray(flops, float) / np.max(ladder_flops)))


def extrapolation_rate(backtest: list[dict], log: bool) -> dict:
    """The form's extrapolation error per decade, from its leave-largest-out backtest.

    Each held-out budget's error (absolute, or of the log when `log`), less the variance of that budget's
    measured value (across its seeds, or its items' binomial noise), over its `drift_distance` from the
    refit's ladder; the root mean square of those rates. Zero when no backtest could run (then the interval
    holds no such term)."""
    rates = []
    for row in backtest:
        for pred, actual, var, d in zip(row["predicted"], row["actual"], row["actual_variance"],
                                        row["drift_distance"], strict=True):
            if log and (pred <= 0 or actual <= 0):
                continue  # no log error where the held budget's metric is already 0 (every problem always passed)
            err2 = np.log(pred / actual) ** 2 if log else (pred - actual) ** 2
            rates.append(max(0.0, err2 - (var / actual**2 if log else var)) / d**2)
    per_decade = float(np.sqrt(np.mean(rates))) if rates else 0.0
    return {"per_decade": per_decade, "scale": "log" if log else "absolute", "n_errors": len(rates)}


def _redraws_items(ladder) -> bool:
    """Resample a ladder of single models by their item noise: resampling five rungs with replacement drops
    budgets and refits three parameters on what is left, so its spread says more about the draw than the fit."""
    return isinstance(ladder, TaskLadder) and ladder.n_items is not None and ladder.one_model_per_budget


def _bootstrap(ladder, model: _Model, fitter, queries: list[dict], n_bootstrap: int, level: float, seed: int,
               metric_key: str, extrapolation: dict, resample_problems=None) -> dict:
    """Resample rungs (seeds per budget: with replacement; single models with known item counts: each
    accuracy redrawn from its binomial noise) and problems, refit from the full fit's parameters, predict with
    residual noise and, past the ladder, the extrapolation error (normal, its sd growing linearly with
    distance). Each prediction's `width_drivers` splits its interval's width into the refits' spread
    (`bootstrap`), what the residual scatter adds (`scatter`) and what the extrapolation term adds."""
    rng = np.random.default_rng(seed)
    n = len(ladder.points)
    q_points, grid = _query_points(queries), _grid(ladder.points.flops, queries)
    dof_scale = np.sqrt(n / max(1, n - 3))
    beyond = decades_beyond(ladder.points.flops, q_points.flops)
    log_scale = extrapolation["scale"] == "log"
    redraw = _redraws_items(ladder)
    curve_only, scattered, preds, curves = [], [], [], []
    for _ in range(n_bootstrap):
        if redraw:
            sample = ladder.redrawn(rng)
        else:
            idx = rng.integers(0, n, n)
            if len(np.unique(ladder.points.flops[idx])) < 3:
                continue  # a resample without 3 budgets cannot identify three parameters
            sample = ladder.take(idx)
        try:
            m = fitter(sample, model.theta) if resample_problems is None else resample_problems(sample, rng)
        except (NotPredictable, ValueError, np.linalg.LinAlgError):
            continue
        noise = (rng.choice(model.log_resid, len(queries)) * dof_scale,
                 rng.choice(model.residuals, len(queries)) * dof_scale)
        drift = rng.normal(0.0, 1.0, len(queries)) * extrapolation["per_decade"] * drift_distance(
            ladder.points.flops, q_points.flops)
        drifted = (noise[0] + drift, noise[1]) if log_scale else (noise[0], noise[1] + drift)
        if queries:
            zero = np.zeros(len(queries))
            curve_only.append(m.predict(q_points, (zero, zero)))
            scattered.append(m.predict(q_points, noise))
            preds.append(m.predict(q_points, drifted))
        curves.append(m.predict(grid))
    samples = [np.array(x).reshape(len(x), len(queries)) for x in (curve_only, scattered, preds)]
    curves = np.array(curves)
    centre = model.predict(q_points) if queries else np.zeros(0)
    predictions = []
    for i, q in enumerate(queries):
        widths = [float(np.subtract(*percentile_interval(x[:, i], level)[::-1])) if len(x) else np.nan
                  for x in samples]
        lo, hi = percentile_interval(samples[2][:, i], level) if len(samples[2]) else (np.nan, np.nan)
        predictions.append({**q, metric_key: float(centre[i]), "interval": [float(lo), float(hi)],
                            "decades_beyond_ladder": float(beyond[i]), "width": float(hi - lo),
                            "width_drivers": {"bootstrap": widths[0], "scatter": widths[1] - widths[0],
                                              "extrapolation": widths[2] - widths[1]}})
    band = {"flops": grid.flops.tolist(), "mid": model.predict(grid).tolist()}
    if len(curves):
        lo, hi = percentile_interval(curves, level)
        band |= {"lo": lo.tolist(), "hi": hi.tolist()}
    return {"verdict": "ok", "params": model.params, "predictions": predictions, "band": band,
            "n_bootstrap": len(preds), "level": level, "extrapolation": extrapolation,
            "resampling": "item noise" if redraw else "rungs"}


def _measured_variance(ladder, budget: float, measured: np.ndarray) -> float:
    if len(measured) > 1:
        return float(measured.var(ddof=1) / len(measured))
    if isinstance(ladder, TaskLadder) and ladder.n_items is not None:
        n = float(ladder.n_items[ladder.points.flops == budget][0])
        return float(measured[0] * (1 - measured[0]) / n)
    return 0.0


def _backtest(ladder, fitter, check, max_k: int = 2, value=None) -> list[dict]:
    """Refit without the k largest budgets and compare the refit's predictions with what they measured."""
    budgets = np.unique(ladder.points.flops)
    value = value or (lambda lad: lad.accuracy)
    rows = []
    for k in range(1, max_k + 1):
        if len(budgets) - k < MIN_RUNGS:
            break
        held_budgets = budgets[-k:]
        kept = ladder.take(np.flatnonzero(ladder.points.flops < held_budgets[0]))
        try:
            check(kept)
            model = fitter(kept)
        except (NotPredictable, ValueError):
            break
        held = _query_points([{"flops": c} for c in held_budgets])
        predicted = model.predict(held)
        measured = [value(ladder)[ladder.points.flops == c] for c in held_budgets]
        actual = np.array([m.mean() for m in measured])
        rows.append({"k": k, "flops": held_budgets.tolist(), "predicted": predicted.tolist(),
                     "actual": actual.tolist(),
                     # the part of an error that is noise: the variance of each budget's mean across its seeds,
                     # or, for a single model whose item count is known, its accuracy's binomial variance
                     "actual_variance": [_measured_variance(ladder, c, m) for c, m in zip(held_budgets, measured,
                                                                                         strict=True)],
                     "decades_beyond_fit": decades_beyond(kept.points.flops, held_budgets).tolist(),
                     "drift_distance": drift_distance(kept.points.flops, held_budgets).tolist(),
                     "abs_errors": np.abs(predicted - actual).tolist(),
                     "relative_errors": ((predicted - actual) / np.where(actual == 0, np.nan, actual)).tolist()})
    return rows


def _fit_passrate(ladder: PassRateLadder, queries: list[dict], n_bootstrap: int, level: float, seed: int,
                  n_buckets: int) -> dict:
    kept = kept_problems(ladder)
    n_dropped = len(ladder.problems) - len(kept)
    if not len(kept):
        raise NotPredictable(f"no problem is solved by every rung (of {len(ladder.problems)}); the pass-rate law "
                             "needs problems each rung solves at least once")
    whole = _fit_problem_set(ladder, kept, queries, n_bootstrap, level, seed)
    whole |= {"n_problems": len(ladder.problems), "n_kept": len(kept), "n_dropped_unsolved": n_dropped}
    # Buckets by difficulty: how the smallest budget's models do on each kept problem, easiest first.
    smallest = ladder.points.flops == ladder.points.flops.min()
    difficulty = -ladder.log_pass[smallest][:, kept].mean(axis=0)
    order = kept[np.argsort(difficulty, kind="stable")]
    buckets = []
    for b, members in enumerate(np.array_split(order, n_buckets) if n_buckets > 1 else []):
        entry = {"bucket": b, "problems": [ladder.problems[i] for i in members]}
        try:
            entry |= _fit_problem_set(ladder, members, queries, n_bootstrap, level, seed + 1 + b)
        except NotPredictable as e:
            entry |= {"verdict": f"not predictable: {e}", "trend": e.trend}
        buckets.append(entry)
    whole["buckets"] = buckets
    return whole


def _fit_problem_set(ladder: PassRateLadder, problems: np.ndarray, queries: list[dict], n_bootstrap: int,
                     level: float, seed: int) -> dict:
    model = _passrate(ladder, problems)

    def resample(sample: PassRateLadder, rng: np.random.Generator) -> _Model:
        return _passrate(sample, rng.choice(problems, len(problems)))

    backtest = _backtest(ladder, lambda lad: _passrate(lad, problems), check=lambda lad: None,
                         value=lambda lad: neg_mean_log_pass(lad, problems))
    result = _bootstrap(ladder, model, None, queries, n_bootstrap, level, seed, "neg_mean_log_pass_rate",
                        extrapolation_rate(backtest, log=True), resample_problems=resample)
    for pred in result["predictions"]:
        y, (lo, hi) = pred["neg_mean_log_pass_rate"], pred["interval"]
        pred |= {"mean_log_pass_rate": -y, "pass_rate": float(np.exp(-y)), "interval": [-hi, -lo]}
        pred["neg_mean_log_pass_rate_interval"] = [lo, hi]
    result["trend"] = trend(ladder.points.flops, neg_mean_log_pass(ladder, problems))
    result["backtest"] = backtest
    return result


def fit_task(ladder: TaskLadder | PassRateLadder, form: str, queries: Sequence[dict] = (), n_bootstrap: int = 1000,
             level: float = 0.9, seed: int = 0, n_buckets: int = 1, extrapolation: dict | None = None) -> dict:
    """One task's forecast: predictions with intervals, parameters, backtest and verdict ("ok" or
    "not predictable: REASON"), plus the rung points for a figure. Never raises NotPredictable.
    `extrapolation` (accuracy forms) replaces the rate from this task's own backtest, e.g. one pooled over
    tasks by `fit_capabilities`."""
    if form not in FORMS:
        raise ValueError(f"unknown form {form}")
    queries = queries_flops(queries)
    passrate = isinstance(ladder, PassRateLadder)
    if passrate != (form == "passrate"):
        raise ValueError(f"form {form} does not fit {'per-problem pass rates' if passrate else 'accuracy rows'}")
    metric = "neg_mean_log_pass_rate" if passrate else "accuracy"
    points = {"flops": ladder.points.flops.tolist()}
    if passrate:
        kept = kept_problems(ladder)
        points["value"] = neg_mean_log_pass(ladder, kept).tolist() if len(kept) else []
    else:
        points["value"] = ladder.accuracy.tolist()
        if ladder.has_task_loss:
            points["task_loss"] = ladder.points.loss.tolist()
    base = {"form": form, "metric": metric, "n_rungs": len(ladder.points), "points": points}
    try:
        if passrate:
            return base | _fit_passrate(ladder, queries, n_bootstrap, level, seed, n_buckets)
        return base | _fit_task_ladder(ladder, form, queries, n_bootstrap, level, seed, extrapolation)
    except NotPredictable as e:
        return base | {"verdict": f"not predictable: {e}", "trend": e.trend, "predictions": [], "params": {},
                       "backtest": []}


def pooled_extrapolation(results: dict[str, dict]) -> dict | None:
    """One extrapolation rate from every predictable task's backtest (accuracy forms, absolute errors): a
    rate that rests on one task's one or two held budgets is mostly noise. None with fewer than two such tasks."""
    pooled = {task: r["backtest"] for task, r in results.items() if r["verdict"] == "ok" and r["backtest"]}
    if len(pooled) < 2:
        return None
    rate = extrapolation_rate([row for rows in pooled.values() for row in rows], log=False)
    return rate | {"pooled_over": sorted(pooled)}


def fit_capabilities(ladders: dict[str, TaskLadder | PassRateLadder], form: str, queries: Sequence[dict] = (),
                     n_bootstrap: int = 1000, level: float = 0.9, seed: int = 0, n_buckets: int = 1) -> dict:
    """`scalelab fit --form two-step|direct|passrate`'s JSON: {"form", "tasks": {TASK: ...}, "n_points"}.
    Accuracy forms take their extrapolation term from the backtests of all the file's tasks, pooled."""

    def fit_all(n: int, extrapolation: dict | None = None) -> dict:
        return {name: fit_task(ladder, form, queries, n, level, seed, n_buckets, extrapolation)
                for name, ladder in ladders.items()}

    pooled = None if form == "passrate" else pooled_extrapolation(fit_all(0))
    tasks = fit_all(n_bootstrap, pooled)
    return {"form": form, "tasks": tasks, "n_points": sum(len(lad.points) for lad in ladders.values())}


def predictable(result: dict) -> bool:
    return any(t["verdict"] == "ok" for t in result["tasks"].values())
