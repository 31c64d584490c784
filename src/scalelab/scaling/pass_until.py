"""PassUntil (Hu et al., ICLR 2024): pass rates too small for a fixed sample budget, resolved by
sampling until a pass (or a few), up to a cap.

Where the checker is an exact match, the pass rate is the reference's likelihood and needs no
sampling (`capability_suite`). Where it accepts many completions (tests run in the sandbox, a
normalised comparison) only sampling tells: here in rounds of `batch` temperature-1 samples until
`target_passes` passes or `max_samples` samples. Inverse sampling stopped at the r-th pass after K
samples is negative binomial: the estimate is r/K (the maximum-likelihood one) and the interval
comes from its beta relation, lower Beta(r, K-r+1), upper Beta(r, K-r); stopped at the cap with
fewer passes it is binomial (Clopper-Pearson). The rows it gives (`passes`, `samples`) are what
`scalelab fit --form passrate` reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from scipy.stats import beta

from scalelab.evals.backends.base import Backend
from scalelab.evals.requests import Generation


@dataclass(frozen=True)
class PassEstimate:
    passes: int
    samples: int
    stopped_at_target: bool  # False: the cap ended the sampling first
    rate: float
    interval: tuple[float, float]

    @property
    def log_pass_rate(self) -> float:
        return math.log(self.rate) if self.rate > 0 else -math.inf


def estimate(passes: int, samples: int, stopped_at_target: bool, level: float = 0.9) -> PassEstimate:
    """r/K and its interval: negative binomial when sampling stopped at the r-th pass, else binomial."""
    if samples < 1 or not 0 <= passes <= samples:
        raise ValueError(f"need 0 <= passes <= samples and samples >= 1, got {passes}/{samples}")
    tail = (1 - level) / 2
    lo = float(beta.ppf(tail, passes, samples - passes + 1)) if passes else 0.0
    if stopped_at_target:
        hi = float(beta.ppf(1 - tail, passes, samples - passes)) if samples > passes else 1.0
    else:
        hi = float(beta.ppf(1 - tail, passes + 1, samples - passes)) if samples > passes else 1.0
    return PassEstimate(passes, samples, stopped_at_target, passes / samples, (lo, hi))


def pass_until(backend: Backend, prompt: str, checker: Callable[[str], bool], target_passes: int = 1,
               max_samples: int = 1024, batch: int = 32, max_tokens: int = 64, stop: tuple[str, ...] = ("\n",),
               seed: int = 0, level: float = 0.9) -> PassEstimate:
    """Sample `prompt` at temperature 1 in rounds of `batch` until `target_passes` completions pass."""
    if target_passes < 1 or max_samples < 1 or batch < 1:
        raise ValueError("target_passes, max_samples and batch must be at least 1")
    passes = samples = 0
    round_no = 0
    while passes < target_passes and samples < max_samples:
        n = min(batch, max_samples - samples)
        completions = backend.generate([Generation(prompt, max_tokens=max_tokens, stop=stop, temperature=1.0, n=n,
                                                   seed=seed * 1_000_003 + round_no)])[0]
        for text in completions:  # counted one by one: the sampling stops exactly at the r-th pass
            samples += 1
            passes += bool(checker(text))
            if passes == target_passes:
                break
        round_no += 1
    return estimate(passes, samples, passes >= target_passes, level)
