"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

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


def check_writable(directory: str | Path) -> Path:
    """Fail early, creating nothing, unless `directory` exists writable or could be created."""
    directory = Path(directory).absolute()
    existing = directory
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"output folder {directory} is not writable: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"output folder {directory} is not writable: permission denied on {existing}")
    return directory


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


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line; a bad line is named by file and line."""
    try:
        with open_text(path) as f:
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
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read ({e})") from None


def read_json_list(path: Path) -> list:
    """A JSON file holding a list (.gz/.zst too); anything else is named as the problem."""
    try:
        with open_text(path) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read as JSON ({e})") from None
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a JSON list")
    return data
