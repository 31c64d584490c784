"""Capability forecasting: the fits recover known laws, say when they cannot, and read what users have."""

import csv
import json
import math

import numpy as np
import pytest
from scipy.special import expit

from scalelab.scaling.capability import PassRateLadder, TaskLadder, drift_distance, extrapolation_rate, fit_task
from scalelab.scaling.fit import Points

from .conftest import assert_clean_error, run_cli

BUDGETS = np.logspace(10, 11.5, 6)
TARGET = 1e13


def true_loss(c):
    return 4.0 * (np.asarray(c) / 1e10) ** -0.3 + 1.0


def true_accuracy(c):
    return 0.25 + 0.7 * expit(-3.0 * (true_loss(c) - 3.5))


def ladder(accuracy=None, loss=None, seeds=3, noise=0.01, n_items=400, seed=0) -> TaskLadder:
    rng = np.random.default_rng(seed)
    flops = np.repeat(BUDGETS, seeds)
    loss = true_loss(flops) * np.exp(rng.normal(0, noise, len(flops))) if loss is None else loss
    acc = true_accuracy(flops) + rng.normal(0, noise, len(flops)) if accuracy is None else accuracy
    return TaskLadder("t", Points.from_columns(flops=flops, tokens=flops / 6e6, loss=loss), np.clip(acc, 0, 1), 0.25,
                      np.full(len(flops), n_items))


def test_two_step_recovers_a_known_law_and_its_interval_covers_the_truth():
    result = fit_task(ladder(), "two-step", [{"flops": TARGET}], n_bootstrap=300)
    assert result["verdict"] == "ok"
    pred = result["predictions"][0]
    truth = float(true_accuracy(TARGET))
    assert abs(pred["accuracy"] - truth) < 0.03
    assert pred["interval"][0] <= truth <= pred["interval"][1]
    assert abs(pred["task_loss"] - true_loss(TARGET)) / true_loss(TARGET) < 0.05
    step1, step2 = result["params"]["step1"], result["params"]["step2"]
    assert step1["b"] == pytest.approx(-0.3, abs=0.05) and step2["L0"] == pytest.approx(3.5, abs=0.15)
    # the backtest refits without the largest budgets and predicts them from below
    back = result["backtest"][0]
    assert back["k"] == 1 and back["flops"] == [pytest.approx(BUDGETS[-1])]
    assert back["abs_errors"][0] < 0.03


def test_a_fit_is_reproducible_and_carries_its_band_and_points():
    lad = ladder()
    first, again = (fit_task(lad, "two-step", [{"flops": TARGET}], n_bootstrap=100) for _ in range(2))
    assert first["predictions"] == again["predictions"]  # seeded bootstrap: the same interval every run
    band = first["band"]
    assert len(band["flops"]) == len(band["mid"]) == len(band["lo"]) == len(band["hi"]) > 10
    assert all(lo <= mid <= hi for lo, mid, hi in zip(band["lo"], band["mid"], band["hi"], strict=True))
    assert first["points"]["task_loss"] == lad.points.loss.tolist()
    assert first["points"]["value"] == lad.accuracy.tolist()


def test_a_stated_ceiling_is_the_sigmoids_top_in_both_forms():
    lad = ladder()
    capped = TaskLadder(lad.task, lad.points, lad.accuracy, lad.chance, lad.n_items, ceiling=0.95)
    for form in ("two-step", "direct"):
        result = fit_task(capped, form, [{"flops": TARGET}], n_bootstrap=50)
        params = result["params"]["step2"] if form == "two-step" else result["params"]
        assert params["top"] == 0.95, form
        assert max(result["band"]["mid"]) <= 0.95
    fitted = fit_task(lad, "two-step", [{"flops": TARGET}], n_bootstrap=50)["params"]["step2"]["top"]
    assert fitted != 0.95  # without a ceiling the top is fitted (near the true 0.95, not on it)
    result = fit_task(capped, "two-step", [{"flops": TARGET}], n_bootstrap=200)
    assert abs(result["predictions"][0]["accuracy"] - float(true_accuracy(TARGET))) < 0.03


def test_direct_form_fits_accuracy_against_log_compute():
    flops = np.repeat(BUDGETS, 2)
    acc = 0.25 + 0.6 * expit(2.5 * (np.log10(flops) - 10.8))
    lad = TaskLadder("t", Points.from_columns(flops=flops, tokens=flops / 6e6, loss=np.full(len(flops), np.nan)),
                     acc, 0.25)
    result = fit_task(lad, "direct", [{"flops": TARGET}], n_bootstrap=200)
    assert result["verdict"] == "ok"
    assert result["params"]["log10_C0"] == pytest.approx(10.8, abs=0.05)
    assert result["predictions"][0]["accuracy"] == pytest.approx(0.25 + 0.6 * expit(2.5 * 2.2), abs=0.01)


