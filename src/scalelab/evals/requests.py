"""What a task asks of a model: the log-likelihood of a continuation, or generated text."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Loglikelihood:
    """log P(continuation | context), summed over the continuation's tokens; `images` (PNG data URLs)
    go where the context's `<image>` markers stand."""

    context: str
    continuation: str
    images: tuple[str, ...] = ()

    def key(self) -> str:
        return _digest("ll", _used(asdict(self)))


@dataclass(frozen=True)
class Generation:
    """Up to `max_tokens` new tokens after `prompt`, cut at the first stop string; `n` samples.

    `chat=True` sends the prompt as a user message through the model's chat template, after a
    `system` message and earlier `turns` ((role, content) pairs, user and assistant) when given.
    """

    prompt: str
    max_tokens: int = 256
    stop: tuple[str, ...] = field(default_factory=tuple)
    temperature: float = 0.0
    n: int = 1
    chat: bool = False
    seed: int = 0
    system: str = ""
    turns: tuple[tuple[str, str], ...] = ()
    images: tuple[str, ...] = ()  # PNG data URLs, placed at the prompt's `<image>` markers

    def messages(self) -> list[dict[str, str]]:
        """The chat messages this request sends: system (if any), earlier turns, then the prompt."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + [{"role": r, "content": c} for r, c in self.turns] + [{"role": "user", "content": self.prompt}]

    def key(self) -> str:
        return _digest("gen", _used(asdict(self)))


def _used(payload: dict) -> dict:
    """A request's fields without the optional ones it leaves empty, so the cache keys of requests
    made before those fields existed stay the same."""
    return {k: v for k, v in payload.items() if k not in ("system", "turns", "images") or v}


def _digest(kind: str, payload: dict) -> str:
    return hashlib.sha256(json.dumps([kind, payload], sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    """`text` up to (not including) the earliest stop string."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=len(text))
    return text[:cut]
