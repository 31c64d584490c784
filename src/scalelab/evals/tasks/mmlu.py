"""MMLU and its translations, k-shot, scored as lm-evaluation-harness's `mmlu` task.

Layouts read as published: a folder with `dev/` and `test/` per-subject CSVs, either header-less
(`question,A,B,C,D,letter`, the original release) or with a header (`question,choice0..choice3,
answer` with answer 0-3; CMMLU's `,Question,A,B,C,D,Answer`; MMMLU's with `Subject` last); or JSONL
rows `instruction, option_a..option_d, answer` (the translated releases). A folder holding the CSVs or
JSONL files directly, or one file, is a test set without dev shots.
"""

from __future__ import annotations

import re
from pathlib import Path

from scalelab.errors import UserError
from scalelab.evals.tasks.base import (
    MultipleChoiceTask,
    Sample,
    choice_scores,
    existing,
    field_of,
)
from scalelab.io import read_csv_rows, read_jsonl

LETTERS = "ABCD"
_SPLIT_SUFFIX = re.compile(r"_(dev|test|val|validation)$")


def _answer_index(value: object, where: str) -> int:
    text = str(value).strip()
    if text.upper() in LETTERS and text:
        return LETTERS.index(text.upper())
    if text in {"0", "1", "2", "3"}:
        return int(text)
    raise UserError(f"{where}: answer '{text}' is not one of A-D or 0-3")


def _csv_items(path: Path) -> list[tuple[str, list[str], int, str]]:
    rows = read_csv_rows(path)
    header = [c.strip().lower() for c in rows[0][1]] if rows else []
    out = []
    if "question" in header:  # a header row: question, four choices, answer
        q = header.index("question")
        a = header.index("answer") if "answer" in header else len(header) - 1
        choice_cols = [i for i in range(len(header)) if i not in (q, a) and header[i]][:4]
        if len(choice_cols) != 4:
            raise UserError(f"{path}:1: expected four choice columns in the header")
        data = rows[1:]
    else:
        q, choice_cols, a, data = 0, [1, 2, 3, 4], 5, rows
    for line_no, row in data:
        where = f"{path}:{line_no}"
        if len(row) <= max(q, a, *choice_cols):
            raise UserError(f"{where}: expected a question, four choices and an answer, got {len(row)} fields")
        out.append((row[q], [row[i] for i in choice_cols], _answer_index(row[a], where), where))
    return out


def _jsonl_items(path: Path) -> list[tuple[str, list[str], int, str]]:
    out = []
    for line_no, row in read_jsonl(path):
        where = f"{path}:{line_no}"
        question = row.get("instruction", row.get("question"))
        if question is None:
            raise UserError(f"{where}: missing field 'instruction'")
        if "choices" in row:
            choices = list(row["choices"])
        else:
            choices = [field_of(row, f"option_{c}", where) for c in "abcd"]
        out.append((str(question), [str(c) for c in choices], _answer_index(field_of(row, "answer", where), where),
                    where))
    return out


def _subject_files(folder: Path) -> dict[str, Path]:
    files = sorted([*folder.glob("*.csv"), *folder.glob("*.jsonl"), *folder.glob("*.jsonl.gz")])
    return {_SPLIT_SUFFIX.sub("", f.name.split(".")[0]): f for f in files}


def _read(path: Path):
    return _jsonl_items(path) if ".jsonl" in path.suffixes else _csv_items(path)


def format_question(question: str, choices: list[str]) -> str:
    lines = [question.strip(), *(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))]
    return "\n".join(lines) + "\nAnswer:"


def load_mmlu(path: str | Path, shots: int = 5, name: str = "mmlu") -> MultipleChoiceTask:
    path = existing(path, name)
    if path.is_dir() and (path / "test").is_dir():
        tests, devs = _subject_files(path / "test"), _subject_files(path / "dev") if (path / "dev").is_dir() else {}
    elif path.is_dir():
        tests, devs = _subject_files(path), {}
    else:
        tests, devs = {_SPLIT_SUFFIX.sub("", path.name.split(".")[0]): path}, {}
    if not tests:
        raise UserError(f"{path}: no MMLU CSV or JSONL files found")
    samples = []
    for subject, file in sorted(tests.items()):
        header = f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"
        dev = _read(devs[subject])[:shots] if subject in devs and shots else []
        if shots and subject in devs and len(dev) < shots:
            raise UserError(f"{devs[subject]}: {len(dev)} dev rows, fewer than --shots {shots}")
        prefix = header + "".join(f"{format_question(q, c)} {LETTERS[a]}\n\n" for q, c, a, _ in dev)
        for i, (question, choices, answer, where) in enumerate(_read(file)):
            if len(choices) != 4:
                raise UserError(f"{where}: expected four choices, got {len(choices)}")
            text = format_question(question, choices)
            samples.append(Sample(id=f"{subject}/{i}", prompt=prefix + text, question=question,
                                  choices=[f" {x}" for x in LETTERS], target=answer, group=subject,
                                  meta={"shots": len(dev)}))
    return MultipleChoiceTask(name=name, samples=samples, scorer=choice_scores, info={"shots": shots})
