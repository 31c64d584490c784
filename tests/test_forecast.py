import json

from .conftest import run_cli

QUICK = ["--preset", "cpu-quick", "--target-flops", "4e11", "--max-fraction", "0.1", "--span", "1.0", "--runs", "5"]


def test_forecast_preregisters_then_checks_and_resumes(tmp_path, corpus_dir):
    out = tmp_path / "fc"
    proc = run_cli("forecast", "--out", str(out), "--corpus", str(corpus_dir), *QUICK, timeout=600)
    if proc.returncode == 3:  # an honest refusal is allowed on toy data, but it must say why
        assert "no prediction" in proc.stderr and not (out / "prediction.json").exists()
        return
    assert proc.returncode == 0, proc.stderr[-3000:]
    forecast = json.loads((out / "forecast.json").read_text())
    for key in ("predicted_loss", "interval_90", "actual_loss", "relative_error", "max_ladder_compute_fraction",
                "target_flops", "ladder"):
        assert key in forecast
    assert len(forecast["interval_90"]) == 2 and forecast["interval_90"][0] <= forecast["interval_90"][1]
    assert forecast["max_ladder_compute_fraction"] <= 0.1 * 1.05
    assert len({e["name"] for e in forecast["ladder"]}) == 5
    actual = forecast["actual_loss"]
    assert forecast["relative_error"] == (forecast["predicted_loss"] - actual) / actual
    # pre-registration: the prediction was written before the target run began, and is unchanged since
    prediction = json.loads((out / "prediction.json").read_text())
    target_start = (out / "target" / "config.json").stat().st_mtime
    assert (out / "prediction.json").stat().st_mtime <= target_start
    assert prediction["predicted_loss"] == forecast["predicted_loss"]
    assert prediction["ladder_hash"] == forecast["ladder_hash"]
    for name in ("report.md", "report.html", "forecast.png"):
        assert (out / name).stat().st_size > 0
    # resume skips finished work: no run folder is touched again
    stamps = {p: p.stat().st_mtime for p in out.rglob("summary.json")}
    again = run_cli("forecast", "--out", str(out), "--corpus", str(corpus_dir), "--resume", *QUICK, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime for p in out.rglob("summary.json")} == stamps
    assert json.loads((out / "prediction.json").read_text()) == prediction
    # without --resume the folder is refused, not overwritten
    refused = run_cli("forecast", "--out", str(out), "--corpus", str(corpus_dir), *QUICK)
    assert refused.returncode == 2 and "--resume" in refused.stderr


def test_ladder_trains_in_parallel_processes_like_in_sequence(tmp_path, corpus_spec, token_data):
    from scalelab.scaling.forecast import forecast_config, train_ladder
    from scalelab.scaling.ladder import plan_run

    cfg = forecast_config("cpu-quick", corpus=corpus_spec.path, heldout_fraction=corpus_spec.heldout_fraction,
                          eval_tokens=4096, recipe={"vocab_size": 300, "steps": 20})
    plans = [plan_run(cfg.recipe, flops, f"L{i}") for i, flops in enumerate([2e9, 4e9])]
    serial = train_ladder(cfg, plans, tmp_path / "serial", token_data)
    parallel = train_ladder(cfg.model_copy(update={"jobs": 2}), plans, tmp_path / "parallel", token_data)
    assert [e["name"] for e in parallel] == ["L0", "L1"]
    for a, b in zip(serial, parallel, strict=True):
        assert a["flops"] == b["flops"] and abs(a["final_eval_loss"] - b["final_eval_loss"]) < 0.05
