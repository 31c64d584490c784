"""Predictable scaling, with eyes: `scalelab forecast --preset vlm-cpu`.

The ladder method applied to a vision-language model: a ladder of VLMs on the embedded scenes (one
recipe: text and vision width grow together, examples grow with parameters), the held-out answer
loss fitted as L(C) = a·C^b + c with the same bootstrap and backtest as the text forecast, the
prediction written to prediction.json before the target trains, then the target and the check.
Folder layout under `out`: plan.json, ladder/<run>/ (VLM run folders), prediction.json, target/,
forecast.json; rerun with --resume to continue.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from scalelab.errors import UserError
from scalelab.io import write_json
from scalelab.model.vlm import VLM, VLMConfig
from scalelab.provenance import stamp
from scalelab.scaling.fit import FitUntrusted, Points, fit
from scalelab.scaling.forecast import _now, ladder_hash, open_forecast
from scalelab.scaling.ladder import ladder_budgets
from scalelab.train.vlm_trainer import VLMTrainConfig, scratch_tokenizer, tokens_per_example, train_vlm, vlm_flops

WIDTHS = tuple(range(16, 257, 16))  # text and vision width of a rung (two 8-or-more-wide heads)


class VLMRecipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # vlm-tiny's own ratio (48,000 examples for 263,552 parameters): it learns the scenes well above chance
    examples_per_param: float = Field(0.2, gt=0, description="training examples per parameter (all parameters)")
    batch_size: int = 32
    min_steps: int = 100
    lr: float = 1e-3  # vlm-tiny's (at 3e-3 with the tower's position std 1.0 the ladder's top rung rose)
    precision: Literal["auto", "bf16", "fp32"] = "fp32"  # vlm-tiny's: faster at these widths, the same everywhere


class VLMForecastConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_flops: float = Field(5e12, gt=0)
    max_fraction: float = Field(0.1, gt=0, le=0.5)
    n_runs: int = Field(5, ge=5)
    span_decades: float = Field(1.0, gt=0)
    n_seeds: int = Field(2, ge=1)
    seed: int = 0
    level: float = 0.9
    n_bootstrap: int = 1000
    eval_items: int = Field(400, ge=20)
    recipe: VLMRecipe = VLMRecipe()


VLM_FORECAST_PRESETS = {"vlm-cpu": {}}


def _settings(recipe: VLMRecipe, width: int, steps: int, seed: int, eval_items: int) -> VLMTrainConfig:
    return VLMTrainConfig(d_model=width, head_dim=width // 2, base_d_model=64, vision_width=width,
                          batch_size=recipe.batch_size, steps=steps, lr=recipe.lr, seed=seed, eval_items=eval_items,
                          checkpoint_every=max(50, steps // 4), precision=recipe.precision)


def _flops_per_example(recipe: VLMRecipe, width: int) -> tuple[float, int]:
    """(training FLOPs of one example, parameters) of a rung's shape, counted as `train_vlm` counts them."""
    cfg = _settings(recipe, width, 1, 0, 4)
    tokenizer = scratch_tokenizer(cfg.vocab_size, cfg.image_size)
    model = VLM(VLMConfig(cfg.vision(), cfg.text_config(tokenizer.get_vocab_size()),
                          tokenizer.token_to_id("<image>")))
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer)
    per_example = vlm_flops(model, tokens_per_example(fast, cfg), cfg.vision().n_patches, 1)
    return per_example, sum(p.numel() for p in model.parameters())


def plan_vlm_run(recipe: VLMRecipe, flops: float, eval_items: int, seed: int = 0) -> VLMTrainConfig:
    """The width whose examples-per-parameter at this budget is nearest the recipe's, and its steps."""
    best = None
    for width in WIDTHS:
        per_example, params = _flops_per_example(recipe, width)
        examples = flops / per_example
        miss = abs(np.log(examples / params / recipe.examples_per_param))
        if best is None or miss < best[0]:
            best = (miss, width, examples)
    _, width, examples = best
    steps = max(recipe.min_steps, round(examples / recipe.batch_size))
    return _settings(recipe, width, steps, seed, eval_items)


