"""Supervised instruction tuning on a stronger model's answers, on TRL's SFTTrainer.

Data are prompt/completion pairs, so the loss falls on the response tokens only (TRL's
completion-only loss). Models with a chat template get the conversation through it; models without
one (a scalelab run) get the Alpaca prompt layout as plain text. LoRA through peft on request.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalelab.align.data import read_instructions
from scalelab.align.trainer_args import common_args, load_tokenizer, logged, run_trainer, save_final
from scalelab.evals.backends import hf_folder
from scalelab.io import check_output_dir

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


def sft_trainer(model: str, rows: list[dict[str, Any]], out: Path, settings: SFTSettings):
    """TRL's SFTTrainer for the rows, with the loss on completion tokens only, and its tokenizer."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    folder = hf_folder(model)
    tokenizer = load_tokenizer(folder)
    dataset = Dataset.from_list(rows if tokenizer.chat_template else _plain(rows, tokenizer.eos_token or ""))
    peft_config = None
    if settings.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=settings.lora_rank, lora_alpha=2 * settings.lora_rank, task_type="CAUSAL_LM",
                                 target_modules="all-linear")
    config = SFTConfig(**common_args(out, settings.steps, settings.lr, settings.batch_size, settings.seed),
                       max_length=settings.max_length, completion_only_loss=True)
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(folder), args=config, train_dataset=dataset,
                         processing_class=tokenizer, peft_config=peft_config)
    return trainer, tokenizer


def sft(model: str, data: str | Path, out: str | Path, settings: SFTSettings | None = None) -> dict[str, Any]:
    """Fine-tune the model a spec names on instruction data; a Hugging Face folder in `out`."""
    settings = settings or SFTSettings()
    out = check_output_dir(out)
    rows = read_instructions(data)
    trainer, tokenizer = sft_trainer(model, rows, out, settings)
    result = run_trainer(trainer, out, "SFT")
    save_final(trainer.model.merge_and_unload() if settings.lora else trainer.model, tokenizer, out)
    losses = logged(trainer, "loss")
    return {"model": str(out), "steps": settings.steps, "train_loss": result.training_loss, "first_loss": losses[0],
            "last_loss": losses[-1], "rows": len(rows), "lora": settings.lora}
