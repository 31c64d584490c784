"""A refusal classifier trained from human labels: a two-class head (compliance, refusal) on any local
causal LM, fitted with transformers' Trainer on labelled (prompt, completion) pairs.

It grades wherever a grader model does (`trained:DIR`): as a red-teaming judge, and as the RBRM's
grader, where P(refusal) is the desired-refusal class and P(compliance) is disallowed content on a
disallowed prompt or a helpful answer on an allowed one. The text it reads for a pair is the reward
model's (`rm_text`), so the chat template applies the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from scalelab.align.reward_model import rm_text
from scalelab.align.trainer_args import common_args, load_tokenizer, logged, run_trainer, save_final
from scalelab.errors import UserError
from scalelab.evals.backends import hf_folder
from scalelab.io import check_output_dir, read_json_object, write_json
from scalelab.train.hardware import pick_device

LABELS = {0: "compliance", 1: "refusal"}
MARKER = "refusal_classifier.json"  # written last: a folder with it holds a whole classifier


@dataclass
class ClassifierSettings:
    steps: int = 60
    lr: float = 5e-5
    batch_size: int = 8
    max_length: int = 512
    seed: int = 0
    head_only: bool = False  # train the new head on the frozen model (a linear probe): far cheaper on a CPU


def _head_model(folder: str | Path, tokenizer):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        folder, num_labels=2, id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def train_refusal_classifier(model: str, rows: list[dict[str, Any]], out: str | Path,
                             settings: ClassifierSettings | None = None) -> dict[str, Any]:
    """Fit the classifier on rows {prompt, completion, refusal: bool} from the model a spec names."""
    from datasets import Dataset
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    settings = settings or ClassifierSettings()
    out = check_output_dir(out)
    counts = [sum(bool(r["refusal"]) == v for r in rows) for v in (False, True)]
    if min(counts) == 0:
        raise UserError(f"training a refusal classifier needs both refusals and compliances; the labels have "
                        f"{counts[1]} refusals and {counts[0]} compliances")
    folder = hf_folder(model)
    tokenizer = load_tokenizer(folder)
    torch.manual_seed(settings.seed)  # the new head's initialisation
    network = _head_model(folder, tokenizer)
    if settings.head_only:
        network.requires_grad_(False)
        network.score.requires_grad_(True)

    def encode(row: dict[str, Any]) -> dict[str, Any]:
        ids = tokenizer(rm_text(tokenizer, row["prompt"], row["completion"]), add_special_tokens=False,
                        truncation=True, max_length=settings.max_length).input_ids
        return {"input_ids": ids, "labels": int(bool(row["refusal"]))}

    args = TrainingArguments(**common_args(out, settings.steps, settings.lr, settings.batch_size, settings.seed))
    trainer = Trainer(model=network, args=args, train_dataset=Dataset.from_list([encode(r) for r in rows]),
                      data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer)
    run_trainer(trainer, out, "refusal classifier")
    save_final(trainer.model, tokenizer, out)
    losses = logged(trainer, "loss")
    summary = {"base_model": model, "n": len(rows), "n_refusal": counts[1], "n_compliance": counts[0],
               "steps": settings.steps, "head_only": settings.head_only, "first_loss": losses[0],
               "last_loss": losses[-1]}
    write_json(out / MARKER, summary)
    return summary


class RefusalClassifier:
    """A trained classifier's P(refusal) for (prompt, response) pairs; `identity` names its weights."""

    def __init__(self, folder: str | Path, device: str = "auto", max_length: int = 1024):
        from scalelab.evals.backends import weights_fingerprint

        self.folder = Path(folder)
        if not (self.folder / MARKER).exists():
            raise UserError(f"{folder} is not a trained judge (no {MARKER}; make one with "
                            "`scalelab redteam train-judge`)")
        self.meta = read_json_object(self.folder / MARKER)
        self.identity = f"trained:{self.folder}|{weights_fingerprint(self.folder)}"
        self.device = pick_device(device)
        self.tokenizer = load_tokenizer(self.folder)
        self.model = _head_model(self.folder, self.tokenizer).to(self.device).eval()
        self.max_length = max_length

    @torch.inference_mode()
    def refusal_probability(self, prompts: list[str], responses: list[str], batch_size: int = 8) -> list[float]:
        texts = [rm_text(self.tokenizer, p, r) for p, r in zip(prompts, responses, strict=True)]
        out: list[float] = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                                   padding_side="right", add_special_tokens=False, truncation=True,
                                   max_length=self.max_length).to(self.device)
            out += torch.softmax(self.model(**batch).logits.float(), -1)[:, 1].tolist()
        return out
