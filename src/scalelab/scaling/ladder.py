"""Ladder design: one recipe maps any compute budget to a model shape, a token count and a schedule.

The recipe fixes the aspect ratio (d_model per layer, depth included), the head count or the
head dimension, the μP base width (so one learning rate transfers across widths), a
tokens-per-parameter policy and a step-count policy. Each run's LR schedule ends at its own last step.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, model_validator

from scalelab.model import ModelConfig, count_params, train_flops_per_token


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vocab_size: int = 384
    seq_len: int = 128
    # Two heads whose width grows with d_model: widths step by 4 (RoPE needs an even head_dim), fine enough
    # that all but the two smallest rungs get their own width (8-dim heads stepped widths by 8, and the
    # three smallest rungs shared d_model 8). Wide heads are also faster here: a d_model-76 step took 387 ms
    # with two heads against ~600 ms with 8-dim ones (2 threads). One head was faster still (343 ms) but
    # erratic: at 5.3e11 FLOPs six seeds gave held-out loss 3.15 ± 0.09 (sd) with one head, 3.00 ± 0.015
    # with two.
    n_head: int | None = Field(2, description="heads per layer (head_dim grows with width); or set head_dim")
    head_dim: int | None = Field(None, description="a fixed head dimension (widening adds heads)")
    aspect: int = Field(48, description="d_model per layer: n_layer = max(min_layers, round(d_model / aspect))")
    min_layers: int = Field(2, ge=1, description="depth floor: keeps small models out of the 1-layer regime")
    base_d_model: int = 64
    # D / N with N all parameters (Chinchilla's count). Chinchilla's 20 is compute-optimal at scale, not
    # here: the IsoFLOP profile at 5.3e11 FLOPs, a ladder budget (bench/isoflop_profile.py, 3 seeds each),
    # gave held-out loss 3.31 ± 0.17 (sd) at 10 tokens per parameter, 3.01 ± 0.17 at 20, 3.00 ± 0.02 at 60
    # and 3.21 ± 0.02 at 150: 20 and 60 tie on the mean, 60 is ten times steadier between seeds. (With
    # 8-dim heads: 3.28, 3.15, 3.04, 3.21.) The learning rate there: 3e-3 gave 3.01 (2 seeds), 1e-3 3.18,
    # 1e-2 3.19.
    tokens_per_param: float = 60.0
    # More, smaller steps: at 1.6e12 FLOPs (3 seeds each) 300 steps gave held-out loss 3.087 ± 0.097 (sd),
    # 1000 steps 2.662 ± 0.022, 2000 steps 2.604 ± 0.017. Seed scatter, not the fit, limited the forecast.
    steps: int = Field(1000, description="optimiser steps of a run whose batch is not at its floor")
    # A floor of 1 keeps every rung at ~`steps` steps, so all runs share one schedule length.
    min_batch: int = Field(1, ge=1, description="sequences per step, at least")
    max_batch: int = Field(512, description="sequences per step, at most")
    lr: float = 3e-3
    warmup_fraction: float = 0.05
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    max_d_model: int = 4096

    @model_validator(mode="after")
    def _one_head_rule(self) -> Recipe:
        if (self.n_head is None) == (self.head_dim is None):
            raise ValueError("set exactly one of n_head and head_dim")
        return self

    @property
    def width_step(self) -> int:
        return self.head_dim or 2 * self.n_head

    def head_dims(self, d_model: int) -> tuple[int, int | None]:
        """(head_dim, μP base head_dim) of a width under this recipe's head rule."""
        if self.head_dim:
            return self.head_dim, None
        return d_model // self.n_head, self.base_d_model // self.n_head


class RunPlan(BaseModel):
    name: str
    flops: float  # the budget asked for
    d_model: int
    n_layer: int
    batch_size: int
    steps: int
    seed: int = 0

    def train_settings(self, recipe: Recipe) -> dict:
        """TrainConfig fields of this run (data settings come from the caller); the shape is `model_config`'s."""
        shape = model_config(recipe, self.d_model)
        return dict(d_model=shape.d_model, n_layer=shape.n_layer, head_dim=shape.head_dim,
                    base_head_dim=shape.base_head_dim, seq_len=shape.seq_len, base_d_model=shape.base_d_model,
                    vocab_size=shape.vocab_size, lr=recipe.lr,
                    warmup_fraction=recipe.warmup_fraction, min_lr_ratio=recipe.min_lr_ratio,
                    weight_decay=recipe.weight_decay, batch_size=self.batch_size, steps=self.steps,
                    seed=self.seed)


def model_config(recipe: Recipe, d_model: int) -> ModelConfig:
    n_layer = max(recipe.min_layers, round(d_model / recipe.aspect))
    head_dim, base_head_dim = recipe.head_dims(d_model)
    return ModelConfig(vocab_size=recipe.vocab_size, d_model=d_model, n_layer=n_layer, head_dim=head_dim,
                       base_head_dim=base_head_dim, seq_len=recipe.seq_len, base_d_model=recipe.base_d_model)


def plan_run(recipe: Recipe, flops: float, name: str, seed: int = 0) -> RunPlan:
    """The shape whose tokens-per-parameter at this budget is nearest the recipe's, and its schedule."""
    best = None
    for d in range(recipe.width_step, recipe.max_d_model + 1, recipe.width_step):
        cfg = model_config(recipe, d)
        tokens = flops / train_flops_per_token(cfg)
        miss = abs(math.log(tokens / count_params(cfg).total / recipe.tokens_per_param))
        if best is None or miss < best[0]:
            best = (miss, cfg, tokens)
    _, cfg, tokens = best
    sequences = tokens / recipe.seq_len
    batch = int(min(recipe.max_batch, max(recipe.min_batch, round(sequences / recipe.steps))))
    steps = max(1, round(sequences / batch))
    return RunPlan(name=name, flops=flops, d_model=cfg.d_model, n_layer=cfg.n_layer, batch_size=batch,
                   steps=steps, seed=seed)


def run_flops(recipe: Recipe, plan: RunPlan) -> float:
    """The compute a plan actually spends (batch and steps are whole numbers)."""
    return plan.batch_size * plan.steps * recipe.seq_len * train_flops_per_token(model_config(recipe, plan.d_model))


def ladder_budgets(target_flops: float, max_fraction: float, n_runs: int, span_decades: float) -> list[float]:
    """Geometric budgets from target·max_fraction down `span_decades` orders of magnitude."""
    if n_runs < 5:
        raise ValueError("a ladder needs at least 5 runs")
    top = target_flops * max_fraction
    return [top * 10 ** (-span_decades * i / (n_runs - 1)) for i in reversed(range(n_runs))]


def design_ladder(recipe: Recipe, target_flops: float, max_fraction: float = 1 / 30, n_runs: int = 6,
                  span_decades: float = 1.5, seeds_below: float = 0.01, n_seeds: int = 3) -> list[RunPlan]:
    """Ladder plans, smallest first; runs cheaper than `seeds_below`·target repeat over `n_seeds` seeds."""
    plans = []
    for i, budget in enumerate(ladder_budgets(target_flops, max_fraction, n_runs, span_decades)):
        seeds = n_seeds if budget <= seeds_below * target_flops else 1
        plans += [plan_run(recipe, budget, f"L{i}", seed=s) for s in range(seeds)]
    return plans
