"""The main job: train a ladder, fit L(C) = a·C^b + c, pre-register a forecast, train the target, check.

Folder layout under `out`: `plan.json`, `ladder/<run>/` (run folders), `prediction.json`
(written before the target starts, never rewritten), `target/` and `forecast.json`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from scalelab.data import CorpusSpec, TokenData, prepare
from scalelab.errors import UserError
from scalelab.io import check_output_dir, write_json
from scalelab.progress import progress
from scalelab.provenance import stamp
from scalelab.scaling.capability_forecast import check_capabilities, prepare_suite, preregister_capabilities, score_run
from scalelab.scaling.capability_suite import suite_hash
from scalelab.scaling.fit import FitUntrusted, Points, fit
from scalelab.scaling.ladder import Recipe, RunPlan, design_ladder, plan_run, run_flops
from scalelab.train import train, validate_config
from scalelab.train.executors import ExecutorSettings, Job, run_jobs
from scalelab.train.trainer import TrainingDiverged


class ForecastConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_flops: float = Field(1.6e13, gt=0)
    max_fraction: float = Field(1 / 30, gt=0, le=0.5, description="largest ladder run / target compute")
    n_runs: int = Field(6, ge=5)
    span_decades: float = Field(1.5, gt=0)
    # Every rung averages seeds. With 20 tokens per parameter single runs at 5.3e11 FLOPs scattered by sd 0.2
    # (some seeds leave the early plateau late); with 60 and two widening heads the per-budget sd over the
    # three benchmark ladders is 0.007-0.16 (median 0.033).
    seeds_below: float = Field(0.04, description="ladder runs below this fraction of the target average seeds")
    n_seeds: int = Field(3, ge=1)
    seed: int = 0
    level: float = 0.9
    n_bootstrap: int = 2000
    jobs: int = Field(1, ge=1, description="ladder runs trained in parallel processes")
    threads: int | None = Field(None, ge=1, description="threads per ladder run (default: the cores / jobs), the "
                                                       "same whether runs train in sequence or in parallel")
    corpus: str | None = None
    heldout_fraction: float = 0.05
    eval_tokens: int = 65_536
    device: str = "auto"
    precision: Literal["auto", "bf16", "fp32"] = Field("auto", description="training precision of every run "
                                                       "(auto: bf16 where its matmuls are clearly faster)")
    capabilities: bool = Field(True, description="forecast the capability suite beside the loss")
    capability_items: int = Field(400, ge=20, description="multiple-choice items of the suite (line_tail_choice)")
    capability_problems: int = Field(300, ge=20, description="pass-rate problems of the suite (line_end)")
    recipe: Recipe = Recipe()


FORECAST_PRESETS: dict[str, dict[str, Any]] = {
    # The embedded default: a 2-core CPU, under 15 minutes. Ladder runs are too small to use two threads
    # well, so two single-threaded processes share the cores (the ladder took 4.4-4.6 min). fp32 on every
    # machine: these models' matmuls are too small for bf16 to pay. On a 2-core Xeon with AMX, where `auto`
    # picks bf16, a seed took 478-493 s in bf16 and 272-281 s in fp32 (335 s with torch held to AVX2 kernels,
    # an AVX2-only machine's path); one precision also gives one result on both kinds of machine.
    "cpu": dict(jobs=2, precision="fp32"),
    # A smoke test of the whole pipeline in about a minute (too small to be accurate). fp32 like `cpu`: in
    # bf16 (auto's pick on an AMX Xeon) its tiny ladder was not monotone and gave no prediction.
    "cpu-quick": dict(precision="fp32", target_flops=2e12, max_fraction=1 / 10, span_decades=1.0, n_seeds=1,
                      n_bootstrap=200, eval_tokens=16_384, capability_items=100, capability_problems=60,
                      recipe=dict(steps=120)),
    # One GPU: largest ladder run 1/1000 of the target.
    "gpu": dict(target_flops=2e17, max_fraction=1 / 1000, span_decades=2.0, n_runs=7, eval_tokens=262_144,
                recipe=dict(vocab_size=4096, seq_len=512, n_head=None, head_dim=64, aspect=128, base_d_model=256,
                            tokens_per_param=20, lr=2e-3, max_batch=256, steps=1000)),
}


def forecast_config(preset: str = "cpu", **overrides: Any) -> ForecastConfig:
    if preset not in FORECAST_PRESETS:
        raise UserError(f"unknown forecast preset '{preset}'; choose one of: {', '.join(FORECAST_PRESETS)}")
    values = json.loads(json.dumps(FORECAST_PRESETS[preset]))
    recipe_overrides = overrides.pop("recipe", None) or {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["recipe"] = {**values.get("recipe", {}), **recipe_overrides}
    return ForecastConfig(**values)


def _run_config(cfg: ForecastConfig, plan: RunPlan):
    settings = plan.train_settings(cfg.recipe) | dict(
        corpus=cfg.corpus, heldout_fraction=cfg.heldout_fraction, eval_tokens=cfg.eval_tokens, device=cfg.device,
        precision=cfg.precision, checkpoint_every=max(1, plan.steps // 4), seed=cfg.seed * 1000 + plan.seed)
    return validate_config(settings, source=f"run {plan.name}")


@lru_cache(maxsize=1)
def _worker_tokens(corpus: str | None, heldout_fraction: float, vocab_size: int) -> TokenData:
    """The corpus once per ladder worker process (a pool lives for one ladder), not once per run."""
    return prepare(CorpusSpec(corpus, heldout_fraction=heldout_fraction), vocab_size)


def _train_plan(cfg: ForecastConfig, plan: RunPlan, run_dir: Path, threads: int | None,
                show_progress: bool = False, data: TokenData | None = None, tracking: dict | None = None) -> dict:
    """Train one run, or finish it, or read it if already done. `tracking`: W&B project and group."""
    summary = run_dir / "summary.json"
    if summary.exists():
        return json.loads(summary.read_text())
    data = data or _worker_tokens(cfg.corpus, cfg.heldout_fraction, cfg.recipe.vocab_size)
    train_cfg = _run_config(cfg, plan).model_copy(update=tracking or {})
    if threads:
        train_cfg = train_cfg.model_copy(update={"threads": threads})
    resume = (run_dir / "config.json").exists()
    return train(train_cfg, run_dir, resume=resume, show_progress=show_progress, data=data)


def _ladder_dir(plan: RunPlan) -> str:
    return f"{plan.name}-seed{plan.seed}"


def ladder_threads(cfg: ForecastConfig) -> int:
    """Threads of each ladder run, whatever executes it: the setting, else this machine's cores / jobs."""
    return cfg.threads or max(1, (os.cpu_count() or 1) // cfg.jobs)


def train_ladder(cfg: ForecastConfig, plans: list[RunPlan], out: Path, data: TokenData | None,
                 executor: ExecutorSettings | None = None, tracking: dict | None = None) -> list[dict]:
    """Train every ladder run where `executor` says (default: cfg.jobs local processes); one entry per run."""
    executor = executor or ExecutorSettings(jobs=cfg.jobs)
    in_process = executor.kind == "local" and executor.jobs == 1  # only then can the prepared corpus be shared
    threads = ladder_threads(cfg)
    jobs = [Job(f"{p.name}-seed{p.seed}", out / "ladder" / _ladder_dir(p), _train_plan,
                (cfg, p, out / "ladder" / _ladder_dir(p), threads, False, data if in_process else None, tracking),
                run_flops(cfg.recipe, p)) for p in plans]
    results = run_jobs(jobs, executor, out, threads, label="ladder")
    return [ladder_entry(p, r) for p, r in zip(plans, results, strict=True)]


def ladder_entry(plan: RunPlan, summary: dict) -> dict:
    return {"name": plan.name, "seed": plan.seed, "d_model": plan.d_model, "n_layer": plan.n_layer,
            "batch_size": plan.batch_size, "steps": plan.steps, "params": summary["params"],
            "params_non_embedding": summary["params_non_embedding"], "tokens": summary["tokens"],
            "flops": summary["flops"], "final_eval_loss": summary["final_eval_loss"],
            "final_train_loss": summary["final_train_loss"], "wall_seconds": summary["wall_seconds"]}


def ladder_points(ladder: list[dict]) -> Points:
    """One point per budget: the seed-averaged held-out loss (seeds share the budget exactly)."""
    names = sorted({e["name"] for e in ladder}, key=lambda n: min(e["flops"] for e in ladder if e["name"] == n))
    rows = [[e for e in ladder if e["name"] == n] for n in names]
    return Points.from_columns(
        params=[r[0]["params"] for r in rows], tokens=[r[0]["tokens"] for r in rows],
        flops=[r[0]["flops"] for r in rows], loss=[float(np.mean([e["final_eval_loss"] for e in r])) for r in rows])


def ladder_hash(ladder: list[dict]) -> str:
    return hashlib.sha256(json.dumps(ladder, sort_keys=True).encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def score_ladder(cfg: ForecastConfig, plans: list[RunPlan], suite: dict, out: Path) -> list[dict]:
    """Every ladder run's scores on the capability suite (each kept in its run folder)."""
    with progress() as bar:
        task = bar.add_task("capability suite", total=len(plans))
        scores = []
        for p in plans:
            scores.append(score_run(out / "ladder" / _ladder_dir(p), suite, cfg.device))
            bar.advance(task)
    return scores


def preregister(cfg: ForecastConfig, ladder: list[dict], target_plan: RunPlan, target_flops: float,
                out: Path, scores: list[dict] | None = None) -> dict:
    """Fit the ladder (loss and, given suite scores, capabilities) and write prediction.json before the
    target trains. Raises FitUntrusted when the loss fit cannot be trusted."""
    points = ladder_points(ladder)
    if points.loss[-1] >= points.loss[-2]:
        raise FitUntrusted(f"the largest ladder budget's loss ({points.loss[-1]:.4f}) is not below the next one's "
                           f"({points.loss[-2]:.4f}); the top of the ladder does not support an extrapolation")
    result = fit(points, "gpt4", [{"flops": target_flops}], n_bootstrap=cfg.n_bootstrap, level=cfg.level,
                 seed=cfg.seed)
    pred = result.predictions[0]
    prediction = {
        "predicted_loss": pred["loss"],
        "interval_90": pred["interval"],
        "level": cfg.level,
        "target_flops": target_flops,
        "target": target_plan.model_dump(),
        "fit": result.to_json(),
        "ladder_hash": ladder_hash(ladder),
        "timestamp": _now(),
    }
    if scores is not None:
        prediction["capabilities"] = preregister_capabilities(ladder, scores, target_flops, cfg.n_bootstrap,
                                                              cfg.level, cfg.seed)
    write_json(out / "prediction.json", prediction)
    return prediction


def open_forecast(out: Path, resume: bool, cfg: Any) -> tuple[dict | None, Any]:
    """A forecast folder's state: (forecast.json when finished, else None; the config to run: the saved
    plan's when resuming, else `cfg`). A folder holding a forecast needs --resume; --resume needs a plan."""
    plan_path = out / "plan.json"
    if plan_path.exists() and not resume:
        raise UserError(f"{out} already holds a forecast; pass --resume to continue it or choose another --out")
    if resume and not plan_path.exists():
        raise UserError(f"{out} holds no forecast to resume (no plan.json); drop --resume to start one")
    if resume and (out / "forecast.json").exists():
        return json.loads((out / "forecast.json").read_text()), cfg  # finished: nothing left to do
    check_output_dir(out)
    return None, type(cfg)(**json.loads(plan_path.read_text())["config"]) if resume else cfg


def run_forecast(cfg: ForecastConfig, out: str | Path, resume: bool = False,
                 executor: ExecutorSettings | None = None, wandb_project: str | None = None) -> dict:
    """The whole pre-registered forecast; returns forecast.json's content. `executor` says where the runs
    train (default: cfg.jobs local processes); it never changes a result, so any executor resumes any.
    With `wandb_project`, every run logs to it in one group named after the forecast folder."""
    out = Path(out)
    started = time.perf_counter()
    plan_path = out / "plan.json"
    finished, cfg = open_forecast(out, resume, cfg)
    if finished is not None:
        return finished
    recipe = cfg.recipe
    plans = design_ladder(recipe, cfg.target_flops, cfg.max_fraction, cfg.n_runs, cfg.span_decades,
                          cfg.seeds_below, cfg.n_seeds)
    target_plan = plan_run(recipe, cfg.target_flops, "target", seed=0)
    target_flops = run_flops(recipe, target_plan)
    data = prepare(CorpusSpec(cfg.corpus, heldout_fraction=cfg.heldout_fraction), recipe.vocab_size)
    if not plan_path.exists():  # written once the corpus is known good: a bad one leaves nothing behind
        write_json(plan_path, {"config": cfg.model_dump(), "ladder": [p.model_dump() for p in plans],
                               "target": target_plan.model_dump(), "created": _now()})
    suite = prepare_suite(cfg.corpus, cfg.heldout_fraction, cfg.seed, out, cfg.capability_items,
                          cfg.capability_problems) if cfg.capabilities else None
    executor = executor or ExecutorSettings(jobs=cfg.jobs)
    tracking = {"wandb_project": wandb_project, "wandb_group": f"forecast-{out.resolve().name}"} if wandb_project \
        else None
    try:
        ladder = train_ladder(cfg, plans, out, data, executor, tracking)
    except TrainingDiverged as e:
        raise FitUntrusted(f"a ladder run diverged ({e}); no prediction is made") from None
    ladder_seconds = time.perf_counter() - started
    prediction_path = out / "prediction.json"
    if prediction_path.exists():
        prediction = json.loads(prediction_path.read_text())
        if prediction["ladder_hash"] != ladder_hash(ladder):
            raise UserError(f"{prediction_path} was made from other ladder results; refusing to mix them")
    else:
        scores = score_ladder(cfg, plans, suite, out) if suite is not None else None
        prediction = preregister(cfg, ladder, target_plan, target_flops, out, scores)
    if executor.kind == "local":
        target = _train_plan(cfg, target_plan, out / "target", cfg.threads, True, data, tracking)
    else:  # the one large run goes where the ladder went, with the head's cores (or the setting) as its threads
        threads = cfg.threads or max(1, (os.cpu_count() or 1) // executor.slurm_tasks_per_node)
        target = run_jobs([Job("target", out / "target", _train_plan,
                                (cfg, target_plan, out / "target", threads, False, None, tracking),
                                distributed=True)], executor, out, threads, label="target")[0]
    actual = target["final_eval_loss"]
    lo, hi = prediction["interval_90"]
    capabilities = {}
    if "capabilities" in prediction:
        capabilities = {
            "capabilities": check_capabilities(prediction["capabilities"],
                                               score_run(out / "target", suite, cfg.device)),
            "capability_suite": {"hash": suite_hash(suite), "contamination_hits": suite["contamination"],
                                 "n_items": {t: len(v["items"]) for t, v in suite["tasks"].items()}}}
    forecast = {
        "predicted_loss": prediction["predicted_loss"],
        "interval_90": [lo, hi],
        "actual_loss": actual,
        "relative_error": (prediction["predicted_loss"] - actual) / actual,
        "within_interval": bool(lo <= actual <= hi),
        "max_ladder_compute_fraction": max(e["flops"] for e in ladder) / target_flops,
        "min_ladder_compute_fraction": min(e["flops"] for e in ladder) / target_flops,
        "ladder_span_decades": float(np.log10(max(e["flops"] for e in ladder) / min(e["flops"] for e in ladder))),
        "target_flops": target_flops,
        "target": ladder_entry(target_plan, target) | {"precision": target["precision"], "device": target["device"]},
        "ladder": ladder,
        "fit": prediction["fit"],
        "prediction_timestamp": prediction["timestamp"],
        "ladder_hash": prediction["ladder_hash"],
        "corpus_fingerprint": target["corpus_fingerprint"],
        "heldout_fingerprint": target["heldout_fingerprint"],
        "ladder_seconds": ladder_seconds,
        "config": cfg.model_dump(),
        **capabilities,
        "wall_seconds": time.perf_counter() - started,
        "provenance": stamp(),
    }
    write_json(out / "forecast.json", forecast)
    return forecast
