"""`scalelab align demo`: the post-training pipeline end to end on a 2-core CPU.

SmolLM2-135M-Instruct is the policy and, frozen, the RBRM grader, d-RLAIF labeller and judge. It is
measured on held-out prompts (refusal and over-refusal by the RBRM and by refusal phrases, RBRM and
d-RLAIF rewards; how well the grader separates refusals from answers), tuned with a short SFT
on embedded teacher answers, then with GRPO on RBRM + d-RLAIF rewards, and measured again; the
tuned policy's win rate against the base is judged with both orders. Each stage leaves its output
in the folder and is skipped when the command runs again, so a killed demo resumes.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scalelab.align.demo_data import EVAL_PROMPTS, RL_PROMPTS, SFT_EXAMPLES
from scalelab.align.evaluate import grader_check, refusal_eval, refused_by_phrase, respond, win_rate
from scalelab.align.rbrm import Rubric
from scalelab.align.reward_functions import DirectRLAIFReward, RBRMReward
from scalelab.align.rl import RLSettings, rl
from scalelab.align.rlaif import direct_rewards
from scalelab.align.sft import SFTSettings, sft
from scalelab.evals import load_backend
from scalelab.evals.backends.base import Backend
from scalelab.evals.stats import paired_difference, summarize
from scalelab.io import check_output_dir, read_jsonl, write_atomic, write_json
from scalelab.provenance import stamp


@dataclass
class DemoSettings:
    model: str = "smollm2"
    sft_steps: int = 16
    sft_lr: float = 2e-5
    rl_steps: int = 10
    rl_lr: float = 2e-6
    max_tokens: int = 48  # reply length, in evaluation and in GRPO
    rbrm_weight: float = 1.0
    drlaif_weight: float = 0.5
    seed: int = 0


def _log(message: str) -> None:
    print(f"[align demo] {message}", file=sys.stderr, flush=True)


def _replies(policy: Backend, prompts: list[dict[str, str]], path: Path, max_tokens: int) -> list[str]:
    """The policy's greedy replies, kept in `path` so a rerun does not generate them again."""
    if path.exists():
        return [row["response"] for _, row in read_jsonl(path)]
    replies = respond(policy, [p["prompt"] for p in prompts], max_tokens)

    def write(tmp: Path) -> None:
        tmp.write_text("".join(json.dumps({**p, "response": r}) + "\n" for p, r in zip(prompts, replies, strict=True)))

    write_atomic(path, write)
    return replies


def _measure(grader: Backend, rubric: Rubric, prompts: list[dict[str, str]], replies: list[str]) -> dict[str, Any]:
    """Refusal, over-refusal and the two rewards, each with its CI, plus the per-prompt values."""
    result = refusal_eval(grader, rubric, prompts, replies)
    graded = result.pop("items")
    refusal = (rubric.refusal_desired, rubric.refusal_undesired)
    result["per_prompt"] = {
        "refused": [None if g["invalid"] else float(g["class"] in refusal) for g in graded],
        "refused_by_phrase": [float(refused_by_phrase(r)) for r in replies],
        "rbrm_reward": [None if g["invalid"] else g["reward"] for g in graded],
        "d_rlaif_reward": direct_rewards(grader, [{"prompt": p["prompt"], "response": r}
                                                  for p, r in zip(prompts, replies, strict=True)]),
    }
    result["d_rlaif_reward"] = summarize(result["per_prompt"]["d_rlaif_reward"])
    return result


