"""Parameter and FLOP counts for `GPT`, one convention used everywhere in scalelab.

FLOPs count 2 per multiply-accumulate of every matmul; backward costs twice the forward, so
training costs 3x the forward. Attention scores (QKᵀ) and the weighted sum (AV) are counted
over the full context window for every token, as dense kernels compute them (the PaLM /
Chinchilla convention for MFU). Norms, activations, softmax and RoPE are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from scalelab.model.gpt import ModelConfig


@dataclass(frozen=True)
class ParamCount:
    total: int
    embedding: int  # input embedding + LM head (untied)
    non_embedding: int  # Kaplan et al.'s N: everything but the two vocabulary matrices


def count_params(cfg: ModelConfig) -> ParamCount:
    d, f = cfg.d_model, cfg.d_ffn
    per_layer = 4 * d * d + 3 * d * f + 2 * d
    non_embedding = cfg.n_layer * per_layer + d  # + final norm
    embedding = 2 * cfg.vocab_size * d
    return ParamCount(total=non_embedding + embedding, embedding=embedding, non_embedding=non_embedding)


def forward_flops_per_token(cfg: ModelConfig) -> int:
    d, f, t = cfg.d_model, cfg.d_ffn, cfg.seq_len
    projections = 2 * 4 * d * d
    mlp = 2 * 3 * d * f
    attention = 2 * 2 * t * d  # QKᵀ and AV over the full window, all heads
    lm_head = 2 * d * cfg.vocab_size
    return cfg.n_layer * (projections + mlp + attention) + lm_head


def train_flops_per_token(cfg: ModelConfig) -> int:
    return 3 * forward_flops_per_token(cfg)