def test_a_task_at_chance_or_falling_with_compute_gets_a_verdict_not_a_number():
    rng = np.random.default_rng(1)
    at_chance = fit_task(ladder(accuracy=0.25 + rng.normal(0, 0.005, 18)), "two-step", [{"flops": TARGET}])
    assert at_chance["verdict"].startswith("not predictable: every rung is at chance")
    assert at_chance["predictions"] == []
    flat = fit_task(ladder(accuracy=np.full(18, 0.25)), "direct", [{"flops": TARGET}])
    assert flat["verdict"].startswith("not predictable") and flat["trend"] == {"spearman": 0.0, "per_decade": 0.0}
    falling = fit_task(ladder(accuracy=np.repeat(np.linspace(0.7, 0.4, 6), 3)), "direct", [{"flops": TARGET}])
    assert falling["verdict"].startswith("not predictable: inverse scaling: accuracy falls")
    assert falling["trend"]["spearman"] < -0.9 and falling["trend"]["per_decade"] == pytest.approx(-0.2, abs=0.01)
    # only the top two budgets leave chance: a sigmoid cannot be pinned down from them
    acc = np.repeat([0.25, 0.25, 0.25, 0.25, 0.4, 0.6], 3)
    assert "only 2 budget(s) above chance" in fit_task(ladder(accuracy=acc), "direct", [{"flops": TARGET}])["verdict"]
    rising_loss = fit_task(ladder(loss=np.repeat(np.linspace(2, 3, 6), 3)), "two-step", [{"flops": TARGET}])
    assert rising_loss["verdict"].startswith("not predictable: inverse scaling: task loss rises")


def passrate_ladder(n_problems=40, seed=0) -> tuple[PassRateLadder, np.ndarray]:
    rng = np.random.default_rng(seed)
    flops = np.repeat(BUDGETS, 2)
    difficulty = rng.uniform(0.5, 3.0, n_problems)
    log_pass = -difficulty[None, :] * (flops[:, None] / 1e10) ** -0.25 + rng.normal(0, 0.02, (len(flops), n_problems))
    log_pass[flops < 4e10, :5] = -np.inf  # five problems the smallest models never solve
    lad = PassRateLadder("code", Points.from_columns(flops=flops, tokens=flops / 6e6, loss=np.full(len(flops), np.nan)),
                         np.minimum(log_pass, 0), tuple(f"p{i}" for i in range(n_problems)))
    return lad, difficulty


def test_passrate_law_keeps_problems_every_rung_solves_and_buckets_them_by_difficulty():
    lad, difficulty = passrate_ladder()
    result = fit_task(lad, "passrate", [{"flops": TARGET}], n_bootstrap=300, n_buckets=3)
    assert result["verdict"] == "ok"
    assert result["n_kept"] == 35 and result["n_dropped_unsolved"] == 5
    assert result["params"]["k"] == pytest.approx(0.25, abs=0.02)
    pred = result["predictions"][0]
    truth = difficulty[5:].mean() * (TARGET / 1e10) ** -0.25
    assert pred["neg_mean_log_pass_rate"] == pytest.approx(truth, rel=0.05)
    lo, hi = pred["neg_mean_log_pass_rate_interval"]
    assert lo <= truth <= hi
    assert pred["mean_log_pass_rate"] == -pred["neg_mean_log_pass_rate"]
    assert pred["pass_rate"] == pytest.approx(math.exp(-truth), rel=0.05)
    # buckets run easiest first, one law each, and hold every kept problem once
    values = [b["predictions"][0]["neg_mean_log_pass_rate"] for b in result["buckets"]]
    assert values == sorted(values)
    assert sorted(p for b in result["buckets"] for p in b["problems"]) == sorted(f"p{i}" for i in range(5, 40))


def test_extrapolation_rate_is_the_backtest_error_beyond_noise_per_decade():
    row = {"predicted": [0.50, 0.60], "actual": [0.47, 0.60], "actual_variance": [0.0, 0.0],
           "drift_distance": [0.3, 0.6]}
    assert extrapolation_rate([row], log=False)["per_decade"] == pytest.approx(math.sqrt(0.1**2 / 2))
    noisy = row | {"actual_variance": [0.031**2, 0.0]}  # an error within the measurement noise
    assert extrapolation_rate([noisy], log=False)["per_decade"] == pytest.approx(0.0, abs=1e-6)
    logged = extrapolation_rate([row | {"predicted": [0.47 * math.e**0.3, 0.6]}], log=True)
    assert logged["per_decade"] == pytest.approx(math.sqrt(1 / 2)) and logged["scale"] == "log"
    assert extrapolation_rate([], log=True)["per_decade"] == 0.0
    solved = row | {"actual": [0.0, 0.6], "predicted": [0.1, 0.6]}  # a metric of 0 has no log error
    assert extrapolation_rate([solved], log=True) == {"per_decade": 0.0, "scale": "log", "n_errors": 1}


