"""A Llama-style decoder (RMSNorm, RoPE, SwiGLU, no biases) with μP.

μP follows Tensor Programs V (Yang et al. 2022), Table 8, the formulation by initialisation
and per-layer Adam learning rates. With the width multiplier m = d_model / base_d_model:

- input embedding: init std `init_std`, Adam LR `lr` (width-independent);
- hidden matrices: init variance `init_std**2 / m` (i.e. ∝ 1/fan_in), Adam LR `lr / m`;
- readout (LM head): init zero, Adam LR `lr / m`.

Attention logits scale as μP's 1/d_head, anchored to 1/sqrt(d_head) at the base head
dimension: `sqrt(base_head_dim) / head_dim`. A recipe that widens by adding heads keeps
head_dim at its base value (plain 1/sqrt(d_head)); one with a fixed head count widens each
head, and the scale keeps attention logits O(1) as it does. With `parametrization="sp"` every
matrix gets the same Adam LR, the readout a 1/fan_in init and attention 1/sqrt(d_head): the
standard parametrisation the coordinate check compares against.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    d_model: int = 128
    n_layer: int = 2
    head_dim: int = 32
    base_head_dim: int | None = None  # head_dim of the μP base model; None: equal to head_dim
    ffn_mult: float = 8 / 3
    seq_len: int = 256
    base_d_model: int = 128
    init_std: float = 0.02
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    parametrization: Literal["mup", "sp"] = "mup"

    def __post_init__(self) -> None:
        if self.d_model % self.head_dim:
            raise ValueError(f"d_model={self.d_model} is not a multiple of head_dim={self.head_dim}")

    @property
    def n_head(self) -> int:
        return self.d_model // self.head_dim

    @property
    def attn_scale(self) -> float:
        base = self.base_head_dim if self.parametrization == "mup" and self.base_head_dim else self.head_dim
        return math.sqrt(base) / self.head_dim

    @property
    def d_ffn(self) -> int:
        """SwiGLU hidden width, rounded up to a multiple of 32 for efficient matmuls."""
        return 32 * math.ceil(self.ffn_mult * self.d_model / 32)

    @property
    def width_mult(self) -> float:
        return self.d_model / self.base_d_model

    def to_dict(self) -> dict:
        return asdict(self)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in fp32 for stability under bf16 autocast, as Llama does.
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (xf * self.weight).type_as(x)


def rope_tables(cfg: ModelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables in the half-split layout used by Hugging Face's Llama."""
    inv_freq = 1.0 / cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2).float() / cfg.head_dim)
    angles = torch.outer(torch.arange(cfg.seq_len).float(), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_head, self.head_dim, self.scale = cfg.n_head, cfg.head_dim, cfg.attn_scale
        self.q_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.k_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.v_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.o_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (p(x).view(b, t, self.n_head, self.head_dim).transpose(1, 2)
                   for p in (self.q_proj, self.k_proj, self.v_proj))
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)
        return self.o_proj(y.transpose(1, 2).reshape(b, t, d))


class SwiGLU(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(cfg.d_model, cfg.d_ffn, bias=False)
        self.up_proj = nn.Linear(cfg.d_model, cfg.d_ffn, bias=False)
        self.down_proj = nn.Linear(cfg.d_ffn, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = SwiGLU(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class GPT(nn.Module):
    """Module names follow Hugging Face's Llama so export is a rename-free copy."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        cos, sin = rope_tables(cfg)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    def hidden_matrices(self) -> list[nn.Parameter]:
        return [p for p in self.layers.parameters() if p.ndim == 2]

    @torch.no_grad()
    def reset_parameters(self) -> None:
        cfg = self.cfg
        nn.init.normal_(self.embed_tokens.weight, std=cfg.init_std)
        for block in self.layers:
            for module in block.modules():
                if isinstance(module, nn.Linear):
                    # Var ∝ 1/fan_in, anchored so the base width gets init_std.
                    std = cfg.init_std * math.sqrt(cfg.base_d_model / cfg.d_model)
                    if module.in_features != cfg.d_model:  # down_proj: fan_in is d_ffn
                        std *= math.sqrt(cfg.d_model / module.in_features)
                    nn.init.normal_(module.weight, std=std)
                elif isinstance(module, RMSNorm):
                    module.weight.fill_(1.0)
        self.norm.weight.fill_(1.0)
        if cfg.parametrization == "mup":
            nn.init.zeros_(self.lm_head.weight)
        else:
            nn.init.normal_(self.lm_head.weight, std=1.0 / math.sqrt(cfg.d_model))

    def param_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """AdamW groups carrying μP's per-layer learning rates (key `lr_scale`)."""
        scale = 1.0 / self.cfg.width_mult if self.cfg.parametrization == "mup" else 1.0
        groups = [
            {"params": [self.embed_tokens.weight], "lr_scale": 1.0, "weight_decay": 0.0},
            {"params": self.hidden_matrices(), "lr_scale": scale, "weight_decay": weight_decay},
            {"params": [self.lm_head.weight], "lr_scale": scale, "weight_decay": weight_decay},
            {"params": [p for p in self.parameters() if p.ndim == 1], "lr_scale": 1.0, "weight_decay": 0.0},
        ]
        for g in groups:
            g["lr"] = lr * g["lr_scale"]
        return groups

    def forward(self, idx: torch.Tensor, return_hidden: bool = False, embeds: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Logits (or final hidden states) for token ids; `embeds` replaces the token embeddings
        (a vision-language model's input, image patches placed among the tokens)."""
        t = idx.shape[1]
        cos, sin = self.rope_cos[:t], self.rope_sin[:t]
        x = self.embed_tokens(idx) if embeds is None else embeds
        for block in self.layers:
            x = block(x, cos, sin)
        x = self.norm(x)
        return x if return_hidden else self.lm_head(x)

    def loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self(idx)
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1))