def run_vlm_forecast(cfg: VLMForecastConfig, out: str | Path, resume: bool = False) -> dict:
    """Ladder, fit, pre-registered prediction, target, check; returns forecast.json's content."""
    out = Path(out)
    started = time.perf_counter()
    plan_path = out / "plan.json"
    finished, cfg = open_forecast(out, resume, cfg)
    if finished is not None:
        return finished
    budgets = ladder_budgets(cfg.target_flops, cfg.max_fraction, cfg.n_runs, cfg.span_decades)
    plans = [(f"L{i}", plan_vlm_run(cfg.recipe, b, cfg.eval_items, seed))
             for i, b in enumerate(budgets) for seed in range(cfg.n_seeds)]
    target_plan = plan_vlm_run(cfg.recipe, cfg.target_flops, cfg.eval_items, cfg.seed)
    if not plan_path.exists():
        write_json(plan_path, {"config": cfg.model_dump(), "ladder": [{"name": n, **p.model_dump()} for n, p in plans],
                               "target": target_plan.model_dump(), "created": _now()})

    def run(name: str, plan: VLMTrainConfig, folder: Path) -> dict:
        if (folder / "summary.json").exists():
            return json.loads((folder / "summary.json").read_text())
        return train_vlm(plan, folder, resume=(folder / "config.json").exists())

    ladder = []
    for name, plan in plans:
        s = run(name, plan, out / "ladder" / f"{name}-seed{plan.seed}")
        ladder.append({"name": name, "seed": plan.seed, "d_model": plan.d_model, "steps": plan.steps,
                       "params": s["params"], "examples": s["examples"], "flops": s["flops"],
                       "final_eval_loss": s["final_eval_loss"], "accuracy": s["accuracy"],
                       "wall_seconds": s["wall_seconds"]})
    ladder_seconds = time.perf_counter() - started
    names = list(dict.fromkeys(e["name"] for e in ladder))
    rows = [[e for e in ladder if e["name"] == n] for n in names]
    points = Points.from_columns(params=[r[0]["params"] for r in rows], tokens=[r[0]["examples"] for r in rows],
                                 flops=[r[0]["flops"] for r in rows],
                                 loss=[float(np.mean([e["final_eval_loss"] for e in r])) for r in rows])
    prediction_path = out / "prediction.json"
    target_flops = plan_vlm_flops(cfg.recipe, target_plan)
    if points.loss[-1] >= points.loss[-2]:
        raise FitUntrusted(f"the largest ladder budget's answer loss ({points.loss[-1]:.4f}) is not below the next "
                           f"one's ({points.loss[-2]:.4f}); the top of the ladder supports no extrapolation")
    if prediction_path.exists():
        prediction = json.loads(prediction_path.read_text())
        if prediction["ladder_hash"] != ladder_hash(ladder):
            raise UserError(f"{prediction_path} was made from other ladder results; refusing to mix them")
    else:
        result = fit(points, "gpt4", [{"flops": target_flops}], n_bootstrap=cfg.n_bootstrap, level=cfg.level,
                     seed=cfg.seed)
        pred = result.predictions[0]
        prediction = {"predicted_loss": pred["loss"], "interval_90": pred["interval"], "level": cfg.level,
                      "target_flops": target_flops, "target": target_plan.model_dump(), "fit": result.to_json(),
                      "ladder_hash": ladder_hash(ladder), "timestamp": _now(), "metric": "held-out answer loss"}
        write_json(prediction_path, prediction)
    target = run("target", target_plan, out / "target")
    actual = target["final_eval_loss"]
    lo, hi = prediction["interval_90"]
    forecast = {"kind": "vlm", "metric": "held-out answer loss (nats per answer token, image questions)",
                "predicted_loss": prediction["predicted_loss"], "interval_90": [lo, hi], "actual_loss": actual,
                "relative_error": (prediction["predicted_loss"] - actual) / actual,
                "within_interval": bool(lo <= actual <= hi),
                "max_ladder_compute_fraction": max(e["flops"] for e in ladder) / target["flops"],
                "ladder_span_decades": float(np.log10(max(e["flops"] for e in ladder) /
                                                      min(e["flops"] for e in ladder))),
                "target_flops": target["flops"], "target": {"d_model": target_plan.d_model,
                                                            "steps": target_plan.steps, **target},
                "ladder": ladder, "fit": prediction["fit"], "prediction_timestamp": prediction["timestamp"],
                "ladder_hash": prediction["ladder_hash"], "ladder_seconds": ladder_seconds, "config": cfg.model_dump(),
                "wall_seconds": time.perf_counter() - started, "provenance": stamp()}
    write_json(out / "forecast.json", forecast)
    return forecast


def plan_vlm_flops(recipe: VLMRecipe, plan: VLMTrainConfig) -> float:
    """The compute a plan spends by the recipe's count (whole steps of whole batches)."""
    per_example, _ = _flops_per_example(recipe, plan.d_model)
    return per_example * plan.steps * plan.batch_size
