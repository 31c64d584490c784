"""Reward models: a causal LM with a scalar head, trained on preference pairs.

Hard pairs (chosen beats rejected) train with Bradley–Terry on TRL's RewardTrainer. AI-labelled
pairs carry a soft label p = P(a preferred); TRL has no loss for them, so a RewardTrainer subclass
minimises the cross-entropy -[p log σ(r_a - r_b) + (1 - p) log σ(r_b - r_a)], which is Bradley–Terry
again when p = 1. Training and scoring format (prompt, response) the same way: through the chat
template when the tokenizer has one and the prompt is not already a transcript, else concatenated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from scalelab.align.data import read_preferences
from scalelab.align.trainer_args import common_args, load_tokenizer, logged, run_trainer, save_final
from scalelab.evals.backends import hf_folder
from scalelab.evals.stats import summarize
from scalelab.io import check_output_dir
from scalelab.train.hardware import pick_device


@dataclass
class RewardSettings:
    steps: int = 100
    lr: float = 1e-5
    batch_size: int = 4
    max_length: int = 512
    seed: int = 0


def rm_text(tokenizer, prompt: str, response: str) -> str:
    """The one text a reward model reads for (prompt, response), ending with EOS."""
    if tokenizer.chat_template and "\n\nAssistant:" not in prompt:
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt},
                                              {"role": "assistant", "content": response}], tokenize=False)
    else:
        text = prompt + response
    eos = tokenizer.eos_token or ""
    return text if text.endswith(eos) else text + eos


def _scalar_head_model(folder: str | Path, tokenizer):
    """The causal LM with one scalar output, reading the last token that is not padding."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def soft_label_loss(margin: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of soft preference labels: -[p log σ(Δ) + (1 - p) log σ(-Δ)], Δ = r_a - r_b, averaged.

    p = 1 is Bradley-Terry; the minimum over Δ sits at Δ = logit(p), so a 0.9 label asks for a
    finite margin where hard labels push it without bound.
    """
    logsig = torch.nn.functional.logsigmoid
    return -(target * logsig(margin) + (1 - target) * logsig(-margin)).mean()


def _soft_trainer():
    """RewardTrainer with soft targets (built lazily: importing TRL takes seconds)."""
    from trl import RewardTrainer
    from trl.trainer.reward_trainer import DataCollatorForPreference

    class SoftLabelCollator(DataCollatorForPreference):
        def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
            batch = super().torch_call(examples)
            batch["soft_label"] = torch.tensor([e["soft_label"] for e in examples], dtype=torch.float)
            return batch

    class SoftLabelRewardTrainer(RewardTrainer):
        def _set_signature_columns_if_needed(self):
            if self._signature_columns is None:
                self._signature_columns = ["chosen_ids", "rejected_ids", "soft_label"]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            target = inputs.pop("soft_label")
            outputs = model(**inputs, use_cache=False)
            chosen, rejected = torch.chunk(outputs.logits.squeeze(-1), chunks=2)
            margin = chosen - rejected
            loss = soft_label_loss(margin, target)
            mode = "train" if self.model.training else "eval"
            with torch.no_grad():
                agree = ((margin > 0) == (target > 0.5)).float().mean().item()
            self._metrics[mode]["accuracy"].append(agree)
            self._metrics[mode]["margin"].append(margin.mean().item())
            return (loss, outputs) if return_outputs else loss

    return SoftLabelRewardTrainer, SoftLabelCollator


def train_reward_model(model: str, data: str | Path, out: str | Path,
                       settings: RewardSettings | None = None) -> dict[str, Any]:
    """Train a reward model from the model a spec names on a preference file; a Hugging Face folder in `out`."""
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    settings = settings or RewardSettings()
    out = check_output_dir(out)
    pairs = read_preferences(data)
    soft = any("label" in p for p in pairs)
    folder = hf_folder(model)
    tokenizer = load_tokenizer(folder)
    torch.manual_seed(settings.seed)  # the new scalar head's initialisation
    network = _scalar_head_model(folder, tokenizer)
    rows = [{"chosen": rm_text(tokenizer, p["prompt"], p["chosen"]),
             "rejected": rm_text(tokenizer, p["prompt"], p["rejected"]),
             **({"soft_label": p.get("label", 1.0)} if soft else {})} for p in pairs]
    config = RewardConfig(**common_args(out, settings.steps, settings.lr, settings.batch_size, settings.seed),
                          max_length=settings.max_length)
    kwargs: dict[str, Any] = {}
    trainer_class = RewardTrainer
    if soft:
        trainer_class, collator = _soft_trainer()
        kwargs["data_collator"] = collator(pad_token_id=tokenizer.pad_token_id)
    trainer = trainer_class(model=network, args=config, train_dataset=Dataset.from_list(rows),
                            processing_class=tokenizer, **kwargs)
    run_trainer(trainer, out, "reward model")
    save_final(trainer.model, tokenizer, out)
    losses, accuracy = logged(trainer, "loss"), logged(trainer, "accuracy")
    return {"model": str(out), "pairs": len(pairs), "soft_labels": soft, "steps": settings.steps,
            "first_loss": losses[0], "last_loss": losses[-1], "last_train_accuracy": accuracy[-1]}


class RewardModel:
    """A trained reward model's scalar score of (prompt, response)."""

    def __init__(self, folder: str | Path, device: str = "auto", max_length: int = 1024):
        self.folder = Path(folder)
        self.device = pick_device(device)
        self.tokenizer = load_tokenizer(self.folder)
        self.model = _scalar_head_model(self.folder, self.tokenizer).to(self.device).eval()
        self.max_length = max_length

    @torch.inference_mode()
    def score(self, prompts: list[str], responses: list[str], batch_size: int = 8) -> list[float]:
        texts = [rm_text(self.tokenizer, p, r) for p, r in zip(prompts, responses, strict=True)]
        scores: list[float] = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                                   padding_side="right", add_special_tokens=False, truncation=True,
                                   max_length=self.max_length).to(self.device)
            scores += self.model(**batch).logits[:, 0].float().tolist()
        return scores


def pairwise_accuracy(rm: RewardModel, pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """Share of pairs where the model ranks the preferred response higher, with its CI.

    Soft-labelled pairs count by their label's side; pairs labelled exactly 0.5 prefer neither and are skipped.
    """
    pairs = [p for p in pairs if p.get("label", 1.0) != 0.5]
    prompts = [p["prompt"] for p in pairs]
    chosen = rm.score(prompts, [p["chosen"] for p in pairs])
    rejected = rm.score(prompts, [p["rejected"] for p in pairs])
    correct = [float((c > r) == (p.get("label", 1.0) > 0.5)) for c, r, p in zip(chosen, rejected, pairs, strict=True)]
    margins = [c - r for c, r in zip(chosen, rejected, strict=True)]
    return {"accuracy": summarize(correct), "n": len(pairs), "mean_margin": sum(margins) / max(1, len(margins))}