def test_a_law_the_ladder_already_mispredicts_gets_an_interval_that_grows_past_the_ladder():
    lad, _ = passrate_ladder()
    straight = fit_task(lad, "passrate", [{"flops": TARGET}], n_bootstrap=300)
    # the same problems on a curve that flattens towards a floor: GPT-4's law (no floor) bends away from it
    flops = lad.points.flops[:, None]
    floor, scale = np.linspace(0.5, 2.0, len(lad.problems)), np.linspace(2.0, 6.0, len(lad.problems))
    bent = PassRateLadder(lad.task, lad.points, -(floor + scale * (flops / 1e10) ** -0.8), lad.problems)
    near, far = BUDGETS[-1] * 10**0.5, TARGET
    result = fit_task(bent, "passrate", [{"flops": near}, {"flops": far}], n_bootstrap=300)
    rate = result["extrapolation"]["per_decade"]
    assert rate > 5 * straight["extrapolation"]["per_decade"] and rate > 0.05
    truth = float(np.mean(floor + scale * (near / 1e10) ** -0.8))
    widths = []
    distance = drift_distance(lad.points.flops, [near, far])  # from the ladder's centre: 1.25 and 2.25 decades
    for pred, d in zip(result["predictions"], distance, strict=True):
        lo, hi = pred["neg_mean_log_pass_rate_interval"]
        widths.append(math.log(hi / lo))
        # a normal term of sd rate x distance alone spans 2 x 1.645 sd at the 90% level
        assert math.log(hi / lo) > 2 * 1.5 * rate * d
    assert widths[1] > 1.5 * widths[0]
    lo, hi = result["predictions"][0]["neg_mean_log_pass_rate_interval"]
    assert lo <= truth <= hi < result["predictions"][0]["neg_mean_log_pass_rate"] * 10
    # 1.5 decades past the top the bent truth is 3.3x the law's point: the interval says the law is unsure there
    assert widths[1] > math.log(8)


def test_passrate_with_no_problem_solved_by_every_rung_is_not_predictable():
    lad, _ = passrate_ladder()
    lad.log_pass[0, :] = -np.inf
    result = fit_task(lad, "passrate", [{"flops": TARGET}])
    assert result["verdict"].startswith("not predictable: no problem is solved by every rung")


def test_passrate_verdicts_report_the_trend_and_refuse_a_rung_that_passes_everything():
    lad, _ = passrate_ladder()
    assert fit_task(lad, "passrate", [{"flops": TARGET}], n_bootstrap=50)["buckets"] == []  # one bucket: the whole
    # too few budgets: no law, but how -E[log pass_rate] moved is still reported (it falls here)
    few = fit_task(lad.take(np.arange(6)), "passrate", [{"flops": TARGET}], n_bootstrap=50)
    assert few["verdict"] == "not predictable: 3 distinct budgets; at least 4 are needed"
    assert few["trend"]["spearman"] < -0.9 and few["trend"]["per_decade"] < 0
    # the top budget passes every problem every time: -E[log pass_rate] reaches 0, where log of it has no value
    solved, _ = passrate_ladder()
    solved.log_pass[-2:, :] = 0.0
    result = fit_task(solved, "passrate", [{"flops": TARGET}], n_bootstrap=50)
    assert result["verdict"].startswith("not predictable: -E[log pass_rate] does not fall with compute")
    assert result["predictions"] == [] and result["trend"]["spearman"] < -0.9


def write_rows(path, rows, columns):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, columns)
        w.writeheader()
        w.writerows(rows)
    return path


def capability_rows(tmp_path):
    lad = ladder(seeds=1)
    rows = [{"task": "mc", "accuracy": a, "task_loss": loss, "chance": 0.25, "ceiling": 0.95, "params": c / 6e6,
             "tokens": 1e6} for a, loss, c in zip(lad.accuracy, lad.points.loss, lad.points.flops, strict=True)]
    rows += [{"task": "flat", "accuracy": 0.25, "task_loss": loss, "chance": 0.25, "params": c / 6e6, "tokens": 1e6}
             for loss, c in zip(lad.points.loss, lad.points.flops, strict=True)]
    return write_rows(tmp_path / "rows.csv", rows, ["task", "accuracy", "task_loss", "chance", "ceiling", "params",
                                                    "tokens"])


