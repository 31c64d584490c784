"""Evaluation: tasks (MMLU, TruthfulQA, HumanEval, user and model-graded), backends, scoring, statistics."""

from scalelab.evals.backends import SPEC_HELP, load_backend
from scalelab.evals.runner import aggregate, evaluate, read_samples
from scalelab.evals.tasks import load_task, read_completions

__all__ = ["SPEC_HELP", "aggregate", "evaluate", "load_backend", "load_task", "read_completions", "read_samples"]
