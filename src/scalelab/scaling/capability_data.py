"""Capability results of any training stack, read into ladders: rows of our own, or lm-eval's files.

Three inputs, told apart by their columns:
- per-model rows (CSV or JSONL): `task`, `accuracy`, optional `task_loss`, `chance`, `ceiling` (a
  perfect model's accuracy, when known: the sigmoid's top, else fitted), `n_items`, and two of
  `params`, `tokens`, `flops`;
- per-problem rows: `task`, `problem`, `passes` and `samples` (or `log_pass_rate`), and the size;
- a CSV mapping lm-evaluation-harness output to sizes: `results` (a `results*.json`, relative to
  the CSV) or `model` (matched against the `results*.json` files under the CSV's folder: their
  `model_name`, `pretrained=` argument or folder name), and the size. Accuracy is `acc` (else
  `acc_norm`); task loss the mean NLL of the gold choice from `samples_TASK_*.jsonl` beside the
  results when lm-eval logged samples, else `bits_per_byte` or the log of a perplexity.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from scalelab.errors import UserError
from scalelab.io import read_csv_records, read_json_object, read_jsonl
from scalelab.scaling.capability import MIN_RUNGS, PassRateLadder, TaskLadder
from scalelab.scaling.fit import Points
from scalelab.scaling.points import row_number

SIZE = ("params", "tokens", "flops")


def _rows(path: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    if ".jsonl" in path.suffixes:
        rows = list(read_jsonl(path))
        return sorted({k for _, r in rows for k in r}), rows
    return read_csv_records(path)


def _float(path: Path, lineno: int, row: dict, key: str) -> float | None:
    return row_number(path, lineno, row, key, allow_inf=key == "log_pass_rate")


def _size(path: Path, lineno: int, row: dict) -> tuple[float, float, float]:
    values = {k: _float(path, lineno, row, k) for k in SIZE}
    for k, v in values.items():
        if v is not None and v <= 0:
            raise UserError(f"{path}:{lineno}: '{k}' must be positive, got {row[k]}")
    n, d, c = values["params"], values["tokens"], values["flops"]
    if sum(v is not None for v in (n, d, c)) < 2:
        raise UserError(f"{path}:{lineno}: needs two of 'params', 'tokens', 'flops'")
    if c is None:
        c = 6 * n * d
    elif n is None:
        n = c / (6 * d)
    elif d is None:
        d = c / (6 * n)
    return n, d, c


def _text(path: Path, lineno: int, row: dict, key: str) -> str:
    value = row.get(key)
    if value is None or str(value).strip() == "":
        raise UserError(f"{path}:{lineno}: missing '{key}'")
    return str(value).strip()


def _check_rungs(path: Path, counts: dict[str, int]) -> None:
    for task, n in counts.items():
        if n < MIN_RUNGS:
            raise UserError(f"{path}: task '{task}' has {n} rung(s); a fit needs at least {MIN_RUNGS}")


def _task_ladders(path: Path, rows: list[tuple[int, dict]], chances: dict[str, float]) -> dict[str, TaskLadder]:
    by_task: dict[str, list] = defaultdict(list)
    chance: dict[str, float] = {}
    ceiling: dict[str, float] = {}
    for lineno, row in rows:
        task = _text(path, lineno, row, "task")
        acc = _float(path, lineno, row, "accuracy")
        if acc is None:
            raise UserError(f"{path}:{lineno}: missing 'accuracy'")
        if not 0 <= acc <= 1:
            raise UserError(f"{path}:{lineno}: 'accuracy' must be between 0 and 1, got {row['accuracy']}")
        loss = _float(path, lineno, row, "task_loss")
        if loss is not None and loss <= 0:
            raise UserError(f"{path}:{lineno}: 'task_loss' must be positive (lower is better), got {row['task_loss']}")
        c = _float(path, lineno, row, "chance")
        if c is None:
            c = chances.get(task)
        elif task in chances and chances[task] != c:
            raise UserError(f"{path}:{lineno}: task '{task}' has chance {c} here, but --chance says {chances[task]}")
        if c is not None:
            if not 0 <= c < 1:
                raise UserError(f"{path}:{lineno}: 'chance' must be in [0, 1), got {row['chance']}")
            if chance.setdefault(task, c) != c:
                raise UserError(f"{path}:{lineno}: task '{task}' has chance {c} here and {chance[task]} before")
        top = _float(path, lineno, row, "ceiling")
        if top is not None:
            if not chance.get(task, 0.0) < top <= 1:
                raise UserError(f"{path}:{lineno}: 'ceiling' must be above chance and at most 1, got {row['ceiling']}")
            if ceiling.setdefault(task, top) != top:
                raise UserError(f"{path}:{lineno}: task '{task}' has ceiling {top} here and {ceiling[task]} before")
        n_items = _float(path, lineno, row, "n_items")
        if n_items is not None and (n_items < 1 or n_items != int(n_items)):
            raise UserError(f"{path}:{lineno}: 'n_items' must be a positive whole number, got {row['n_items']}")
        by_task[task].append((*_size(path, lineno, row), loss, acc, n_items))
    _check_rungs(path, {t: len(r) for t, r in by_task.items()})
    unknown = sorted(set(chances) - set(by_task))
    if unknown:
        raise UserError(f"--chance {unknown[0]}: {path} has no task of that name")
    for task, top in ceiling.items():
        if top <= chance.get(task, 0.0):
            raise UserError(f"{path}: task '{task}' has ceiling {top}, not above its chance {chance[task]}")
    ladders = {}
    for task, entries in by_task.items():
        n, d, c, loss, acc, items = zip(*entries, strict=True)
        ladders[task] = TaskLadder(
            task, Points(np.array(n), np.array(d), np.array(c), np.array([np.nan if v is None else v for v in loss])),
            np.array(acc), chance.get(task, 0.0), None if None in items else np.array(items, float), ceiling.get(task))
    return ladders


def _log_pass_rate(path: Path, lineno: int, row: dict) -> float:
    given = _float(path, lineno, row, "log_pass_rate")
    if given is not None:
        if given > 0:
            raise UserError(f"{path}:{lineno}: 'log_pass_rate' must be <= 0 (a pass rate is at most 1), got {given}")
        return given
    passes, samples = _float(path, lineno, row, "passes"), _float(path, lineno, row, "samples")
    if passes is None or samples is None:
        raise UserError(f"{path}:{lineno}: needs 'passes' and 'samples' (or 'log_pass_rate')")
    if passes < 0 or samples < 1 or passes != int(passes) or samples != int(samples):
        raise UserError(f"{path}:{lineno}: 'passes' and 'samples' must be whole numbers, samples at least 1")
    if passes > samples:
        raise UserError(f"{path}:{lineno}: passes ({passes:g}) > samples ({samples:g})")
    return math.log(passes / samples) if passes else -math.inf


def _passrate_ladders(path: Path, rows: list[tuple[int, dict]]) -> dict[str, PassRateLadder]:
    """One model per size (or per `model` value), each with a log pass rate on every problem of its task."""
    cells: dict[str, dict[tuple, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    sizes: dict[tuple, tuple] = {}
    for lineno, row in rows:
        task, problem = _text(path, lineno, row, "task"), _text(path, lineno, row, "problem")
        size = _size(path, lineno, row)
        model = (row.get("model") or None, size)
        sizes[model] = size
        if problem in cells[task][model]:
            raise UserError(f"{path}:{lineno}: problem '{problem}' of task '{task}' appears twice for one model")
        cells[task][model][problem] = _log_pass_rate(path, lineno, row)
    _check_rungs(path, {t: len(m) for t, m in cells.items()})
    ladders = {}
    for task, models in cells.items():
        problems = sorted({p for per in models.values() for p in per})
        for model, per in models.items():
            missing = [p for p in problems if p not in per]
            if missing:
                raise UserError(f"{path}: task '{task}': the model of size {sizes[model]} has no row for problem "
                                f"'{missing[0]}'")
        order = sorted(models, key=lambda m: sizes[m][2])
        n, d, c = (np.array(v) for v in zip(*(sizes[m] for m in order), strict=True))
        log_pass = np.array([[models[m][p] for p in problems] for m in order])
        ladders[task] = PassRateLadder(task, Points(n, d, c, np.full(len(order), np.nan)), log_pass, tuple(problems))
    return ladders


# --- lm-evaluation-harness output -------------------------------------------------------------------


def _metric(metrics: dict, name: str) -> float | None:
    for key in (name, f"{name},none"):
        value = metrics.get(key)
        if isinstance(value, int | float) and math.isfinite(value):
            return float(value)
    return None


def _samples_loss(results_file: Path, task: str) -> tuple[float | None, float | None, int | None]:
    """Mean NLL of the gold choice, chance (1 / choices) and item count from lm-eval's logged samples."""
    stem = results_file.stem.removeprefix("results")
    files = sorted(results_file.parent.glob(f"samples_{task}{stem}.jsonl")) \
        or sorted(results_file.parent.glob(f"samples_{task}_*.jsonl"))
    if not files:
        return None, None, None
    nll, choices = [], []
    for lineno, sample in read_jsonl(files[-1]):
        try:
            resps = sample["filtered_resps"]
            gold = int(sample["target"])
            logliks = [float(r[0] if isinstance(r, list | tuple) else str(r).strip("()[]").split(",")[0])
                       for r in resps]
            nll.append(-logliks[gold])
            choices.append(len(logliks))
        except (KeyError, ValueError, IndexError, TypeError):
            raise UserError(f"{files[-1]}:{lineno}: not a multiple-choice sample with 'target' and "
                            "'filtered_resps' log-likelihoods") from None
    return float(np.mean(nll)), float(np.mean([1 / k for k in choices])), len(nll)


