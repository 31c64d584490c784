import json
import shutil

import numpy as np
import pytest

from scalelab.scaling.fit import FitUntrusted

from .conftest import QUICK_FORECAST as QUICK
from .conftest import run_cli


def test_forecast_preregisters_then_checks_and_resumes(tmp_path, corpus_dir, quick_forecast):
    made, proc = quick_forecast
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "fc"
    shutil.copytree(made, out)  # the session's forecast stays as it was made for the other tests
    forecast = json.loads((out / "forecast.json").read_text())
    prediction = json.loads((out / "prediction.json").read_text())
    target = json.loads((out / "target" / "summary.json").read_text())
    assert forecast["max_ladder_compute_fraction"] <= 0.1 * 1.05
    assert len({e["name"] for e in forecast["ladder"]}) == 5
    # the check compares the pre-registered number with the target run's own result, file by file
    lo, hi = prediction["interval_90"]
    assert lo <= prediction["predicted_loss"] <= hi
    assert forecast["actual_loss"] == target["final_eval_loss"]
    assert forecast["predicted_loss"] == prediction["predicted_loss"] and forecast["interval_90"] == [lo, hi]
    assert forecast["relative_error"] == pytest.approx(
        (prediction["predicted_loss"] - target["final_eval_loss"]) / target["final_eval_loss"], rel=1e-12)
    assert forecast["within_interval"] == (lo <= target["final_eval_loss"] <= hi)
    # pre-registration: the prediction was written before the target run began, and is unchanged since
    assert (out / "prediction.json").stat().st_mtime <= (out / "target" / "config.json").stat().st_mtime
    assert prediction["ladder_hash"] == forecast["ladder_hash"]
    for name in ("report.md", "report.html", "forecast.png"):
        assert (out / name).stat().st_size > 0
    check_capabilities(out, forecast, prediction)
    # resume skips finished work: no run folder is touched again
    stamps = {p: p.stat().st_mtime for p in out.rglob("summary.json")}
    again = run_cli("forecast", "--out", str(out), "--corpus", str(corpus_dir), "--resume", *QUICK, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime for p in out.rglob("summary.json")} == stamps
    assert json.loads((out / "prediction.json").read_text()) == prediction
    # without --resume the folder is refused, not overwritten
    refused = run_cli("forecast", "--out", str(out), "--corpus", str(corpus_dir), *QUICK)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    # a ladder result that changed after the prediction is never mixed with it
    (out / "forecast.json").unlink()
    changed = next((out / "ladder").glob("*/summary.json"))
    summary = json.loads(changed.read_text())
    changed.write_text(json.dumps(summary | {"final_eval_loss": summary["final_eval_loss"] + 0.1}))
    mixed = run_cli("forecast", "--out", str(out), "--corpus", str(corpus_dir), "--resume", *QUICK, timeout=600)
    assert mixed.returncode == 2 and "other ladder results" in mixed.stderr, mixed.stderr[-2000:]
    assert json.loads((out / "prediction.json").read_text()) == prediction and not (out / "forecast.json").exists()


def check_capabilities(out, forecast, prediction):
    """The suite was made before any run trained, is clean, and every capability number is traceable."""
    from scalelab.scaling.capability_forecast import capability_ladders

    suite = json.loads((out / "capabilities" / "suite.json").read_text())
    first_run = min(p.stat().st_mtime for p in (out / "ladder").glob("*/config.json"))
    assert (out / "capabilities" / "suite.json").stat().st_mtime <= first_run
    assert suite["contamination"] == {"line_tail_choice": 0, "line_end": 0}
    assert forecast["capability_suite"]["contamination_hits"] == suite["contamination"]
    for p in (out / "ladder").glob("*/capabilities.json"):
        assert p.stat().st_mtime <= (out / "prediction.json").stat().st_mtime
    target = json.loads((out / "target" / "capabilities.json").read_text())
    assert set(prediction["capabilities"]) == set(forecast["capabilities"]) == {"line_tail_choice", "line_end"}
    for task, cap in forecast["capabilities"].items():
        pre = prediction["capabilities"][task]
        assert set(cap) >= {"metric", "predicted", "interval_90", "actual", "abs_error", "within_interval", "verdict"}
        assert cap["verdict"] == pre["verdict"] and cap["predicted"] == pre.get("predicted")
        if task == "line_tail_choice":
            assert cap["actual"] == target[task]["accuracy"]
            # the suite's ceiling reaches the fit, where it is the sigmoid's top (not fitted)
            scores = [json.loads((out / "ladder" / f"{e['name']}-seed{e['seed']}" / "capabilities.json").read_text())
                      for e in forecast["ladder"]]
            assert capability_ladders(forecast["ladder"], scores)[task].ceiling == suite["tasks"][task]["ceiling"] == 1
            if pre["verdict"] == "ok":
                assert pre["fit"]["params"]["step2"]["top"] == 1.0
        elif pre.get("kept_problems"):
            by_id = dict(zip(target[task]["problems"], target[task]["log_pass_rate"], strict=True))
            assert cap["actual"] == pytest.approx(-np.mean([by_id[i] for i in pre["kept_problems"]]), rel=1e-12)
        if cap["verdict"] == "ok":
            lo, hi = cap["interval_90"]
            assert cap["abs_error"] == pytest.approx(abs(cap["predicted"] - cap["actual"]), rel=1e-12)
            assert cap["within_interval"] == (lo <= cap["actual"] <= hi)
            assert (out / f"capability_{task}.png").stat().st_size > 0
            assert f"{task}'s interval includes the extrapolation error its backtest measured" in \
                (out / "report.md").read_text()
        else:
            assert cap["verdict"].startswith("not predictable: ") and cap["abs_error"] is None


