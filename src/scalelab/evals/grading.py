"""A model as a grader: the probability it gives each of a few answers, and the model-free refusal check.

Where the grader returns log-likelihoods (every local model, our server), each answer's probability
is its likelihood after the grading prompt, normalised over the answers. Where it does not (a chat
API), the grader writes its answer; a reply naming none of the answers is unparsable, and a reply
that refuses to grade is the grader refusing: either way there is no probability, never a guess.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from scalelab.errors import UserError
from scalelab.evals.backends.base import Backend
from scalelab.evals.requests import Generation, Loglikelihood
from scalelab.evals.tasks.custom import parse_verdict

REFUSAL_PHRASES = re.compile(
    r"\b(i'?m sorry|i am sorry|i apologi[sz]e|i can ?not|i can'?t|i won'?t|i will not|i'?m (not able|unable)|"
    r"i am (not able|unable)|as an ai|i must decline|not able to (help|assist|provide))\b", re.IGNORECASE)


def refused_by_phrase(reply: str) -> bool:
    """A refusal phrase in the reply's opening (first 200 characters)."""
    return bool(REFUSAL_PHRASES.search(reply[:200].replace("\u2019", "'")))


@dataclass(frozen=True)
class Graded:
    """A grader's answer to one prompt: probabilities over the answers, or why there are none."""

    probs: dict[str, float] | None
    reason: str = ""  # when probs is None: "unparsable" or "grader refused"
    reply: str = ""  # the grader's own words, when it wrote any


def choice_probabilities(grader: Backend, prompts: list[str], choices: list[str],
                         max_tokens: int = 4) -> list[Graded]:
    """For each prompt, P(answer) over `choices` (each scored as ' ' + choice after the prompt)."""
    try:
        lls = grader.loglikelihood([Loglikelihood(p, f" {c}") for p in prompts for c in choices])
    except UserError:  # no log-probabilities from this grader: it writes its answer
        replies = grader.generate([Generation(p, max_tokens=max_tokens) for p in prompts])
        out = []
        for (reply,) in replies:
            answer = parse_verdict(reply, choices, "classify")
            if answer is not None:
                out.append(Graded({c: float(c == answer) for c in choices}, reply=reply))
            else:
                out.append(Graded(None, "grader refused" if refused_by_phrase(reply) else "unparsable", reply))
        return out
    out = []
    for i in range(len(prompts)):
        row = lls[i * len(choices):(i + 1) * len(choices)]
        top = max(row)
        weights = [math.exp(x - top) for x in row]
        out.append(Graded({c: w / sum(weights) for c, w in zip(choices, weights, strict=True)}))
    return out
