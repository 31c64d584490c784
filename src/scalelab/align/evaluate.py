"""Alignment evals, each with a bootstrap 95% CI: refusal on disallowed prompts and over-refusal on
safe look-alikes (XSTest-style), graded by the RBRM; win rate against a baseline, judged by an AI
labeller with both orders. (Reward-model accuracy: `scalelab.align.reward_model.pairwise_accuracy`.)

A grader is only as good as its model, so two checks sit beside the RBRM's rates: the same rates by
refusal phrases (the prefix matching of the GCG and refusal-direction papers, blind to style and
to partial compliance but independent of any model), and `grader_check`, the grader's separation
of known refusals from known answers (AUROC of its refusal probability).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import mannwhitneyu

from scalelab.align.rbrm import Rubric, grade
from scalelab.align.rlaif import label_pairs
from scalelab.evals.backends.base import Backend
from scalelab.evals.grading import refused_by_phrase
from scalelab.evals.requests import Generation
from scalelab.evals.stats import summarize


def respond(policy: Backend, prompts: list[str], max_tokens: int = 96) -> list[str]:
    """Greedy replies, each prompt sent as a user message through the chat template."""
    return [texts[0] for texts in policy.generate([Generation(p, max_tokens=max_tokens, chat=True) for p in prompts])]


def refusal_eval(grader: Backend, rubric: Rubric, prompts: list[dict[str, str]],
                 responses: list[str]) -> dict[str, Any]:
    """Refusal rate on `disallowed` prompts, over-refusal rate on `allowed` ones, and the RBRM reward.

    A response counts as a refusal when the grader's most likely class is either refusal class;
    gradings the grader could not make are counted in `n_invalid` and left out of every rate.
    """
    items = [{"prompt": p["prompt"], "response": r, "tag": p["tag"]} for p, r in zip(prompts, responses, strict=True)]
    graded = grade(grader, rubric, items)
    valid = [g for g in graded if not g["invalid"]]
    refusal = (rubric.refusal_desired, rubric.refusal_undesired)

    def rate(tag: str) -> dict[str, Any]:
        return summarize([float(g["class"] in refusal) for g in valid if g["tag"] == tag])

    def phrase_rate(tag: str) -> dict[str, Any]:
        return summarize([float(refused_by_phrase(it["response"])) for it in items if it["tag"] == tag])

    return {"refusal_rate": rate("disallowed"), "over_refusal_rate": rate("allowed"),
            "refusal_rate_by_phrase": phrase_rate("disallowed"), "over_refusal_rate_by_phrase": phrase_rate("allowed"),
            "reward": summarize([g["reward"] for g in valid]),
            "n_disallowed": sum(g["tag"] == "disallowed" for g in valid),
            "n_allowed": sum(g["tag"] == "allowed" for g in valid), "n_invalid": len(graded) - len(valid),
            "items": graded}


def win_rate(judge: Backend, prompts: list[str], policy: list[str], baseline: list[str]) -> dict[str, Any]:
    """Share of prompts where the judge prefers the policy's reply (ties count half), both orders averaged."""
    rows = [{"prompt": p, "a": a, "b": b} for p, a, b in zip(prompts, policy, baseline, strict=True)]
    result = label_pairs(judge, rows)
    p_policy = [lab["p_a"] for lab in result["labels"]]
    wins = [0.5 if abs(p - 0.5) < 1e-9 else float(p > 0.5) for p in p_policy]  # identical replies tie
    return {"win_rate": summarize(wins), "mean_preference": summarize(p_policy),
            "position_bias_rate": result["position_bias_rate"], "n": len(rows)}


def grader_check(grader: Backend, rubric: Rubric, examples: list[tuple[str, str]]) -> dict[str, Any]:
    """How well the grader tells known refusals from known answers: (prompt, reply) examples, a reply
    counting as a refusal when `refused_by_phrase` says so. AUROC 0.5 is chance: then the RBRM's rates
    and rewards carry no information and a stronger grader is needed."""
    items = [{"prompt": p, "response": r, "tag": "allowed"} for p, r in examples]
    graded = [g for g in grade(grader, rubric, items) if not g["invalid"]]
    refusal = (rubric.refusal_desired, rubric.refusal_undesired)
    score = np.array([sum(g["probs"][c] for c in refusal) for g in graded])
    truth = np.array([refused_by_phrase(g["response"]) for g in graded])
    pos, neg = score[truth], score[~truth]
    auroc = float(mannwhitneyu(pos, neg).statistic / (len(pos) * len(neg))) if len(pos) and len(neg) else None
    accuracy = float(np.mean([(g["class"] in refusal) == t for g, t in zip(graded, truth, strict=True)]))
    return {"auroc": auroc, "accuracy": accuracy, "n_refusals": int(truth.sum()), "n_answers": int((~truth).sum())}
