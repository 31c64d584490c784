"""Reinforcement learning on TRL: GRPO or RLOO with composed, weighted rewards; DPO on AI-labelled pairs.

The policy is handed to TRL as a folder path, so the trainers rebuild the frozen reference model
from the same weights (the KL term's anchor). Rewards are any mix of RBRM, d-RLAIF, a trained
reward model and user callables (see `scalelab.align.reward_functions`), weighted by TRL's
`reward_weights`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalelab.align.reward_functions import RewardFunc
from scalelab.align.trainer_args import common_args, load_tokenizer, logged, run_trainer, save_final
from scalelab.errors import UserError
from scalelab.evals.backends import hf_folder
from scalelab.io import check_output_dir

ALGORITHMS = ("grpo", "rloo")


@dataclass
class RLSettings:
    algorithm: str = "grpo"
    steps: int = 20
    lr: float = 1e-6
    beta: float = 0.04  # weight of the KL penalty to the reference model
    generations: int = 4  # completions per prompt: the group whose mean is the baseline
    prompts_per_step: int = 2
    max_completion_length: int = 64
    temperature: float = 1.0
    seed: int = 0


def _prompt_rows(tokenizer, prompts: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Chat models get the prompt as a user message (TRL applies the template), others plain text."""
    if tokenizer.chat_template:
        return [{"prompt": [{"role": "user", "content": p["prompt"]}], "tag": p["tag"]} for p in prompts]
    return [{"prompt": p["prompt"], "tag": p["tag"]} for p in prompts]


def rl(model: str, prompts: list[dict[str, str]], rewards: list[RewardFunc], weights: list[float] | None,
       out: str | Path, settings: RLSettings | None = None) -> dict[str, Any]:
    """Train the policy a spec names on prompts {prompt, tag} against the weighted rewards."""
    from datasets import Dataset

    settings = settings or RLSettings()
    if settings.algorithm not in ALGORITHMS:
        raise UserError(f"unknown algorithm '{settings.algorithm}'; use {' or '.join(ALGORITHMS)}")
    if not rewards:
        raise UserError("give at least one reward")
    if weights is not None and len(weights) != len(rewards):
        raise UserError(f"{len(weights)} weights for {len(rewards)} rewards")
    out = check_output_dir(out)
    folder = hf_folder(model)
    tokenizer = load_tokenizer(folder)
    if settings.algorithm == "grpo":
        from trl import GRPOConfig as Config
        from trl import GRPOTrainer as Trainer
    else:
        from trl import RLOOConfig as Config
        from trl import RLOOTrainer as Trainer
    batch = settings.prompts_per_step * settings.generations
    config = Config(**common_args(out, settings.steps, settings.lr, batch, settings.seed),
                    num_generations=settings.generations, max_completion_length=settings.max_completion_length,
                    temperature=settings.temperature, beta=settings.beta, reward_weights=weights,
                    steps_per_generation=1, log_completions=False)
    trainer = Trainer(model=str(folder), reward_funcs=rewards, args=config,
                      train_dataset=Dataset.from_list(_prompt_rows(tokenizer, prompts)), processing_class=tokenizer)
    run_trainer(trainer, out, settings.algorithm.upper())
    save_final(trainer.model, tokenizer, out)
    reward = logged(trainer, "reward")
    per_function = {name: logged(trainer, f"rewards/{name}/mean") for name in trainer.reward_func_names}
    return {"model": str(out), "algorithm": settings.algorithm, "steps": settings.steps, "reward": reward,
            "rewards": per_function, "invalid": {f.__name__: f.invalid for f in rewards if hasattr(f, "invalid")}}


@dataclass
class DPOSettings:
    steps: int = 50
    lr: float = 1e-6
    beta: float = 0.1
    batch_size: int = 4
    max_length: int = 512
    seed: int = 0


def dpo(model: str, pairs: list[dict[str, Any]], out: str | Path,
        settings: DPOSettings | None = None) -> dict[str, Any]:
    """Direct preference optimisation on {prompt, chosen, rejected} pairs with TRL's DPOTrainer."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    settings = settings or DPOSettings()
    if not pairs:
        raise UserError("no preference pairs to train on")
    out = check_output_dir(out)
    folder = hf_folder(model)
    tokenizer = load_tokenizer(folder)
    if tokenizer.chat_template:
        rows = [{"prompt": [{"role": "user", "content": p["prompt"]}],
                 "chosen": [{"role": "assistant", "content": p["chosen"]}],
                 "rejected": [{"role": "assistant", "content": p["rejected"]}]} for p in pairs]
    else:
        rows = [{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in pairs]
    config = DPOConfig(**common_args(out, settings.steps, settings.lr, settings.batch_size, settings.seed),
                       beta=settings.beta, max_length=settings.max_length)
    trainer = DPOTrainer(model=str(folder), args=config, train_dataset=Dataset.from_list(rows),
                         processing_class=tokenizer)
    run_trainer(trainer, out, "DPO")
    save_final(trainer.model, tokenizer, out)
    losses, accuracy = logged(trainer, "loss"), logged(trainer, "rewards/accuracies")
    return {"model": str(out), "pairs": len(pairs), "steps": settings.steps, "first_loss": losses[0],
            "last_loss": losses[-1], "last_reward_accuracy": accuracy[-1]}


def ai_preferred(labels: list[dict[str, Any]], min_confidence: float = 0.0) -> list[dict[str, Any]]:
    """Pairs {prompt, a, b, p_a} from the AI labeller -> {prompt, chosen, rejected}, keeping those whose
    label is at least `min_confidence` away from a tie."""
    out = []
    for r in labels:
        if abs(r["p_a"] - 0.5) <= min_confidence:
            continue
        a_wins = r["p_a"] > 0.5
        out.append({"prompt": r["prompt"], "chosen": r["a"] if a_wins else r["b"],
                    "rejected": r["b"] if a_wins else r["a"]})
    return out
