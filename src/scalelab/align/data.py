"""Post-training data as published: Alpaca instruction files, chat `messages` JSONL, preference pairs
(Anthropic HH-RLHF transcripts or `prompt, chosen, rejected` rows). Bad rows name file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scalelab.errors import UserError
from scalelab.evals.tasks.base import existing
from scalelab.io import read_csv_records, read_json_list, read_jsonl


def _rows(path: Path) -> list[tuple[str, dict]]:
    """(where, row) from a JSON list or a JSONL file (.gz too)."""
    if path.suffix == ".json":
        return [(f"{path}: item {i}", r) for i, r in enumerate(read_json_list(path))]
    return [(f"{path}:{n}", r) for n, r in read_jsonl(path)]


def _text(row: dict, key: str, where: str) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{where}: missing field '{key}'")
    return value


def read_instructions(path: str | Path) -> list[dict[str, Any]]:
    """Rows {prompt, completion} in chat form: a list with the user message, and the assistant reply."""
    path = existing(path, "instruction data")
    out = []
    for where, row in _rows(path):
        if not isinstance(row, dict):
            raise UserError(f"{where}: expected an object")
        if "messages" in row:
            messages = row["messages"]
            if not isinstance(messages, list) or len(messages) < 2 or messages[-1].get("role") != "assistant":
                raise UserError(f"{where}: 'messages' must end with an assistant message")
            out.append({"prompt": messages[:-1], "completion": [messages[-1]]})
            continue
        instruction = _text(row, "instruction", where)
        extra = row.get("input") or ""
        answer = row.get("output", row.get("response"))
        if not isinstance(answer, str) or not answer.strip():
            raise UserError(f"{where}: missing field 'output' (or 'response')")
        user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
        out.append({"prompt": [{"role": "user", "content": user}],
                    "completion": [{"role": "assistant", "content": answer}]})
    if not out:
        raise UserError(f"{path}: no rows")
    return out


def split_transcript(text: str, where: str) -> tuple[str, str]:
    """An HH-RLHF transcript -> (everything up to the last assistant turn, that turn)."""
    marker = "\n\nAssistant:"
    cut = text.rfind(marker)
    if cut < 0:
        raise UserError(f"{where}: no '\\n\\nAssistant:' turn in the transcript")
    return text[:cut + len(marker)], text[cut + len(marker):]


def _probability(row: dict, key: str, where: str) -> float:
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise UserError(f"{where}: field '{key}' must be a probability in [0, 1]")
    return float(value)


def read_preferences(path: str | Path) -> list[dict[str, Any]]:
    """Rows {prompt, chosen, rejected}: from `prompt, chosen, rejected` or HH-RLHF transcripts.

    AI-labelled rows (`prompt, a, b, p_a`, as `scalelab align rlaif` writes them) become
    {prompt, chosen: a, rejected: b, label: p_a}: a soft label, P(a preferred).
    """
    path = existing(path, "preference data")
    out: list[dict[str, Any]] = []
    for where, row in _rows(path):
        if not isinstance(row, dict):
            raise UserError(f"{where}: expected an object")
        if "p_a" in row:
            out.append({"prompt": _text(row, "prompt", where), "chosen": _text(row, "a", where),
                        "rejected": _text(row, "b", where), "label": _probability(row, "p_a", where)})
            continue
        chosen, rejected = _text(row, "chosen", where), _text(row, "rejected", where)
        if "prompt" in row:
            out.append({"prompt": _text(row, "prompt", where), "chosen": chosen, "rejected": rejected})
            continue
        prompt, chosen_reply = split_transcript(chosen, f"{where} chosen")
        prompt_r, rejected_reply = split_transcript(rejected, f"{where} rejected")
        if prompt != prompt_r:
            raise UserError(f"{where}: chosen and rejected do not share the conversation before the last reply")
        out.append({"prompt": prompt, "chosen": chosen_reply, "rejected": rejected_reply})
    if not out:
        raise UserError(f"{path}: no rows")
    return out


PROMPT_FIELDS = ("prompt", "instruction", "question", "forbidden_prompt")
TAGS = {"allowed": "allowed", "disallowed": "disallowed", "safe": "allowed", "unsafe": "disallowed"}


def read_prompts(path: str | Path, tag: str | None = None) -> list[dict[str, str]]:
    """Rows {prompt, tag} from JSONL, a JSON list or CSV (XSTest, StrongREJECT, Do-Not-Answer layouts).

    The text is the first of `prompt, instruction, question, forbidden_prompt`; the tag is `tag`
    (allowed/disallowed) or XSTest's `label` (safe/unsafe), else `tag` given here for the whole file.
    """
    path = existing(path, "prompt data")
    if path.suffix == ".csv":
        rows = [(f"{path}:{n}", row) for n, row in read_csv_records(path)[1]]
    else:
        rows = _rows(path)
    out = []
    for where, row in rows:
        if not isinstance(row, dict):
            raise UserError(f"{where}: expected an object")
        key = next((k for k in PROMPT_FIELDS if isinstance(row.get(k), str) and row[k].strip()), None)
        if key is None:
            raise UserError(f"{where}: missing prompt text (one of {', '.join(PROMPT_FIELDS)})")
        given = row.get("tag", row.get("label", tag))
        if given not in TAGS:
            raise UserError(f"{where}: tag must be allowed/disallowed (or label safe/unsafe), not {given!r}; "
                            "or give the file's tag")
        out.append({"prompt": row[key], "tag": TAGS[given]})
    if not out:
        raise UserError(f"{path}: no rows")
    return out
