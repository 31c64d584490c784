"""Prompt sets as published, their categories kept: AdvBench, HarmBench, StrongREJECT, JailbreakBench,
XSTest, or any JSONL/JSON/CSV with a prompt column and a tag.

The layout is told by the columns: HarmBench `Behavior, ..., ContextString, BehaviorID` (contextual
rows carry their context before the behaviour), JailbreakBench `Index, Goal, Target, Behavior,
Category, Source`, AdvBench `goal, target`, StrongREJECT `category, source, forbidden_prompt`, XSTest
`id, prompt, type, label, ...` (label safe/unsafe: safe prompts measure over-refusal). Any row may add
`system` (its system prompt: secret-keeping and policy tasks), `canary` (a secret that must not
appear in the reply) and `target` (the compliant opening published with the prompt).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scalelab.errors import UserError
from scalelab.io import read_csv_records, read_json_list, read_jsonl

PROMPT_FIELDS = ("prompt", "goal", "Goal", "Behavior", "forbidden_prompt", "instruction", "question")
HARMFUL_TAGS = {"disallowed": True, "unsafe": True, "harmful": True, "allowed": False, "safe": False,
                "benign": False}


@dataclass(frozen=True)
class Behaviour:
    """One prompt of a set: what is asked (`goal`, with any `context`), whether it is harmful (attacks
    apply) or a safe look-alike (asked plainly: over-refusal), and its category."""

    id: str
    goal: str
    category: str
    harmful: bool
    source: str
    context: str = ""
    system: str = ""
    canary: str = ""
    target: str = ""

    @property
    def prompt(self) -> str:
        """The user's request: the goal, after its context where the set gives one (HarmBench's layout)."""
        return f"{self.context}\n\n---\n\n{self.goal}" if self.context else self.goal


def _field(row: dict, *names: str) -> str:
    for name in names:
        value = row.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
    return ""


def _layout(columns: set[str]) -> str:
    if {"Behavior", "BehaviorID"} <= columns:
        return "harmbench"
    if {"Goal", "Target", "Behavior", "Category"} <= columns:
        return "jailbreakbench"
    if {"forbidden_prompt", "category"} <= columns:
        return "strongreject"
    if {"goal", "target"} <= columns:
        return "advbench"
    if {"prompt", "type", "label"} <= columns:
        return "xstest"
    return "plain"


def _harmful(row: dict, layout: str, tag: str | None, where: str) -> bool:
    if layout in ("harmbench", "jailbreakbench", "strongreject", "advbench"):
        return True
    given = _field(row, "tag", "label") or tag
    if given not in HARMFUL_TAGS:
        raise UserError(f"{where}: tag must be one of {', '.join(HARMFUL_TAGS)} (column 'tag' or 'label'), not "
                        f"{given or 'missing'!r}; or give the file's tag")
    return HARMFUL_TAGS[given]


def _rows(path: Path) -> list[tuple[str, dict]]:
    if path.suffix == ".csv":
        return [(f"{path}:{n}", row) for n, row in read_csv_records(path)[1]]
    if path.suffix == ".json":
        return [(f"{path}: item {i}", r) for i, r in enumerate(read_json_list(path))]
    return [(f"{path}:{n}", r) for n, r in read_jsonl(path)]


def load_behaviours(path: str | Path, system: str = "", tag: str | None = None,
                    limit: int | None = None) -> list[Behaviour]:
    """The first `limit` rows of a prompt set; `system` is the set's system prompt (a row's own wins),
    `tag` the harmful/safe tag of rows that carry none."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"prompt set {path} not found")
    rows = _rows(path)[:limit]
    out = []
    for i, (where, row) in enumerate(rows):
        if not isinstance(row, dict):
            raise UserError(f"{where}: expected an object")
        layout = _layout(set(row))
        goal = _field(row, *PROMPT_FIELDS)
        if not goal:
            raise UserError(f"{where}: missing prompt text (one of {', '.join(PROMPT_FIELDS)})")
        out.append(Behaviour(
            id=f"{path.stem}/{_field(row, 'BehaviorID', 'id', 'Index') or i}",
            goal=goal,
            category=_field(row, "SemanticCategory", "Category", "category", "type") or "uncategorised",
            harmful=_harmful(row, layout, tag, where),
            source=path.name,
            context=_field(row, "ContextString", "context"),
            system=_field(row, "system") or system,
            canary=_field(row, "canary", "secret"),
            target=_field(row, "target", "Target")))
    if not out:
        raise UserError(f"{path}: no prompts")
    ids = [b.id for b in out]
    twice = next((x for x in ids if ids.count(x) > 1), None)
    if twice:
        raise UserError(f"{path}: id '{twice.partition('/')[2]}' names two rows")
    return out
