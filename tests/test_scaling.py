import json

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from scalelab.scaling import FitUntrusted, Points, compute_optimal, fit, read_points
from scalelab.scaling.fit import chinchilla_predict, gpt4_predict
from scalelab.scaling.ladder import Recipe, design_ladder, model_config, plan_run, run_flops

from .conftest import assert_clean_error, run_cli

TRUE_GPT4 = {"a": 40.0, "b": -0.08, "c": 1.2}
TRUE_CHIN = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def gpt4_points(n: int = 12, noise: float = 0.005, seed: int = 0) -> Points:
    rng = np.random.default_rng(seed)
    flops = np.logspace(15, 19, n)
    loss = gpt4_predict(TRUE_GPT4, flops) * np.exp(rng.normal(0, noise, n))
    return Points.from_columns(flops=flops, params=np.sqrt(flops / 120), loss=loss)


def test_gpt4_form_recovers_parameters_and_the_interval_covers_the_truth():
    result = fit(gpt4_points(), "gpt4", [{"flops": 1e21}], n_bootstrap=300)
    for name, value in TRUE_GPT4.items():
        lo, hi = result.intervals[name]
        assert lo <= value <= hi, (name, value, lo, hi)
    pred = result.predictions[0]
    truth = float(gpt4_predict(TRUE_GPT4, 1e21))
    assert abs(pred["loss"] - truth) / truth < 0.02
    assert pred["interval"][0] <= truth <= pred["interval"][1]
    assert result.backtest and result.backtest[0]["k"] == 1


def test_chinchilla_approach_3_recovers_parameters():
    rng = np.random.default_rng(1)
    n = np.exp(rng.uniform(np.log(1e7), np.log(1e10), 80))
    d = np.exp(rng.uniform(np.log(1e9), np.log(1e12), 80))
    loss = chinchilla_predict(TRUE_CHIN, n, d) * np.exp(rng.normal(0, 0.003, 80))
    result = fit(Points.from_columns(params=n, tokens=d, loss=loss), "chinchilla",
                 [{"params": 7e10, "tokens": 1.4e12}], n_bootstrap=50)
    assert result.params["alpha"] == pytest.approx(0.34, abs=0.03)
    assert result.params["beta"] == pytest.approx(0.28, abs=0.03)
    assert result.params["E"] == pytest.approx(1.69, abs=0.1)
    truth = float(chinchilla_predict(TRUE_CHIN, 7e10, 1.4e12))
    assert result.predictions[0]["loss"] == pytest.approx(truth, rel=0.01)


def test_chinchilla_objective_its_gradient_and_the_grid_of_starts_agree():
    """The grid search that picks L-BFGS's starts scores each start by the same Huber objective, and the
    objective's analytic gradient is its finite-difference gradient."""
    from scalelab.scaling.fit import CHINCHILLA_GRID, _chinchilla_objective, _grid_objective

    rng = np.random.default_rng(2)
    n = np.exp(rng.uniform(np.log(1e7), np.log(1e10), 20))
    d = np.exp(rng.uniform(np.log(1e9), np.log(1e12), 20))
    logs = (np.log(n), np.log(d), np.log(chinchilla_predict(TRUE_CHIN, n, d) * np.exp(rng.normal(0, 0.01, 20))))
    grid = CHINCHILLA_GRID[::97]
    assert _grid_objective(grid, *logs) == pytest.approx([_chinchilla_objective(g, *logs)[0] for g in grid])
    theta = np.array([6.0, 6.0, 0.5, 0.34, 0.28])
    value, grad = _chinchilla_objective(theta, *logs)
    numeric = [(_chinchilla_objective(theta + h, *logs)[0] - _chinchilla_objective(theta - h, *logs)[0]) / 2e-6
               for h in np.eye(5) * 1e-6]
    assert grad == pytest.approx(numeric, rel=1e-4, abs=1e-9)


def test_compute_optimal_allocation_minimises_loss_at_fixed_compute():
    c = 1e22
    opt = compute_optimal(TRUE_CHIN, c)
    numeric = minimize_scalar(lambda log_n: chinchilla_predict(TRUE_CHIN, np.exp(log_n), c / 6 / np.exp(log_n)),
                              bounds=(np.log(1e6), np.log(1e13)), method="bounded")
    assert float(opt["params"]) == pytest.approx(np.exp(numeric.x), rel=1e-3)
    assert float(opt["tokens"]) * float(opt["params"]) * 6 == pytest.approx(c)
    assert float(opt["tokens_per_param"]) == pytest.approx(float(opt["tokens"]) / float(opt["params"]))


