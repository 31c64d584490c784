"""Training configuration: one validated object, built from a preset, a file and `--set` overrides."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from scalelab.data.corpus import CorpusSpec
from scalelab.errors import UserError
from scalelab.io import read_text
from scalelab.model import ModelConfig


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # data
    corpus: str | None = Field(None, description="text file, folder, JSONL, parquet or datasets folder; None = stdlib")
    corpus_glob: str = "**/*"
    text_field: str = "text"
    heldout_fraction: float = Field(0.05, gt=0, lt=1)
    vocab_size: int = Field(512, ge=1)
    # model
    d_model: int = Field(128, ge=1)
    n_layer: int = Field(2, ge=1)
    head_dim: int = Field(32, ge=2)
    base_head_dim: int | None = Field(None, ge=2, description="μP base head_dim (fixed head count); None = head_dim")
    seq_len: int = Field(128, ge=2)
    base_d_model: int = Field(64, ge=1)
    init_std: float = Field(0.02, gt=0)
    parametrization: Literal["mup", "sp"] = "mup"
    # optimisation
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(0.1, ge=0)
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = Field(1.0, ge=0)
    warmup_fraction: float = Field(0.05, ge=0, lt=1)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    batch_size: int = Field(32, ge=1, description="sequences per optimiser step, over all processes")
    grad_accum: int = Field(1, ge=1)
    steps: int | None = Field(None, ge=1)
    tokens: int | None = Field(None, ge=1, description="training tokens; sets steps when steps is unset")
    seed: int = 0
    # bookkeeping
    eval_every: int = Field(0, ge=0, description="steps between held-out evals; 0 = only at the end")
    eval_tokens: int = Field(65_536, ge=1)
    checkpoint_every: int = Field(100, ge=1)
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compile: Literal["auto", "on", "off"] = "auto"
    threads: int | None = Field(None, ge=1)
    wandb_project: str | None = Field(None, description="also log to this Weights & Biases project")
    wandb_group: str | None = Field(None, description="W&B group (a forecast or sweep groups its runs)")

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.steps is None and self.tokens is None:
            raise ValueError("set either 'steps' or 'tokens'")
        if self.d_model % self.head_dim:
            raise ValueError(f"d_model={self.d_model} is not a multiple of head_dim={self.head_dim}")
        if self.batch_size % self.grad_accum:
            raise ValueError(f"batch_size={self.batch_size} is not a multiple of grad_accum={self.grad_accum}")
        return self

    @property
    def total_steps(self) -> int:
        if self.steps is not None:
            return self.steps
        return max(1, round(self.tokens / (self.batch_size * self.seq_len)))

    @property
    def corpus_spec(self) -> CorpusSpec:
        return CorpusSpec(self.corpus, self.corpus_glob, self.text_field, self.heldout_fraction)

    def model_config_for(self, vocab_size: int) -> ModelConfig:
        return ModelConfig(
            vocab_size=vocab_size, d_model=self.d_model, n_layer=self.n_layer, head_dim=self.head_dim,
            base_head_dim=self.base_head_dim, seq_len=self.seq_len, base_d_model=self.base_d_model,
            init_std=self.init_std, parametrization=self.parametrization,
        )


PRESETS: dict[str, dict[str, Any]] = {
    # Seconds on a 2-core CPU: a smoke test of the whole loop.
    "tiny": dict(d_model=64, n_layer=2, head_dim=16, seq_len=64, batch_size=16, steps=200,
                 eval_every=100, eval_tokens=16_384, checkpoint_every=50),
    # A few minutes on a 2-core CPU.
    "small": dict(d_model=192, n_layer=3, head_dim=32, seq_len=128, batch_size=32, steps=1500,
                  eval_every=250, checkpoint_every=250),
    # One GPU: ~25M non-embedding parameters on the stdlib corpus.
    "gpu-medium": dict(d_model=768, n_layer=4, head_dim=64, seq_len=512, vocab_size=4096, base_d_model=256,
                       batch_size=64, steps=3000, eval_every=500, checkpoint_every=500, lr=2e-3),
}


def parse_override(item: str) -> tuple[str, Any]:
    """`key=value` with the value read as JSON where it parses (numbers, null, true), else a string."""
    if "=" not in item:
        raise UserError(f"--set expects key=value, got '{item}'")
    key, raw = item.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def load_config_file(path: Path) -> dict[str, Any]:
    text = read_text(path)
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise UserError(f"config {path} is malformed: {e}") from None
    if not isinstance(data, dict):
        raise UserError(f"config {path} must hold an object of settings")
    return data


def build_config(preset: str | None = None, config_file: Path | None = None,
                 overrides: list[str] | None = None) -> TrainConfig:
    values: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise UserError(f"unknown preset '{preset}'; choose one of: {', '.join(PRESETS)}")
        values.update(PRESETS[preset])
    if config_file is not None:
        values.update(load_config_file(config_file))
    values.update(dict(parse_override(o) for o in overrides or []))
    return validate_config(values, source=str(config_file or preset or "settings"))


def validate_config(values: dict[str, Any], source: str) -> TrainConfig:
    return validate_settings(TrainConfig, values, source)


def validate_settings(model: type[BaseModel], values: dict[str, Any], source: str):
    """Settings of a pydantic model; the first problem as one UserError naming the source and field."""
    try:
        return model(**values)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "config"
        raise UserError(f"{source}: field '{where}': {err['msg']}") from None