def _tiny_forecast(corpus_spec, **recipe):
    from scalelab.scaling.forecast import forecast_config

    return forecast_config("cpu-quick", corpus=corpus_spec.path, heldout_fraction=corpus_spec.heldout_fraction,
                           eval_tokens=2048, target_flops=4e10, max_fraction=0.1, span_decades=1.0, n_runs=5,
                           n_seeds=1, recipe={"vocab_size": 300, "steps": 10, **recipe})


@pytest.mark.parametrize("lr, reason", [(1e-30, "does not support an extrapolation"), (1e6, "diverged")])
def test_a_ladder_that_does_not_fall_or_diverges_gives_no_prediction(tmp_path, corpus_spec, token_data, lr, reason):
    """A ladder forced flat (no learning: every rung scores log(V)) or made to diverge is refused."""
    from scalelab.scaling.forecast import run_forecast

    with pytest.raises(FitUntrusted, match=reason):
        run_forecast(_tiny_forecast(corpus_spec, lr=lr), tmp_path / "fc")
    assert (tmp_path / "fc" / "plan.json").exists() and not (tmp_path / "fc" / "prediction.json").exists()
    assert not (tmp_path / "fc" / "target").exists()


def test_ladder_trains_in_parallel_processes_like_in_sequence(tmp_path, corpus_spec, token_data):
    """Same seed, same threads per run: the parallel path gives the serial losses, not merely close ones."""
    from scalelab.scaling.forecast import forecast_config, train_ladder
    from scalelab.scaling.ladder import plan_run

    cfg = forecast_config("cpu-quick", corpus=corpus_spec.path, heldout_fraction=corpus_spec.heldout_fraction,
                          eval_tokens=4096, threads=1, recipe={"vocab_size": 300, "steps": 20})
    plans = [plan_run(cfg.recipe, flops, f"L{i}", seed=i) for i, flops in enumerate([2e9, 4e9])]
    serial = train_ladder(cfg, plans, tmp_path / "serial", token_data)
    parallel = train_ladder(cfg.model_copy(update={"jobs": 2}), plans, tmp_path / "parallel", token_data)
    assert [e["name"] for e in parallel] == ["L0", "L1"]
    for a, b in zip(serial, parallel, strict=True):
        assert a["flops"] == b["flops"] and abs(a["final_eval_loss"] - b["final_eval_loss"]) <= 1e-6
    other_seed = train_ladder(cfg, [plan_run(cfg.recipe, 2e9, "L0", seed=7)], tmp_path / "seed7", token_data)
    assert abs(other_seed[0]["final_eval_loss"] - serial[0]["final_eval_loss"]) > 1e-4  # the seed matters


def test_every_run_of_a_forecast_trains_in_its_precision():
    """The cpu preset trains fp32 on every machine (one result on AVX2 and AMX CPUs alike); an explicit
    precision reaches every ladder run and the target; the quick smoke test is pinned to fp32 too (its tiny
    ladder gave no prediction in bf16)."""
    from scalelab.scaling.forecast import _run_config, forecast_config
    from scalelab.scaling.ladder import design_ladder, plan_run

    def precisions(cfg):
        plans = design_ladder(cfg.recipe, cfg.target_flops, cfg.max_fraction, cfg.n_runs, cfg.span_decades)
        plans.append(plan_run(cfg.recipe, cfg.target_flops, "target"))
        return {_run_config(cfg, p).precision for p in plans}

    assert precisions(forecast_config("cpu")) == {"fp32"}
    assert precisions(forecast_config("cpu", precision="bf16")) == {"bf16"}
    assert precisions(forecast_config("cpu-quick")) == {"fp32"}
    assert precisions(forecast_config("cpu-quick", precision="bf16")) == {"bf16"}