def test_loss_that_does_not_fall_is_refused():
    flat = Points.from_columns(flops=np.logspace(15, 18, 6), params=np.ones(6) * 1e6,
                               loss=np.array([3.0, 3.1, 2.9, 3.05, 3.0, 3.1]))
    with pytest.raises(FitUntrusted, match="does not fall"):
        fit(flat, "gpt4", n_bootstrap=10)
    with pytest.raises(FitUntrusted, match="too few"):
        fit(gpt4_points(3), "gpt4", n_bootstrap=10)


def test_fit_cli_writes_the_contract_and_a_plot(tmp_path):
    points = gpt4_points(10)
    path = tmp_path / "runs.csv"
    rows = ["params,tokens,flops,loss"] + [f"{n},,{c},{loss}" for n, c, loss in
                                           zip(points.params, points.flops, points.loss, strict=True)]
    path.write_text("\n".join(rows) + "\n")
    proc = run_cli("fit", str(path), "--form", "gpt4", "--predict-flops", "1e21", "--bootstrap", "200",
                   "--json", str(tmp_path / "fit.json"))
    assert proc.returncode == 0, proc.stderr
    out = json.loads((tmp_path / "fit.json").read_text())
    assert out["form"] == "gpt4" and set(out["params"]) == {"a", "b", "c"}
    assert set(out["intervals"]) == {"a", "b", "c"} and out["n_points"] == 10
    assert (tmp_path / "fit.png").stat().st_size > 10_000
    # chinchilla from JSONL with N and D only (C = 6ND)
    jl = tmp_path / "runs.jsonl"
    rng = np.random.default_rng(2)
    n = np.exp(rng.uniform(np.log(1e7), np.log(1e10), 30))
    d = np.exp(rng.uniform(np.log(1e9), np.log(1e12), 30))
    jl.write_text("".join(json.dumps({"params": a, "tokens": b, "loss": float(chinchilla_predict(TRUE_CHIN, a, b))})
                          + "\n" for a, b in zip(n, d, strict=True)))
    proc = run_cli("fit", str(jl), "--form", "chinchilla", "--predict", "7e10,1.4e12", "--bootstrap", "20",
                   "--json", str(tmp_path / "chin.json"))
    assert proc.returncode == 0, proc.stderr
    out = json.loads((tmp_path / "chin.json").read_text())
    assert set(out["params"]) == {"E", "A", "B", "alpha", "beta"}
    assert "tokens_per_param" in out["compute_optimal"]


@pytest.mark.parametrize("content, needle", [
    ("params,tokens,loss\n1e6,1e8,3.0\n2e6,2e8,2.9\n4e6,4e8,2.8\n8e6,8e8,2.7\n1e7,,2.6\n", "runs.csv:6"),
    ("params,tokens,loss\n1e6,1e8,3.0\n2e6,-2e8,2.9\n4e6,4e8,2.8\n8e6,8e8,2.7\n",
     "runs.csv:3: 'tokens' must be positive"),
    ("params,tokens,loss\n1e6,1e8,3.0\n2e6,2e8,nan\n4e6,4e8,2.8\n8e6,8e8,2.7\n", "runs.csv:3: 'loss' is nan"),
    ("params,tokens,loss\n1e6,1e8,3.0\n2e6,2e8,2.9\n4e6,4e8,2.8\n", "at least 4"),
    ("params,loss\n1e6,3.0\n2e6,2.9\n4e6,2.8\n8e6,2.7\n", "runs.csv:2: needs two of"),
    ("params,tokens,flops\n1e6,1e8,1\n2e6,2e8,1\n4e6,4e8,1\n8e6,8e8,1\n", "runs.csv:2: missing 'loss'"),
])
def test_bad_results_files_exit_2_naming_file_and_row(tmp_path, content, needle):
    path = tmp_path / "runs.csv"
    path.write_text(content)
    assert_clean_error(run_cli("fit", str(path), "--json", str(tmp_path / "o.json")), needle)
    assert not (tmp_path / "o.json").exists()


def test_untrusted_fit_exits_3_without_a_prediction(tmp_path):
    path = tmp_path / "flat.csv"
    path.write_text("flops,params,loss\n" + "".join(f"{10 ** (15 + i)},1e6,{3 + 0.1 * (i % 2)}\n" for i in range(6)))
    proc = run_cli("fit", str(path), "--predict-flops", "1e22", "--json", str(tmp_path / "o.json"))
    assert proc.returncode == 3 and "does not fall" in proc.stderr
    assert not (tmp_path / "o.json").exists()


