"""HumanEval: complete a function, run its tests in the sandbox, pass@k with the unbiased estimator."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scalelab.errors import UserError
from scalelab.evals.backends.base import Backend
from scalelab.evals.requests import Generation
from scalelab.evals.sandbox import Limits, run_programs
from scalelab.evals.tasks.base import Sample, existing, field_of
from scalelab.io import read_jsonl

STOP = ("\nclass", "\ndef", "\n#", "\nif __name__", "\nprint(", "\nassert")


def pass_at_k(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k) / C(n, k), computed as a stable product (Chen et al. 2021)."""
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def program(sample: Sample, completion: str) -> str:
    return f"{sample.prompt}{completion}\n\n{sample.target['test']}\n\ncheck({sample.target['entry_point']})\n"


@dataclass
class HumanEvalTask:
    name: str
    samples: list[Sample]
    n: int = 1
    temperature: float = 0.0
    ks: tuple[int, ...] = (1, 10, 100)
    max_tokens: int = 512
    given: dict[str, list[str]] | None = None  # task_id -> completions (--samples FILE)
    limits: Limits = field(default_factory=Limits)
    parallel: int | None = None  # sandboxes at once (default: the core count)

    def requests(self) -> int:
        return 0 if self.given is not None else len(self.samples)

    def completions(self, model: Backend | None) -> list[list[str]]:
        if self.given is not None:
            missing = [s.id for s in self.samples if s.id not in self.given]
            if missing:
                raise UserError(f"--samples has no completion for {missing[0]} ({len(missing)} tasks missing)")
            return [self.given[s.id] for s in self.samples]
        requests = [Generation(s.prompt, max_tokens=self.max_tokens, stop=STOP, temperature=self.temperature,
                               n=self.n) for s in self.samples]
        return model.generate(requests)

    def run(self, model: Backend | None) -> list[dict[str, Any]]:
        completions = self.completions(model)
        jobs = [(s, c) for s, cs in zip(self.samples, completions, strict=True) for c in cs]
        outcomes = iter(run_programs([program(*job) for job in jobs], self.limits, self.parallel))
        rows = []
        for s, cs in zip(self.samples, completions, strict=True):
            results = [next(outcomes) for _ in cs]
            n, c = len(cs), sum(o.passed for o in results)
            scores = {f"pass@{k}": pass_at_k(n, c, k) for k in self.ks if k <= n}
            row = {"id": s.id, "task_id": s.id, "prompt": s.prompt, "completion": cs[0], "passed": results[0].passed,
                   "error": results[0].error, "scores": scores}
            if n > 1:
                row |= {"completions": cs, "passed_each": [o.passed for o in results],
                        "errors": [o.error for o in results]}
            rows.append(row)
        return rows


def load_humaneval(path: str | Path, name: str = "humaneval", **settings: Any) -> HumanEvalTask:
    path = existing(path, name)
    samples = []
    for line_no, row in read_jsonl(path):
        where = f"{path}:{line_no}"
        task_id, prompt = field_of(row, "task_id", where), field_of(row, "prompt", where)
        target = {"test": field_of(row, "test", where), "entry_point": field_of(row, "entry_point", where)}
        samples.append(Sample(id=str(task_id), prompt=prompt, question=prompt, target=target))
    if not samples:
        raise UserError(f"{path}: no HumanEval problems")
    return HumanEvalTask(name=name, samples=samples, **settings)


def read_completions(path: str | Path) -> dict[str, list[str]]:
    """`{task_id, completion}` JSONL, as human-eval's checker takes; several rows per task allowed."""
    out: dict[str, list[str]] = {}
    for line_no, row in read_jsonl(existing(path, "--samples")):
        where = f"{path}:{line_no}"
        out.setdefault(str(field_of(row, "task_id", where)), []).append(str(field_of(row, "completion", where)))
    return out
