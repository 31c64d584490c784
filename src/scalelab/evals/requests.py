"""What a task asks of a model: the log-likelihood of a continuation, or generated text."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Loglikelihood:
    """log P(continuation | context), summed over the continuation's tokens."""

    context: str
    continuation: str

    def key(self) -> str:
        return _digest("ll", asdict(self))


@dataclass(frozen=True)
class Generation:
    """Up to `max_tokens` new tokens after `prompt`, cut at the first stop string; `n` samples.

    `chat=True` sends the prompt as one user message through the model's chat template.
    """

    prompt: str
    max_tokens: int = 256
    stop: tuple[str, ...] = field(default_factory=tuple)
    temperature: float = 0.0
    n: int = 1
    chat: bool = False
    seed: int = 0

    def key(self) -> str:
        return _digest("gen", asdict(self))


def _digest(kind: str, payload: dict) -> str:
    return hashlib.sha256(json.dumps([kind, payload], sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    """`text` up to (not including) the earliest stop string."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=len(text))
    return text[:cut]