def test_points_fill_the_missing_column_from_c_equals_6nd():
    n, d = np.array([1e6, 2e6, 4e6]), np.array([1e8, 3e8, 9e8])
    both = Points.from_columns(params=n, tokens=d, loss=[3, 2, 1])
    assert both.flops == pytest.approx(6 * n * d)
    assert Points.from_columns(params=n, flops=6 * n * d, loss=[3, 2, 1]).tokens == pytest.approx(d)
    assert Points.from_columns(tokens=d, flops=6 * n * d, loss=[3, 2, 1]).params == pytest.approx(n)
    only_c = Points.from_columns(flops=6 * n * d, loss=[3, 2, 1])
    assert np.isnan(only_c.params).all() and np.isnan(only_c.tokens).all() and only_c.loss.dtype == float


def test_percentile_interval_is_the_central_share_of_the_samples():
    from scalelab.scaling.fit import percentile_interval

    assert percentile_interval(np.arange(101.0), 0.9) == pytest.approx((5.0, 95.0))
    assert percentile_interval(np.arange(101.0), 0.5) == pytest.approx((25.0, 75.0))
    lo, hi = percentile_interval(np.stack([np.arange(101.0), 2 * np.arange(101.0)], axis=1), 0.8)
    assert lo == pytest.approx([10.0, 20.0]) and hi == pytest.approx([90.0, 180.0])


def test_bootstrap_is_seeded_draws_every_run_and_skips_unidentifiable_resamples():
    """4 runs on 4 budgets: a resample of 4 keeps 3 or more budgets with probability 168/256 = 0.656;
    the others cannot identify 3 parameters and are skipped, not the end of the bootstrap."""
    flops = np.logspace(15, 18, 4)
    points = Points.from_columns(flops=flops, params=np.sqrt(flops / 120),
                                 loss=gpt4_predict(TRUE_GPT4, flops) * np.exp([0.01, -0.01, 0.01, -0.01]))
    runs = [fit(points, "gpt4", [{"flops": 1e19}], n_bootstrap=1000, seed=s) for s in (0, 0, 1)]
    assert runs[0].to_json() == runs[1].to_json()  # the same seed, the same numbers
    assert runs[0].predictions[0]["interval"] != runs[2].predictions[0]["interval"]
    for r in runs:
        assert 0.61 < r.n_bootstrap / 1000 < 0.70


def test_prediction_interval_carries_the_residual_scatter_with_its_dof_correction():
    """3 budgets x 2 runs whose log residuals are exactly +-d: the fit goes through the budgets' means, the
    residual scale is d·sqrt(n / dof) = 1.41d, and at a fitted budget the interval's half-widths come from
    that scatter plus the resampled mean (at most d): between 1.8d and 3d each side."""
    flops = np.repeat(np.logspace(15, 17, 3), 2)
    d = 0.02
    points = Points.from_columns(flops=flops, params=np.sqrt(flops / 120),
                                 loss=gpt4_predict(TRUE_GPT4, flops) * np.exp(np.tile([d, -d], 3)))
    result = fit(points, "gpt4", [{"flops": 1e16}], n_bootstrap=1000, seed=0)
    assert result.residual_std == pytest.approx(d * np.sqrt(6 / 3))
    pred = result.predictions[0]
    assert pred["loss"] == pytest.approx(float(gpt4_predict(TRUE_GPT4, 1e16)), rel=1e-6)
    up, down = np.log(pred["interval"][1] / pred["loss"]) / d, np.log(pred["loss"] / pred["interval"][0]) / d
    assert 1.8 < up < 3 and 1.8 < down < 3, (up, down)


def test_gpt4_fit_keeps_the_floor_non_negative_and_the_exponent_negative():
    """Loss falling towards a negative 'floor' (3·C^-0.1 - 0.5): unbounded least squares would return
    c = -0.5; the fit stops at its bound c = 0 (which the report then names as a limitation)."""
    flops = np.logspace(15, 19, 8)
    loss = 3 * (flops / 1e15) ** -0.1 - 0.5
    result = fit(Points.from_columns(flops=flops, params=np.sqrt(flops / 120), loss=loss), "gpt4",
                 [{"flops": 1e20}], n_bootstrap=20)
    assert 0 <= result.params["c"] < 1e-6 and result.params["b"] < 0 and result.intervals["c"][0] >= 0


def test_points_accept_any_two_of_n_d_c(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps({"flops": 6e6 * t, "tokens": t, "loss": 3 - i * 0.1}) + "\n"
                            for i, t in enumerate([1e8, 2e8, 4e8, 8e8])))
    points = read_points(path)
    assert np.allclose(points.params, 1e6)


