"""Files in and out, with one error path each way.

Out: outputs are checked before any work (`check_output_dir`, `check_output_file`) and written
atomically, so a reader sees the old file or the new one, never half of one, and a failed
command leaves what existed as it was.
In: every reader turns what can go wrong with a file (missing, unreadable, not UTF-8, a
truncated .gz or .zst, malformed CSV, JSON or YAML) into one `UserError` naming the file.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from scalelab.errors import UserError

_NOT_FILES = ("/proc", "/sys", "/dev")  # kernel views: nothing scalelab writes belongs there


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success fsync it and rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_atomic(path: str | Path, write: Callable[[Path], Any]) -> None:
    with atomic_path(path) as tmp:
        write(tmp)


def write_json(path: str | Path, obj: Any) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, default=float) + "\n"))


def _writable_place(path: Path, what: str) -> None:
    if any(path == Path(p) or Path(p) in path.parents for p in _NOT_FILES):
        raise UserError(f"{what} {path} is not writable: {path.parents[-2]} holds no files")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if existing != path and not existing.is_dir():
        raise UserError(f"{what} {path} is not writable: {existing} is a file")
    if not os.access(existing, os.W_OK | (os.X_OK if existing.is_dir() else 0)):
        raise UserError(f"{what} {path} is not writable: permission denied on {existing}")


def check_output_dir(directory: str | Path) -> Path:
    """Fail early, creating nothing, unless `directory` exists writable or could be created."""
    directory = Path(directory).absolute()
    if directory.exists() and not directory.is_dir():
        raise UserError(f"output folder {directory} is a file")
    _writable_place(directory, "output folder")
    return directory


def check_output_file(path: str | Path) -> Path:
    """Fail early, creating nothing, unless `path` can be written as a file (atomically, beside itself)."""
    path = Path(path).absolute()
    if path.is_dir():
        raise UserError(f"output file {path} is a folder")
    _writable_place(path, "output file")
    if path.exists() and not os.access(path.parent, os.W_OK | os.X_OK):
        raise UserError(f"output file {path} is not writable: permission denied on {path.parent}")
    return path


def cache_root() -> Path:
    """Where scalelab keeps what it can rebuild: token caches, converted models, eval responses."""
    return Path(os.environ.get("SCALELAB_CACHE", Path.home() / ".cache" / "scalelab"))


def open_text(path: Path, errors: str = "strict"):
    """A UTF-8 text file, decompressed on the fly when it ends in .gz or .zst."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors=errors)
    if path.suffix == ".zst":
        import zstandard

        return io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(open(path, "rb")), encoding="utf-8",
                                errors=errors)
    return open(path, encoding="utf-8", errors=errors)


def _read_errors() -> tuple[type[BaseException], ...]:
    import zstandard

    # EOFError: a truncated .gz (never let it pass for Ctrl-D); csv.Error: NUL bytes, fields over the limit
    return OSError, UnicodeDecodeError, EOFError, zstandard.ZstdError, csv.Error


@contextmanager
def reading(path: Path) -> Iterator[None]:
    """Any failure to read `path` as a file becomes one UserError naming it."""
    try:
        yield
    except _read_errors() as e:
        if isinstance(e, UnicodeDecodeError):
            reason = f"not UTF-8 text (byte {e.start})"
        elif isinstance(e, EOFError):
            reason = "the compressed file is truncated"
        elif isinstance(e, OSError) and e.strerror:
            reason = e.strerror
        else:
            reason = " ".join(str(e).split()) or type(e).__name__
        raise UserError(f"{path}: cannot read ({reason})") from None


def read_text(path: str | Path) -> str:
    """A whole text file (.gz/.zst too)."""
    path = Path(path)
    with reading(path), open_text(path) as f:
        return f.read()


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line; a bad line is named by file and line."""
    with reading(path), open_text(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{line_no}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise UserError(f"{path}:{line_no}: expected a JSON object")
            yield line_no, row


def read_json(path: str | Path) -> Any:
    """A JSON file (.gz/.zst too)."""
    path = Path(path)
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None


def read_json_list(path: Path) -> list:
    """A JSON file holding a list (.gz/.zst too); anything else is named as the problem."""
    data = read_json(path)
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a JSON list")
    return data


def read_json_object(path: str | Path) -> dict:
    """A JSON file holding an object."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")
    return data


def read_yaml(path: str | Path) -> Any:
    """A YAML file; a syntax error is one line with its position."""
    import yaml

    path = Path(path)
    text = read_text(path)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(e, "problem", None) or str(e)
        raise UserError(f"{where}: not valid YAML ({' '.join(str(problem).split())})") from None


def read_csv_rows(path: str | Path) -> list[tuple[int, list[str]]]:
    """(line number, fields) for each non-empty row of a CSV file (.gz/.zst too)."""
    path = Path(path)
    with reading(path), open_text(path) as f:
        reader = csv.reader(f)
        return [(reader.line_num, row) for row in reader if row]


def read_csv_records(path: str | Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and (line number, {column: value}) rows of a CSV file with a header row.

    A header that names a column twice is an error, not a silent choice of one of them.
    """
    rows = read_csv_rows(path)
    if not rows:
        raise UserError(f"{path}: empty CSV file")
    (_, header), body = rows[0], rows[1:]
    names = [h.strip() for h in header]
    twice = sorted({n for n in names if n and names.count(n) > 1})
    if twice:
        raise UserError(f"{path}:1: column '{twice[0]}' appears more than once in the header")
    return names, [(n, dict(zip(names, row, strict=False))) for n, row in body]