def test_fit_cli_writes_each_task_with_its_verdict_and_a_figure(tmp_path):
    rows = capability_rows(tmp_path)
    out = tmp_path / "fit.json"
    proc = run_cli("fit", str(rows), "--form", "two-step", "--predict-flops", "1e13", "--bootstrap", "100",
                   "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert set(result) >= {"form", "tasks", "n_points"} and result["n_points"] == 12
    mc, flat = result["tasks"]["mc"], result["tasks"]["flat"]
    assert mc["verdict"] == "ok" and set(mc["predictions"][0]) >= {"flops", "accuracy", "interval"}
    assert set(mc) >= {"predictions", "params", "verdict", "backtest"}
    assert mc["params"]["step2"]["top"] == 0.95  # the rows' ceiling
    # the interval's extrapolation term is in the file and in the table
    assert mc["extrapolation"]["scale"] == "absolute" and mc["extrapolation"]["n_errors"] >= 1
    assert mc["predictions"][0]["decades_beyond_ladder"] == pytest.approx(np.log10(1e13 / BUDGETS[-1]))
    assert "extrapolation sd/decade" in proc.stdout and f"{mc['extrapolation']['per_decade']:.4f}" in proc.stdout
    assert flat["verdict"].startswith("not predictable") and flat["predictions"] == []
    assert (tmp_path / "fit-figures" / "mc.png").stat().st_size > 0
    # nothing predictable: exit 3
    only_flat = write_rows(tmp_path / "flat.csv", [r for r in csv.DictReader(rows.open()) if r["task"] == "flat"],
                           ["task", "accuracy", "task_loss", "chance", "ceiling", "params", "tokens"])
    refused = run_cli("fit", str(only_flat), "--form", "direct", "--predict-flops", "1e13", "--bootstrap", "20")
    assert refused.returncode == 3 and "no task is predictable" in refused.stderr


def test_fit_cli_passrate_from_passes_and_samples(tmp_path):
    lad, _ = passrate_ladder(20)
    rng = np.random.default_rng(0)
    rows = [{"task": "code", "problem": p, "passes": int(rng.binomial(500, math.exp(lp))), "samples": 500,
             "flops": c, "params": c / 6e6}
            for c, row in zip(lad.points.flops[::2], lad.log_pass[::2], strict=True)
            for p, lp in zip(lad.problems, row, strict=True)]
    path = write_rows(tmp_path / "problems.csv", rows, ["task", "problem", "passes", "samples", "flops", "params"])
    out = tmp_path / "pr.json"
    proc = run_cli("fit", str(path), "--form", "passrate", "--predict-flops", "1e13", "--buckets", "2",
                   "--bootstrap", "100", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    task = json.loads(out.read_text())["tasks"]["code"]
    assert task["verdict"] == "ok" and len(task["buckets"]) == 2
    assert set(task["predictions"][0]) >= {"flops", "mean_log_pass_rate", "pass_rate", "interval"}


@pytest.mark.parametrize("row, needle", [
    ({"task": "", "accuracy": "0.5"}, "missing 'task'"),
    ({"task": "mc", "accuracy": ""}, "missing 'accuracy'"),
    ({"task": "mc", "accuracy": "1.5"}, "'accuracy' must be between 0 and 1"),
    ({"task": "mc", "accuracy": "0.5", "task_loss": "-1"}, "'task_loss' must be positive"),
    ({"task": "mc", "accuracy": "0.5", "chance": "0.25", "ceiling": "0.2"}, "'ceiling' must be above chance"),
    ({"task": "mc", "accuracy": "0.5", "ceiling": "0.9"}, "task 'mc' has ceiling 0.9 here and 1.0 before"),
])
def test_bad_capability_rows_name_the_file_and_row(tmp_path, row, needle):
    good = [{"task": "mc", "accuracy": 0.3 + 0.1 * i, "task_loss": 3 - 0.3 * i, "params": 1e6 * 2**i, "tokens": 1e7,
             "ceiling": 1.0} for i in range(4)]
    path = write_rows(tmp_path / "bad.csv", [*good, {"params": 1e9, "tokens": 1e7, "ceiling": "", **row}],
                      ["task", "accuracy", "task_loss", "chance", "ceiling", "params", "tokens"])
    proc = run_cli("fit", str(path), "--form", "two-step", "--predict-flops", "1e13")
    assert_clean_error(proc, f"{path}:6", needle)
    assert not list(tmp_path.glob("*.json"))


def test_a_ceiling_at_or_below_a_chance_given_in_a_later_row_is_bad_input(tmp_path):
    rows = [{"task": "mc", "accuracy": 0.3 + 0.1 * i, "task_loss": 3 - 0.3 * i, "params": 1e6 * 2**i, "tokens": 1e7,
             "ceiling": 0.3 if i == 0 else "", "chance": 0.5 if i == 3 else ""} for i in range(4)]
    path = write_rows(tmp_path / "c.csv", rows, ["task", "accuracy", "task_loss", "chance", "ceiling", "params",
                                                 "tokens"])
    proc = run_cli("fit", str(path), "--form", "two-step", "--predict-flops", "1e13")
    assert_clean_error(proc, str(path), "task 'mc' has ceiling 0.3, not above its chance 0.5")


def test_passes_above_samples_and_too_few_rungs_are_bad_input(tmp_path):
    cols = ["task", "problem", "passes", "samples", "flops", "tokens"]
    rows = [{"task": "code", "problem": "p0", "passes": 3, "samples": 10, "flops": 1e10 * 2**i, "tokens": 1e6}
            for i in range(4)]
    bad = write_rows(tmp_path / "p.csv", [*rows[:3], {**rows[3], "passes": 11}], cols)
    assert_clean_error(run_cli("fit", str(bad), "--form", "passrate"), f"{bad}:5", "passes (11) > samples (10)")
    few = write_rows(tmp_path / "few.csv", rows[:3], cols)
    assert_clean_error(run_cli("fit", str(few), "--form", "passrate"), str(few), "task 'code' has 3 rung(s)")


def write_lm_eval(root, name, acc, gold_logliks):
    """An lm-evaluation-harness 0.4 output folder: results_DATE.json and samples_TASK_DATE.jsonl."""
    folder = root / name.replace("/", "__")
    folder.mkdir(parents=True)
    date = "2026-11-30T10-00-00.000000"
    results = {"results": {"arc_easy": {"alias": "arc_easy", "acc,none": acc, "acc_stderr,none": 0.01,
                                        "acc_norm,none": acc + 0.01}},
               "n-samples": {"arc_easy": {"original": len(gold_logliks), "effective": len(gold_logliks)}},
               "config": {"model": "hf", "model_args": f"pretrained={name},dtype=float32"},
               "model_name": name, "model_name_sanitized": name.replace("/", "__")}
    (folder / f"results_{date}.json").write_text(json.dumps(results))
    with open(folder / f"samples_arc_easy_{date}.jsonl", "w") as f:
        for i, ll in enumerate(gold_logliks):  # lm-eval writes responses as strings
            resps = [[str(ll - 1.0), "False"] for _ in range(4)]
            resps[i % 4] = [str(ll), "False"]
            f.write(json.dumps({"doc_id": i, "target": str(i % 4), "filtered_resps": resps, "acc": 1.0}) + "\n")


def test_lm_eval_output_with_a_size_mapping_fits_without_code(tmp_path):
    from scalelab.scaling.capability_data import read_capabilities

    sizes = [(1e7, 2e8), (2e7, 4e8), (4e7, 8e8), (8e7, 1.6e9), (1.6e8, 3.2e9)]
    mapping = []
    for i, (n, d) in enumerate(sizes):
        loss = float(true_loss(6 * n * d / 1e6))
        write_lm_eval(tmp_path / "out", f"org/model-{i}", float(true_accuracy(6 * n * d / 1e6)), [-loss] * 5)
        mapping.append({"model": f"org/model-{i}", "params": n, "tokens": d})
    path = write_rows(tmp_path / "sizes.csv", mapping, ["model", "params", "tokens"])
    kind, ladders = read_capabilities(path)
    lad = ladders["arc_easy"]
    assert kind == "tasks" and lad.chance == 0.25 and list(lad.n_items) == [5] * 5
    assert lad.points.loss == pytest.approx([true_loss(6 * n * d / 1e6) for n, d in sizes])  # mean NLL of gold
    assert lad.accuracy == pytest.approx([true_accuracy(6 * n * d / 1e6) for n, d in sizes])
    # the same by results file, relative to the mapping
    files = sorted((tmp_path / "out").glob("*/results_*.json"))
    by_file = write_rows(tmp_path / "by_file.csv",
                         [{"results": str(f.relative_to(tmp_path)), "params": n, "tokens": d}
                          for f, (n, d) in zip(files, sizes, strict=True)], ["results", "params", "tokens"])
    assert read_capabilities(by_file)[1]["arc_easy"].accuracy == pytest.approx(lad.accuracy)
    proc = run_cli("fit", str(path), "--form", "two-step", "--predict", "1e9,2e10", "--bootstrap", "50",
                   "--json", str(tmp_path / "fit.json"))
    assert proc.returncode == 0, proc.stderr
    task = json.loads((tmp_path / "fit.json").read_text())["tasks"]["arc_easy"]
    assert task["params"]["step1"]["form"] == "chinchilla" and task["predictions"][0]["flops"] == 6 * 1e9 * 2e10
    missing = write_rows(tmp_path / "missing.csv", [{"model": "org/other", "params": 1, "tokens": 1}],
                         ["model", "params", "tokens"])
    assert_clean_error(run_cli("fit", str(missing), "--form", "direct"), f"{missing}:2", "model 'org/other'")


# --- the main job's suite -------------------------------------------------------------------------


def test_suite_comes_from_held_out_code_only_and_cuts_at_word_boundaries(corpus_spec, token_data):
    from tokenizers import Tokenizer

    from scalelab.data.corpus import split_documents
    from scalelab.scaling.capability_suite import build_suite

    suite = build_suite(corpus_spec, seed=0, n_choice_items=30, n_pass_items=30)
    assert suite == build_suite(corpus_spec, seed=0, n_choice_items=30, n_pass_items=30)
    heldout = {d.source: d.text for d in split_documents(corpus_spec, "heldout")}
    tok = Tokenizer.from_file(str(token_data.tokenizer_path))
    choice, passrate = suite["tasks"]["line_tail_choice"]["items"], suite["tasks"]["line_end"]["items"]
    assert len(choice) == 30 and len(passrate) == 30
    for it in choice:
        real = it["choices"][it["answer"]]
        assert it["source"] in heldout and (it["context"] + real) in heldout[it["source"]]
        assert len({len(c) for c in it["choices"]}) == 1 and len(set(it["choices"])) == 4 and real[0] == " "
    for it in passrate:
        assert (it["prompt"] + it["reference"]) in heldout[it["source"]] and 1 <= len(it["reference"]) <= 4
        # the prompt's tokens then the reference's are how the whole is tokenised: no token spans the cut
        whole = tok.encode(it["prompt"] + it["reference"]).ids
        assert whole == tok.encode(it["prompt"]).ids + tok.encode(it["reference"]).ids


def test_pass_rate_from_the_likelihood_is_the_sampled_pass_rate(tiny_run, corpus_spec):
    """exp(log-likelihood of the reference) is the chance that temperature-1 sampling writes its tokens."""
    from scalelab.evals.backends import load_backend
    from scalelab.evals.requests import Generation, Loglikelihood
    from scalelab.scaling.capability_suite import build_suite

    backend = load_backend(f"run:{tiny_run}")
    items = build_suite(corpus_spec, seed=0, n_choice_items=0, n_pass_items=40)["tasks"]["line_end"]["items"]
    probs = np.exp(backend.loglikelihood([Loglikelihood(it["prompt"], it["reference"]) for it in items]))
    it, p = max(zip(items, probs, strict=True), key=lambda x: -abs(x[1] - 0.5))
    assert 0.1 < p < 0.9, probs
    n_tokens = len(backend.encode(it["reference"]))
    samples = backend.generate([Generation(it["prompt"], max_tokens=n_tokens, temperature=1.0, n=400, seed=3)])[0]
    rate = np.mean([s.startswith(it["reference"]) for s in samples])
    assert abs(rate - p) < 4 * math.sqrt(p * (1 - p) / 400) + 0.01, (rate, p)


def test_pass_until_intervals_cover_at_their_level():
    """Inverse sampling to the r-th pass (negative binomial) and capped sampling (binomial), simulated."""
    from scalelab.scaling.pass_until import estimate

    rng = np.random.default_rng(0)
    p, r, sims = 0.02, 3, 400
    covered = 0
    for _ in range(sims):
        samples = r + int(rng.negative_binomial(r, p))
        lo, hi = estimate(r, samples, stopped_at_target=True).interval
        covered += lo <= p <= hi
    assert 0.85 <= covered / sims <= 0.97
    capped = [estimate(int(k), 200, stopped_at_target=False).interval for k in rng.binomial(200, p, sims)]
    assert 0.85 <= np.mean([lo <= p <= hi for lo, hi in capped]) <= 0.99
    none = estimate(0, 200, stopped_at_target=False)
    assert none.rate == 0 and none.log_pass_rate == -math.inf and none.interval[1] == pytest.approx(
        1 - 0.05 ** (1 / 200), rel=1e-6)


def test_pass_until_samples_until_the_target_number_of_passes(tiny_run):
    from scalelab.evals.backends import load_backend
    from scalelab.evals.requests import Generation
    from scalelab.scaling.pass_until import pass_until

    backend = load_backend(f"run:{tiny_run}")
    prompt = "def compute_1(value, count=None):\n    if count is None:\n        count = "
    always = pass_until(backend, prompt, lambda s: True, target_passes=3, batch=8, max_tokens=2)
    assert (always.passes, always.samples, always.stopped_at_target) == (3, 3, True)
    never = pass_until(backend, prompt, lambda s: False, max_samples=20, batch=8, max_tokens=2)
    assert (never.passes, never.samples, never.stopped_at_target, never.rate) == (0, 20, False, 0.0)
    # a checker that accepts many completions (any digit first): the estimate agrees with plain sampling
    digit = pass_until(backend, prompt, lambda s: s[:1].isdigit(), target_passes=5, batch=8, max_tokens=2, seed=1)
    assert digit.passes == 5 and digit.interval[0] <= digit.rate <= digit.interval[1]
    plain = backend.generate([Generation(prompt, max_tokens=2, stop=("\n",), temperature=1.0, n=200, seed=9)])[0]
    rate = np.mean([s[:1].isdigit() for s in plain])
    assert digit.interval[0] - 0.05 <= rate <= digit.interval[1] + 0.05, (rate, digit)


def single_models(n_items=2000, seed=0) -> TaskLadder:
    """A published family's shape: one model per budget, item counts known."""
    rng = np.random.default_rng(seed)
    acc = rng.binomial(n_items, true_accuracy(BUDGETS)) / n_items
    return TaskLadder("t", Points.from_columns(flops=BUDGETS, tokens=BUDGETS / 6e6, loss=true_loss(BUDGETS)), acc,
                      0.25, np.full(len(BUDGETS), n_items))


def test_a_ladder_of_single_models_is_resampled_by_its_item_noise():
    lad = single_models()
    result = fit_task(lad, "direct", [{"flops": BUDGETS[-1] * 10}], n_bootstrap=300)
    assert result["resampling"] == "item noise"
    assert fit_task(ladder(), "direct", [{"flops": TARGET}], n_bootstrap=50)["resampling"] == "rungs"
    # the refits' spread follows the items: 50x fewer items, a clearly wider spread from the bootstrap alone
    few = fit_task(single_models(n_items=40), "direct", [{"flops": BUDGETS[-1] * 10}], n_bootstrap=300)
    assert few["predictions"][0]["width_drivers"]["bootstrap"] > 3 * result["predictions"][0]["width_drivers"][
        "bootstrap"]
    # a held single model's binomial variance is the noise part of its backtest error
    back = result["backtest"][0]
    p = lad.accuracy[-1]
    assert back["actual_variance"] == [pytest.approx(p * (1 - p) / 2000)]


def test_an_intervals_width_is_split_into_what_drives_it():
    result = fit_task(ladder(), "two-step", [{"flops": BUDGETS[-1]}, {"flops": TARGET}], n_bootstrap=300)
    inside, beyond = result["predictions"]
    for pred in (inside, beyond):
        d = pred["width_drivers"]
        assert pred["width"] == pytest.approx(pred["interval"][1] - pred["interval"][0])
        assert d["bootstrap"] > 0 and d["bootstrap"] + d["scatter"] + d["extrapolation"] == pytest.approx(pred["width"])
    assert inside["width_drivers"]["extrapolation"] == pytest.approx(0.0, abs=0.01)  # no drift inside the ladder
    assert beyond["decades_beyond_ladder"] > 1 and beyond["width"] > inside["width"]


def test_fit_capabilities_pools_the_extrapolation_rate_over_tasks():
    from scalelab.scaling.capability import fit_capabilities

    good = ladder(seed=1)
    # a task whose top budgets fall off the sigmoid its lower rungs trace: a large backtest error
    acc = good.accuracy.copy()
    acc[good.points.flops >= BUDGETS[-2]] -= 0.15
    bent = TaskLadder("bent", good.points, acc, 0.25, good.n_items)
    alone = {name: fit_task(lad, "two-step", [{"flops": TARGET}], n_bootstrap=100)
             for name, lad in {"good": good, "bent": bent}.items()}
    pooled = fit_capabilities({"good": good, "bent": bent}, "two-step", [{"flops": TARGET}], n_bootstrap=100)
    rates = {name: r["extrapolation"]["per_decade"] for name, r in alone.items()}
    for name, r in pooled["tasks"].items():
        ex = r["extrapolation"]
        assert ex["pooled_over"] == ["bent", "good"] and ex["task_per_decade"] == pytest.approx(rates[name])
        assert min(rates.values()) < ex["per_decade"] < max(rates.values())
    assert pooled["tasks"]["good"]["predictions"][0]["width"] > alone["good"]["predictions"][0]["width"]


def test_a_floor_at_its_bound_is_flagged_in_the_fit_and_its_table(tmp_path):
    from scalelab.report.capability_plots import capability_table
    from scalelab.scaling.fit import floor_status

    flops = np.repeat(BUDGETS, 3)
    pure = 6.0 * (flops / 1e10) ** -0.2  # no floor at all: the fit's c goes to its lower bound
    assert floor_status({"a": 1.0, "b": -0.2, "c": 1e-15}, pure)["at_bound"] == "lower"
    assert floor_status({"a": 1.0, "b": -0.2, "c": 1.0}, true_loss(flops))["at_bound"] is None
    assert floor_status({"E": float(pure.min()), "A": 1.0, "B": 1.0}, pure)["at_bound"] == "upper"
    lad = ladder(loss=pure * np.exp(np.random.default_rng(0).normal(0, 0.003, len(flops))))
    result = fit_task(lad, "two-step", [{"flops": TARGET}], n_bootstrap=50)
    assert result["step1_floor"]["at_bound"] == "lower"
    table = capability_table({"form": "two-step", "n_points": len(flops), "tasks": {"t": result}})
    assert "limitation, t: step 1's the fitted floor c" in table and "lower bound (0," in table
    assert fit_task(ladder(), "two-step", [{"flops": TARGET}], n_bootstrap=50)["step1_floor"]["at_bound"] is None
    # the loss law's own table says it too
    rows = write_rows(tmp_path / "loss.csv", [{"flops": c, "tokens": c / 6e6, "loss": v}
                                              for c, v in zip(flops, pure, strict=True)], ["flops", "tokens", "loss"])
    proc = run_cli("fit", str(rows), "--bootstrap", "20", "--json", str(tmp_path / "fit.json"))
    assert proc.returncode == 0, proc.stderr
    assert "limitation: the fitted floor c" in proc.stdout
    assert json.loads((tmp_path / "fit.json").read_text())["floor"]["at_bound"] == "lower"


def test_old_lm_eval_files_give_item_counts_perplexity_and_chance_from_the_command_line(tmp_path):
    """lm-eval before 0.4 (the Pythia suite's published results): `ppl`, `acc_stderr`, no samples."""
    mapping = []
    for i, c in enumerate(BUDGETS):
        acc, loss = float(true_accuracy(c)), float(true_loss(c))
        name = f"old-{i}.json"
        (tmp_path / name).write_text(json.dumps({"results": {
            "lambada_openai": {"ppl": math.exp(loss), "ppl_stderr": 0.1, "acc": acc,
                               "acc_stderr": math.sqrt(acc * (1 - acc) / (5153 - 1))},
            "piqa": {"acc": acc, "acc_stderr": math.sqrt(acc * (1 - acc) / (1838 - 1))}}}))
        mapping.append({"results": name, "flops": c, "tokens": c / 6e6})
    path = write_rows(tmp_path / "sizes.csv", mapping, ["results", "flops", "tokens"])
    from scalelab.scaling.capability_data import read_capabilities

    _, ladders = read_capabilities(path, {"piqa": 0.5})
    assert ladders["lambada_openai"].points.loss == pytest.approx(true_loss(BUDGETS))
    assert list(ladders["lambada_openai"].n_items) == [5153] * 6 and list(ladders["piqa"].n_items) == [1838] * 6
    assert ladders["piqa"].chance == 0.5 and ladders["lambada_openai"].chance == 0.0
    proc = run_cli("fit", str(path), "--form", "direct", "--tasks", "piqa", "--chance", "piqa=0.5",
                   "--predict-flops", "1e13", "--bootstrap", "20", "--json", str(tmp_path / "fit.json"))
    assert proc.returncode == 0, proc.stderr
    fit = json.loads((tmp_path / "fit.json").read_text())
    assert list(fit["tasks"]) == ["piqa"] and fit["tasks"]["piqa"]["params"]["chance"] == 0.5
    for args, needle in ((["--chance", "piqa=2"], "--chance expects TASK=P"),
                         (["--chance", "nope=0.5"], "--chance nope"),
                         (["--tasks", "nope"], "--tasks")):
        assert_clean_error(run_cli("fit", str(path), "--form", "direct", *args), needle)