def _items_from_stderr(acc: float, stderr: float | None) -> int | None:
    """The item count behind an accuracy from lm-eval's standard error, sqrt(p(1-p)/(n-1)): files written
    before lm-eval logged `n-samples` still say how noisy each accuracy is."""
    if not stderr or not 0 < acc < 1:
        return None
    return round(acc * (1 - acc) / stderr**2) + 1


def _lm_eval_names(results_file: Path, data: dict) -> set[str]:
    names = {results_file.parent.name}
    for key in ("model_name", "model_name_sanitized"):
        if isinstance(data.get(key), str):
            names.add(data[key])
    args = (data.get("config") or {}).get("model_args")
    if isinstance(args, str):
        for part in args.split(","):
            k, _, v = part.partition("=")
            if k.strip() == "pretrained":
                names.add(v.strip())
    elif isinstance(args, dict) and isinstance(args.get("pretrained"), str):
        names.add(args["pretrained"])
    return names


def _lm_eval_rows(path: Path, rows: list[tuple[int, dict]]) -> list[tuple[int, dict]]:
    """Per-model rows from lm-eval results files named (or matched by model) in the mapping CSV."""
    found = None
    out = []
    for lineno, row in rows:
        size = dict(zip(SIZE, _size(path, lineno, row), strict=True))
        if row.get("results"):
            results_file = (path.parent / row["results"]).resolve()
            if not results_file.is_file():
                raise UserError(f"{path}:{lineno}: results file not found: {results_file}")
            data = read_json_object(results_file)
        else:
            model = _text(path, lineno, row, "model")
            if found is None:
                found = [(f, read_json_object(f)) for f in sorted(path.parent.rglob("results*.json"))]
            matches = [(f, d) for f, d in found if model in _lm_eval_names(f, d)]
            if not matches:
                raise UserError(f"{path}:{lineno}: no results*.json under {path.parent} is for model '{model}'")
            results_file, data = matches[-1]  # lm-eval names files by date: the last is the newest
        results = data.get("results")
        if not isinstance(results, dict) or not results:
            raise UserError(f"{results_file}: no 'results' object (is it lm-eval output?)")
        for task, metrics in results.items():
            acc = _metric(metrics, "acc")
            acc = _metric(metrics, "acc_norm") if acc is None else acc
            if acc is None:
                continue
            loss, chance, n_items = _samples_loss(results_file, task)
            if loss is None:
                loss = _metric(metrics, "bits_per_byte")
            if loss is None:  # "ppl": lm-eval before 0.4 (lambada_openai's perplexity of the last word)
                ppl = _metric(metrics, "perplexity") or _metric(metrics, "ppl") or _metric(metrics, "word_perplexity")
                loss = math.log(ppl) if ppl else None
            n_items = n_items or ((data.get("n-samples") or {}).get(task) or {}).get("effective") \
                or _items_from_stderr(acc, _metric(metrics, "acc_stderr" if _metric(metrics, "acc") is not None
                                                   else "acc_norm_stderr"))
            out.append((lineno, {"task": task, "accuracy": acc, "task_loss": loss, "chance": chance,
                                 "n_items": n_items, **size}))
    if not out:
        raise UserError(f"{path}: the lm-eval results it names hold no task with 'acc' or 'acc_norm'")
    return out


def read_capabilities(path: str | Path, chances: dict[str, float] | None = None
                      ) -> tuple[str, dict[str, TaskLadder | PassRateLadder]]:
    """("tasks" | "passrate", {task: ladder}) from a rows file or an lm-eval mapping CSV; `chances` gives a
    task's chance accuracy where its rows do not (lm-eval files without logged samples)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"results file not found: {path}")
    header, rows = _rows(path)
    if not rows:
        raise UserError(f"{path}: no rows")
    if "problem" in header:
        return "passrate", _passrate_ladders(path, rows)
    if "task" not in header and ("results" in header or "model" in header):
        return "tasks", _task_ladders(path, _lm_eval_rows(path, rows), chances or {})
    return "tasks", _task_ladders(path, rows, chances or {})
