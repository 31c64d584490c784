"""Read training results (CSV or JSONL, any training stack) into fit points, validating every row."""

from __future__ import annotations

import math
from pathlib import Path

from scalelab.errors import UserError
from scalelab.io import read_csv_records, read_jsonl
from scalelab.scaling.fit import Points

COLUMNS = ("params", "tokens", "flops", "loss")


def _rows(path: Path) -> list[tuple[int, dict]]:
    if ".jsonl" in path.suffixes:
        return list(read_jsonl(path))
    return read_csv_records(path)[1]


def row_number(path: Path, lineno: int, row: dict, key: str, allow_inf: bool = False) -> float | None:
    """A row's number under `key` (None when empty); anything else but a finite number is named."""
    raw = row.get(key)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise UserError(f"{path}:{lineno}: '{key}' is not a number: {raw!r}") from None
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise UserError(f"{path}:{lineno}: '{key}' is {raw}")
    return value


def _number(path: Path, lineno: int, row: dict, key: str) -> float | None:
    value = row_number(path, lineno, row, key)
    if value is None:
        return None
    if value <= 0:
        raise UserError(f"{path}:{lineno}: '{key}' must be positive, got {row[key]}")
    return value


def read_points(path: str | Path, min_points: int = 4) -> Points:
    path = Path(path)
    if not path.exists():
        raise UserError(f"results file not found: {path}")
    rows = _rows(path)
    cols: dict[str, list] = {k: [] for k in COLUMNS}
    for lineno, row in rows:
        values = {k: _number(path, lineno, row, k) for k in COLUMNS}
        if values["loss"] is None:
            raise UserError(f"{path}:{lineno}: missing 'loss'")
        if sum(values[k] is not None for k in ("params", "tokens", "flops")) < 2:
            raise UserError(f"{path}:{lineno}: needs two of 'params', 'tokens', 'flops'")
        for k in COLUMNS:
            cols[k].append(values[k])
    if len(rows) < min_points:
        raise UserError(f"{path}: {len(rows)} rows; a fit needs at least {min_points}")
    present = {k: None if any(v is None for v in cols[k]) else cols[k] for k in ("params", "tokens", "flops")}
    if sum(v is not None for v in present.values()) < 2:
        raise UserError(f"{path}: two of 'params', 'tokens', 'flops' must be given on every row")
    return Points.from_columns(loss=cols["loss"], **present)
