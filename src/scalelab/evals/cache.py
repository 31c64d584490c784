"""Every model response in SQLite, keyed by model identity and request: a killed eval, rerun,
asks the model only for what it had not answered."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from scalelab.evals.backends.base import Backend
from scalelab.evals.requests import Generation, Loglikelihood
from scalelab.io import cache_root

CHUNK = 256  # requests per backend call: the most a kill can lose


def default_cache_path() -> Path:
    return cache_root() / "responses.sqlite"


class ResponseCache:
    def __init__(self, path: str | Path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=60, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS responses (model TEXT, key TEXT, value TEXT, "
                        "PRIMARY KEY (model, key))")

    def get(self, model: str, keys: list[str]) -> dict[str, object]:
        found: dict[str, object] = {}
        for i in range(0, len(keys), 500):
            part = keys[i:i + 500]
            rows = self.db.execute(f"SELECT key, value FROM responses WHERE model = ? AND key IN "
                                   f"({','.join('?' * len(part))})", [model, *part])
            found.update((k, json.loads(v)) for k, v in rows)
        return found

    def put(self, model: str, items: dict[str, object]) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?)",
                                [(model, k, json.dumps(v)) for k, v in items.items()])


class CachedBackend:
    """A backend behind the response cache; `on_answer(n)` hears of every n requests answered."""

    def __init__(self, backend: Backend, cache: ResponseCache, on_answer: Callable[[int], None] | None = None):
        self.backend = backend
        self.cache = cache
        self.identity = backend.identity
        self.on_answer = on_answer or (lambda n: None)

    def _answer(self, requests: list, call: Callable[[list], list]) -> list:
        keys = [r.key() for r in requests]
        counts = Counter(keys)
        found = self.cache.get(self.identity, list(dict.fromkeys(keys)))
        self.on_answer(sum(k in found for k in keys))
        todo = list({k: r for k, r in zip(keys, requests, strict=True) if k not in found}.items())
        for i in range(0, len(todo), CHUNK):
            part = todo[i:i + CHUNK]
            answers = dict(zip((k for k, _ in part), call([r for _, r in part]), strict=True))
            self.cache.put(self.identity, answers)
            found.update(answers)
            self.on_answer(sum(counts[k] for k, _ in part))
        return [found[k] for k in keys]

    def loglikelihood(self, requests: list[Loglikelihood]) -> list[float]:
        return self._answer(requests, self.backend.loglikelihood)

    def generate(self, requests: list[Generation]) -> list[list[str]]:
        return self._answer(requests, self.backend.generate)
