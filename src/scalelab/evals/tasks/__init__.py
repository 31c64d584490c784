"""Task registry: built-in names and user spec files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scalelab.errors import UserError
from scalelab.evals.tasks.base import MultipleChoiceTask, Sample, Task
from scalelab.evals.tasks.custom import GenerationTask, ModelGradedTask, load_user_task
from scalelab.evals.tasks.humaneval import HumanEvalTask, load_humaneval, read_completions
from scalelab.evals.tasks.images import nlvr_task, scenes_task
from scalelab.evals.tasks.mmlu import load_mmlu
from scalelab.evals.tasks.truthfulqa import load_truthfulqa

BUILTIN = ("mmlu", "mmlu_<language>", "truthfulqa_mc", "humaneval", "nlvr", "scenes")


def load_task(name: str, data: dict[str, str], shots: int = 5, limit: int | None = None, grader=None,
              humaneval: dict[str, Any] | None = None, image_dir: str | None = None) -> Task:
    """A task by name (its data from `data[name]`), or a user spec file (.yaml/.yml/.jsonl)."""
    if name.endswith((".yaml", ".yml", ".jsonl")):
        task = load_user_task(name, grader)
    elif name == "scenes":
        return scenes_task(limit)
    elif name == "nlvr":
        if name not in data:
            raise UserError("task 'nlvr' needs its data: --data nlvr=PATH/dev.json (and --image-dir if the images "
                            "are elsewhere)")
        task, info = nlvr_task(data[name], image_dir)
        task.info = info | {"shots": 0}
    else:
        is_mmlu = name == "mmlu" or name.startswith("mmlu_")
        if not (is_mmlu or name in BUILTIN):
            raise UserError(f"unknown task '{name}'; built in: {', '.join(BUILTIN)}, or a .yaml/.jsonl spec file")
        if name not in data:
            raise UserError(f"task '{name}' needs its data: --data {name}=PATH")
        path = Path(data[name])
        if is_mmlu:
            task = load_mmlu(path, shots=shots, name=name)
        elif name == "truthfulqa_mc":
            task = load_truthfulqa(path, name=name)
        else:
            task = load_humaneval(path, name=name, **(humaneval or {}))
    if limit is not None:
        task.samples = task.samples[:limit]
    return task


__all__ = ["BUILTIN", "GenerationTask", "HumanEvalTask", "ModelGradedTask", "MultipleChoiceTask", "Sample", "Task",
           "load_task", "read_completions"]
