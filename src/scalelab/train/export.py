"""Export a run as a Hugging Face `LlamaForCausalLM` folder, for TRL, lm-eval and vLLM.

Our module names follow HF's Llama, so export is a copy under the `model.` prefix. μP
needs one thing at inference: where the attention scale differs from Llama's 1/sqrt(d_head)
(a recipe with a fixed head count), the difference is folded into the query weights.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import save_file

from scalelab.data.tokens import EOS
from scalelab.errors import UserError
from scalelab.model import GPT, ModelConfig
from scalelab.train.checkpoint import load_checkpoint
from scalelab.train.config import validate_config


def load_run_model(run_dir: str | Path) -> tuple[GPT, Path]:
    """The model of a run folder at its latest checkpoint, and its tokenizer.json."""
    run_dir = Path(run_dir)
    state = load_checkpoint(run_dir) if run_dir.is_dir() else None
    if state is None:
        raise UserError(f"{run_dir} holds no checkpoint.pt; is it a scalelab run folder?")
    cfg = validate_config(state["config"], source=str(run_dir / "checkpoint.pt"))
    vocab = state["model"]["embed_tokens.weight"].shape[0]
    model = GPT(cfg.model_config_for(vocab))
    model.load_state_dict(state["model"])
    summary = run_dir / "summary.json"
    tokenizer = Path(json.loads(summary.read_text())["tokenizer"]) if summary.exists() else None
    if tokenizer is None or not tokenizer.exists():
        from scalelab.data.tokens import prepare

        tokenizer = prepare(cfg.corpus_spec, cfg.vocab_size).tokenizer_path
    return model.eval(), tokenizer


def hf_config(cfg: ModelConfig, eos_id: int) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.d_ffn,
        "num_hidden_layers": cfg.n_layer,
        "num_attention_heads": cfg.n_head,
        "num_key_value_heads": cfg.n_head,
        "head_dim": cfg.head_dim,
        "max_position_embeddings": cfg.seq_len,
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": False,
        "bos_token_id": eos_id,
        "eos_token_id": eos_id,
        "torch_dtype": "float32",
    }


def hf_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """Our weights as Llama reads them: RoPE is linear, so scaling q before it scales the logits."""
    fold = model.cfg.attn_scale * model.cfg.head_dim ** 0.5
    plain = math.isclose(fold, 1.0)
    return {k: v * fold if k.endswith("q_proj.weight") and not plain else v for k, v in model.state_dict().items()}


@contextmanager
def staged_folder(out_dir: str | Path) -> Iterator[Path]:
    """A temporary folder beside `out_dir` to write an export into, renamed to `out_dir` when the
    block ends without error: a failed export leaves nothing. `out_dir` must be new or empty."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise UserError(f"{out_dir} exists and is not empty; choose an empty or new folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        yield tmp
        if out_dir.exists():
            out_dir.rmdir()
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def export_run(run_dir: str | Path, out_dir: str | Path) -> Path:
    from transformers import PreTrainedTokenizerFast

    model, tokenizer_path = load_run_model(run_dir)
    with staged_folder(out_dir) as tmp:
        tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_path), eos_token=EOS, bos_token=EOS)
        tokenizer.save_pretrained(tmp)
        weights = {("lm_head.weight" if k == "lm_head.weight" else f"model.{k}"): v.contiguous()
                   for k, v in hf_state_dict(model).items()}
        save_file(weights, tmp / "model.safetensors", metadata={"format": "pt"})
        eos_id = tokenizer.convert_tokens_to_ids(EOS)
        (tmp / "config.json").write_text(json.dumps(hf_config(model.cfg, eos_id), indent=2))
    return Path(out_dir)


@torch.no_grad()
def max_logit_difference(run_dir: str | Path, hf_dir: str | Path, tokens: torch.Tensor) -> float:
    """Largest |ours - HF| logit on `tokens` in fp32: the export's correctness check."""
    from transformers import AutoModelForCausalLM

    ours, _ = load_run_model(run_dir)
    theirs = AutoModelForCausalLM.from_pretrained(hf_dir, torch_dtype=torch.float32).eval()
    return (ours(tokens) - theirs(tokens).logits).abs().max().item()
