"""A task is a list of samples, what to ask the model for each, and how to score the answers.

Every sample's score is a dict of per-item metric values; results aggregate them (mean, standard
error, bootstrap CI) and `compare`/contamination reuse them item by item.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from scalelab.errors import UserError
from scalelab.evals.backends.base import Backend
from scalelab.evals.requests import Loglikelihood


@dataclass
class Sample:
    id: str
    prompt: str  # the context sent to the model (k-shot examples included)
    question: str  # the item's own text, without shots: what contamination checks look for
    choices: list[str] | None = None  # continuations scored by log-likelihood
    target: Any = None
    group: str | None = None  # MMLU's subject
    meta: dict[str, Any] = field(default_factory=dict)
    images: tuple[str, ...] = ()  # PNG data URLs, placed at the prompt's `<image>` markers


class Task(Protocol):
    """A named list of samples that runs them on a model and returns one result row per sample.

    Each row holds the sample's `id`, its `scores` (metric -> per-item value) and what a reader
    needs to audit it (prompt, choices and log-likelihoods, or completions and why they failed).
    """

    name: str
    samples: list[Sample]

    def requests(self) -> int: ...

    def run(self, model: Backend) -> list[dict[str, Any]]: ...


@dataclass
class MultipleChoiceTask:
    """Samples scored by the log-likelihood of each choice; `scorer(sample, lls)` -> (pred, metric values)."""

    name: str
    samples: list[Sample]
    scorer: Callable[[Sample, list[float]], tuple[int, dict[str, float]]]
    info: dict[str, Any] = field(default_factory=dict)  # reported beside the metrics (items skipped, ...)

    def requests(self) -> int:
        return sum(len(s.choices) for s in self.samples)

    def run(self, model: Backend) -> list[dict[str, Any]]:
        requests = [Loglikelihood(s.prompt, c, s.images) for s in self.samples for c in s.choices]
        lls = iter(model.loglikelihood(requests))
        rows = []
        for s in self.samples:
            ll = [next(lls) for _ in s.choices]
            pred, scores = self.scorer(s, ll)
            rows.append({"id": s.id, "group": s.group, "prompt": s.prompt, "choices": s.choices,
                         "loglikelihoods": ll, "pred": pred, "target": s.target, "scores": scores})
        return rows


def choice_scores(sample: Sample, lls: list[float]) -> tuple[int, dict[str, float]]:
    """acc (argmax log-likelihood) and acc_norm (per character of the choice), as lm-evaluation-harness."""
    lls_arr = np.asarray(lls)
    norm = lls_arr / np.array([max(1, len(c)) for c in sample.choices])
    pred = int(np.argmax(lls_arr))
    return pred, {"acc": float(pred == sample.target), "acc_norm": float(np.argmax(norm) == sample.target)}


# --- reading published files, with file:line errors ---------------------------------------------


def field_of(row: dict, key: str, where: str) -> Any:
    if key not in row or row[key] is None:
        raise UserError(f"{where}: missing field '{key}'")
    return row[key]


def existing(path: str | Path, task: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise UserError(f"data for task '{task}' not found: {path}")
    return path