def test_ladder_design_follows_one_recipe():
    recipe = Recipe()
    target = 1.6e13
    plans = design_ladder(recipe, target, max_fraction=1 / 30, n_runs=6, span_decades=1.5)
    budgets = sorted({p.flops for p in plans})
    assert len(budgets) >= 5
    assert max(budgets) <= target / 30 * 1.0001
    assert np.log10(max(budgets) / min(budgets)) >= 1.5 - 1e-9
    for p in plans:
        cfg = model_config(recipe, p.d_model)
        assert cfg.n_layer == max(recipe.min_layers, round(p.d_model / recipe.aspect))
        assert run_flops(recipe, p) == pytest.approx(p.flops, rel=0.1)
        settings = p.train_settings(recipe)  # a fixed head count: heads widen with the model
        assert settings["head_dim"] * recipe.n_head == p.d_model and settings["head_dim"] % 2 == 0
        assert settings["base_head_dim"] * recipe.n_head == recipe.base_d_model
    widths = [p.d_model for p in sorted(plans, key=lambda p: p.flops)]
    assert widths == sorted(widths)  # bigger budgets never get smaller models
    assert plan_run(recipe, target, "t").d_model > max(widths)
    with pytest.raises(ValueError, match="exactly one"):
        Recipe(n_head=2, head_dim=8)


def test_every_reported_number_of_a_fit_is_what_it_says():
    """The fields users cite (residual scatter, intervals, band, backtest, JSON) pinned to their definitions."""
    from scalelab.scaling.fit import _huber, check_trustworthy, fit_once, predict_points

    points = gpt4_points(10, noise=0.01)
    result = fit(points, "gpt4", [{"flops": 1e21}], n_bootstrap=200, seed=3)
    resid = np.log(points.loss) - np.log(gpt4_predict(result.params, points.flops))
    assert result.residual_std == pytest.approx(np.sqrt(np.sum(resid**2) / (10 - 3)), rel=1e-9)
    pred = result.predictions[0]
    assert pred["flops"] == 1e21 and pred["loss"] == pytest.approx(float(gpt4_predict(result.params, 1e21)), rel=1e-12)
    narrow = fit(points, "gpt4", [{"flops": 1e21}], n_bootstrap=200, seed=3, level=0.5).predictions[0]["interval"]
    assert pred["interval"][0] < narrow[0] < pred["loss"] < narrow[1] < pred["interval"][1]
    assert 180 <= result.n_bootstrap <= 200 and result.level == 0.9
    for name, (lo, hi) in result.intervals.items():
        assert lo < result.params[name] < hi
    band = result.band
    assert band["flops"][0] == pytest.approx(points.flops.min() / 1.6) and band["flops"][-1] == pytest.approx(1.6e21)
    assert all(lo < hi for lo, hi in zip(band["lo"], band["hi"], strict=True))
    # the backtest is a refit without the k largest budgets, scored on them
    order = np.argsort(points.flops)
    assert [row["k"] for row in result.backtest] == [1, 2]
    for row in result.backtest:
        kept, held = points.take(order[: -row["k"]]), points.take(order[-row["k"]:])
        params, _ = fit_once("gpt4", kept, None)
        expected = (predict_points("gpt4", params, held) - held.loss) / held.loss
        assert row["relative_errors"] == pytest.approx(expected.tolist(), rel=1e-6)
        assert row["max_abs_relative_error"] == pytest.approx(np.abs(expected).max(), rel=1e-6)
    as_json = result.to_json()
    assert as_json == {"form": "gpt4", "params": result.params, "intervals": result.intervals, "n_points": 10,
                       "level": 0.9, "n_bootstrap": result.n_bootstrap, "residual_std_log": result.residual_std,
                       "predictions": result.predictions, "backtest": result.backtest, "band": result.band,
                       "floor": result.floor}
    # trust: 4 runs on 3 budgets is the least a fit takes
    three = Points.from_columns(flops=[1e15, 1e16, 1e17, 1e17], params=[1e6] * 4, loss=[3.0, 2.5, 2.2, 2.21])
    check_trustworthy(three)
    with pytest.raises(FitUntrusted, match="fewer than 3 distinct"):
        check_trustworthy(Points.from_columns(flops=[1e15, 1e15, 1e17, 1e17], params=[1e6] * 4,
                                              loss=[3.0, 2.9, 2.2, 2.1]))
    # Huber: quadratic inside delta, linear outside, gradient continuous at delta
    value, grad = _huber(np.array([5e-4, -5e-4, 3e-3, -3e-3]), 1e-3)
    assert value == pytest.approx([0.5 * 25e-8, 0.5 * 25e-8, 1e-3 * (3e-3 - 5e-4), 1e-3 * (3e-3 - 5e-4)])
    assert grad == pytest.approx([5e-4, -5e-4, 1e-3, -1e-3])
