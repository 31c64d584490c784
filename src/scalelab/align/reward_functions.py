"""Reward functions for TRL's GRPO and RLOO trainers, named by a spec string.

`rbrm[:GRADER]` the rule-based reward model (reward by the prompt's `tag` column; GRADER a model spec
or `trained:DIR`), `drlaif[:LABELLER]` direct RLAIF, `rm:FOLDER` a trained reward model,
`py:FILE.py:FUNC` or `py:MODULE:FUNC` a user callable with TRL's signature
(prompts, completions, **columns) -> list of float or None.
A reward that cannot be computed is None, which TRL skips; RBRM's invalid gradings are counted.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scalelab.align.rbrm import GRADER_HELP, Grader, Rubric, grade, load_grader
from scalelab.align.reward_model import RewardModel
from scalelab.align.rlaif import direct_rewards
from scalelab.errors import UserError
from scalelab.evals.backends.base import Backend

RewardFunc = Callable[..., list[float | None]]
REWARD_HELP = "rbrm[:GRADER], drlaif[:LABELLER], rm:FOLDER or py:FILE.py:FUNC"


def message_text(x: str | list[dict[str, str]]) -> str:
    """A TRL prompt or completion (plain text, or chat messages) as the text of its last message."""
    return x if isinstance(x, str) else x[-1]["content"]


class RBRMReward:
    """GPT-4's rule-based reward: the rubric grader's class probabilities, rewarded by tag."""

    __name__ = "rbrm"

    def __init__(self, grader: Grader, rubric: Rubric):
        self.grader, self.rubric = grader, rubric
        self.invalid = 0

    def __call__(self, prompts: list, completions: list, tag: list[str] | None = None, **_: Any) -> list[float | None]:
        items = [{"prompt": message_text(p), "response": message_text(c), "tag": tag[i] if tag else "allowed"}
                 for i, (p, c) in enumerate(zip(prompts, completions, strict=True))]
        graded = grade(self.grader, self.rubric, items)
        self.invalid += sum(g["invalid"] for g in graded)
        return [None if g["invalid"] else g["reward"] for g in graded]


class DirectRLAIFReward:
    """d-RLAIF: the labeller's expected 1-10 score of the response, rescaled to [-1, 1]."""

    __name__ = "d_rlaif"

    def __init__(self, labeller: Backend):
        self.labeller = labeller

    def __call__(self, prompts: list, completions: list, **_: Any) -> list[float | None]:
        return direct_rewards(self.labeller, [{"prompt": message_text(p), "response": message_text(c)}
                                              for p, c in zip(prompts, completions, strict=True)])


class RewardModelReward:
    """A trained reward model's score, formatted as it was trained."""

    __name__ = "reward_model"

    def __init__(self, folder: str | Path):
        if not (Path(folder) / "config.json").exists():
            raise UserError(f"reward model {folder} is not a Hugging Face model folder (no config.json)")
        self.model = RewardModel(folder)

    def __call__(self, prompts: list, completions: list, **_: Any) -> list[float | None]:
        return self.model.score([message_text(p) for p in prompts], [message_text(c) for c in completions])


def load_callable(spec: str) -> RewardFunc:
    """`FILE.py:FUNC` or `MODULE:FUNC` -> the function."""
    where, _, name = spec.rpartition(":")
    if not where or not name:
        raise UserError(f"reward 'py:{spec}' must name FILE.py:FUNC or MODULE:FUNC")
    try:
        if where.endswith(".py"):
            if not Path(where).is_file():
                raise UserError(f"reward file {where} does not exist")
            loader = importlib.util.spec_from_file_location(Path(where).stem, where)
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except (ImportError, SyntaxError) as e:
        raise UserError(f"cannot load reward module {where}: {e}") from None
    func = getattr(module, name, None)
    if not callable(func):
        raise UserError(f"{where} has no function '{name}'")
    return func


def build_reward(spec: str, rubric: Rubric | None = None, backends: dict[str, Grader] | None = None) -> RewardFunc:
    """The reward function a spec names; `backends` shares loaded graders between specs."""
    kind, _, rest = spec.partition(":")
    backends = {} if backends is None else backends
    if kind in ("rbrm", "drlaif"):
        model = rest or "smollm2"
        if kind == "drlaif" and model.startswith("trained:"):
            raise UserError(f"reward '{spec}': d-RLAIF needs a labelling model, not a trained classifier")
        if model not in backends:
            backends[model] = load_grader(model)
        backend = backends[model]
        return RBRMReward(backend, rubric or Rubric.load(None)) if kind == "rbrm" else DirectRLAIFReward(backend)
    if kind == "rm" and rest:
        return RewardModelReward(rest)
    if kind == "py" and rest:
        return load_callable(rest)
    raise UserError(f"unknown reward '{spec}'; use {REWARD_HELP} (graders: {GRADER_HELP})")
