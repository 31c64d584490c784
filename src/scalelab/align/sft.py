"""Supervised instruction tuning on a stronger model's answers, on TRL's SFTTrainer.

Data are prompt/completion pairs, so the loss falls on the response tokens only (TRL's
completion-only loss). Models with a chat template get the conversation through it; models without
one (a scalelab run) get the Alpaca prompt layout as plain text. LoRA through peft on request.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalelab.align.data import read_instructions
from scalelab.errors import UserError
from scalelab.evals.backends import hf_folder
from scalelab.io import check_writable

ALPACA_PROMPT = "Below is an instruction that describes a task. Write a response that completes the request.\n\n" \
                "### Instruction:\n{instruction}\n\n### Response:\n"


@dataclass
class SFTSettings:
    steps: int = 100
    lr: float = 2e-5
    batch_size: int = 4
    max_length: int = 512
    lora: bool = False
    lora_rank: int = 16
    seed: int = 0


def _plain(rows: list[dict[str, Any]], eos: str) -> list[dict[str, str]]:
    return [{"prompt": ALPACA_PROMPT.format(instruction=r["prompt"][-1]["content"]),
             "completion": r["completion"][0]["content"] + eos} for r in rows]


def sft(model: str, data: str | Path, out: str | Path, settings: SFTSettings | None = None) -> dict[str, Any]:
    """Fine-tune the model a spec names on instruction data; a Hugging Face folder in `out`."""
    settings = settings or SFTSettings()
    out = check_writable(out)
    rows = read_instructions(data)
    os.environ.setdefault("WANDB_DISABLED", "true")
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    folder = hf_folder(model)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dataset = Dataset.from_list(rows if tokenizer.chat_template else _plain(rows, tokenizer.eos_token or ""))
    peft_config = None
    if settings.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=settings.lora_rank, lora_alpha=2 * settings.lora_rank, task_type="CAUSAL_LM",
                                 target_modules="all-linear")
    config = SFTConfig(output_dir=str(out / "trainer"), max_steps=settings.steps, learning_rate=settings.lr,
                       per_device_train_batch_size=settings.batch_size, max_length=settings.max_length,
                       completion_only_loss=True, logging_steps=max(1, settings.steps // 10), save_strategy="no",
                       report_to=[], seed=settings.seed, use_cpu=not _cuda(), bf16=_cuda(), disable_tqdm=False)
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(folder), args=config, train_dataset=dataset,
                         processing_class=tokenizer, peft_config=peft_config)
    result = trainer.train()
    final = trainer.model.merge_and_unload() if settings.lora else trainer.model
    final.save_pretrained(out)
    tokenizer.save_pretrained(out)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    if not losses:
        raise UserError("SFT logged no loss; give more --steps")
    return {"model": str(out), "steps": settings.steps, "train_loss": result.training_loss, "first_loss": losses[0],
            "last_loss": losses[-1], "rows": len(rows), "lora": settings.lora}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