def _change(before: dict[str, Any], after: dict[str, Any], prompts: list[dict[str, str]]) -> dict[str, Any]:
    """After - before on the same prompts, each with a paired-bootstrap 95% CI."""
    subsets = {"refusal_rate": ("refused", "disallowed"), "over_refusal_rate": ("refused", "allowed"),
               "refusal_rate_by_phrase": ("refused_by_phrase", "disallowed"),
               "over_refusal_rate_by_phrase": ("refused_by_phrase", "allowed"),
               "reward": ("rbrm_reward", None), "d_rlaif_reward": ("d_rlaif_reward", None)}
    out = {}
    for name, (key, tag) in subsets.items():
        pairs = [(a, b) for a, b, p in zip(after["per_prompt"][key], before["per_prompt"][key], prompts, strict=True)
                 if a is not None and b is not None and tag in (None, p["tag"])]
        out[name] = paired_difference([a for a, _ in pairs], [b for _, b in pairs])
    return out


def demo(out: str | Path, settings: DemoSettings | None = None) -> dict[str, Any]:
    """Run the demo into `out`; `out/align_report.json` holds before, after, change and win rate."""
    settings = settings or DemoSettings()
    out = check_output_dir(out)
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    prompts = [{"prompt": p, "tag": t} for p, t in EVAL_PROMPTS]
    rubric = Rubric.load(None)
    grader = load_backend(settings.model)

    tick = time.perf_counter()
    _log(f"measuring the base policy on {len(prompts)} held-out prompts")
    base_replies = _replies(grader, prompts, out / "replies_before.jsonl", settings.max_tokens)
    before = _measure(grader, rubric, prompts, base_replies)
    seconds["eval_before"] = time.perf_counter() - tick

    tick = time.perf_counter()
    sft_dir = out / "sft"
    sft_result: dict[str, Any] = {"model": str(sft_dir), "reused": True}
    if not (sft_dir / "config.json").exists():
        _log(f"SFT: {settings.sft_steps} steps on {len(SFT_EXAMPLES)} teacher answers")
        data = out / "sft_data.jsonl"
        data.write_text("".join(json.dumps({"instruction": q, "input": "", "output": a}) + "\n"
                                for q, a in SFT_EXAMPLES))
        sft_result = sft(settings.model, data, sft_dir, SFTSettings(steps=settings.sft_steps, lr=settings.sft_lr,
                                                                   batch_size=4, seed=settings.seed))
    seconds["sft"] = time.perf_counter() - tick

    tick = time.perf_counter()
    policy_dir = out / "policy"
    rl_result: dict[str, Any] = {"model": str(policy_dir), "reused": True}
    if not (policy_dir / "config.json").exists():
        _log(f"GRPO: {settings.rl_steps} steps on {len(RL_PROMPTS)} prompts, rewards RBRM x{settings.rbrm_weight} "
             f"+ d-RLAIF x{settings.drlaif_weight}")
        rl_result = rl(f"hf:{sft_dir}", [{"prompt": p, "tag": t} for p, t in RL_PROMPTS],
                       [RBRMReward(grader, rubric), DirectRLAIFReward(grader)],
                       [settings.rbrm_weight, settings.drlaif_weight], policy_dir,
                       RLSettings(steps=settings.rl_steps, lr=settings.rl_lr, max_completion_length=settings.max_tokens,
                                  seed=settings.seed))
    seconds["grpo"] = time.perf_counter() - tick

    tick = time.perf_counter()
    _log("measuring the tuned policy")
    tuned_replies = _replies(load_backend(f"hf:{policy_dir}"), prompts, out / "replies_after.jsonl",
                             settings.max_tokens)
    after = _measure(grader, rubric, prompts, tuned_replies)
    win = win_rate(grader, [p["prompt"] for p in prompts], tuned_replies, base_replies)
    seconds["eval_after"] = time.perf_counter() - tick
    seconds["total"] = time.perf_counter() - started

    report = {"model": settings.model, "settings": asdict(settings), "n_prompts": len(prompts),
              "grader_check": grader_check(grader, rubric, SFT_EXAMPLES),
              "before": before, "after": after, "change": _change(before, after, prompts),
              "win_rate_vs_base": win, "sft": sft_result, "rl": rl_result, "seconds": seconds}
    write_json(out / "align_report.json", report | {"provenance": stamp()})
    return report
