"""Text corpora: the embedded standard-library default and the user's own files.

A corpus is a stream of documents, each with a `source` name. The train / held-out split is a
pure function of that name, so it is deterministic and never mixes a document into both.
For the default corpus the unit is a source file, so the held-out part is a codebase the
model never trained on (as GPT-4 measured loss on a held-out codebase).
"""

from __future__ import annotations

import hashlib
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from scalelab.errors import UserError
from scalelab.io import read_jsonl

TEXT_SUFFIXES = {".txt", ".md", ".py", ".rst", ".text", ".json", ".c", ".h"}
CHUNK_CHARS = 16_384  # a plain text file is split into chunks of about this size


@dataclass(frozen=True)
class Document:
    source: str
    text: str


@dataclass(frozen=True)
class CorpusSpec:
    """Where the text comes from. `path=None` means the standard-library corpus."""

    path: str | None = None
    glob: str = "**/*"
    text_field: str = "text"
    heldout_fraction: float = 0.05

    @property
    def name(self) -> str:
        return self.path or "stdlib"


def is_heldout(source: str, fraction: float) -> bool:
    digest = hashlib.sha256(source.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _stdlib_documents() -> Iterator[Document]:
    root = stdlib_root()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] in {"site-packages", "dist-packages"}:
            continue
        yield Document(rel.as_posix(), path.read_text(encoding="utf-8", errors="replace"))


def _chunks(source: str, text: str) -> Iterator[Document]:
    """Split a long text at line boundaries so a single file still yields a held-out part."""
    start, n = 0, 0
    while start < len(text):
        end = text.find("\n", start + CHUNK_CHARS)
        end = len(text) if end == -1 else end + 1
        yield Document(f"{source}#{n}", text[start:end])
        start, n = end, n + 1


def _jsonl_documents(path: Path, field: str) -> Iterator[Document]:
    for lineno, row in read_jsonl(path):
        if not isinstance(row.get(field), str):
            raise UserError(f"{path}:{lineno}: no string field '{field}'")
        yield Document(f"{path.name}:{lineno}", row[field])


def _table_documents(rows: Iterator[dict], name: str, field: str) -> Iterator[Document]:
    for i, row in enumerate(rows):
        if not isinstance(row.get(field), str):
            raise UserError(f"{name}: row {i} has no string field '{field}'")
        yield Document(f"{name}:{i}", row[field])


def _file_documents(path: Path, field: str) -> Iterator[Document]:
    if path.suffix == ".jsonl":
        yield from _jsonl_documents(path, field)
    elif path.suffix == ".parquet":
        import pyarrow as pa  # optional: comes with `datasets`
        import pyarrow.parquet as pq

        try:
            names = pq.read_schema(path).names
        except (OSError, pa.ArrowException) as e:
            raise UserError(f"{path}: cannot read as parquet ({' '.join(str(e).split())})") from None
        if field not in names:
            raise UserError(f"{path}: no column '{field}' (columns: {', '.join(names)}); set text_field")
        table = pq.read_table(path, columns=[field])
        yield from _table_documents(iter(table.to_pylist()), path.name, field)
    else:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            raise UserError(f"cannot read corpus file {path}: {e.strerror}") from None
        yield from _chunks(path.name, text)


def iter_documents(spec: CorpusSpec) -> Iterator[Document]:
    """Every document of the corpus, in a fixed order."""
    if spec.path is None:
        yield from _stdlib_documents()
        return
    path = Path(spec.path)
    if not path.exists():
        raise UserError(f"corpus not found: {path}")
    if path.is_file():
        yield from _file_documents(path, spec.text_field)
    elif (path / "dataset_info.json").exists() or (path / "state.json").exists():
        import datasets  # a local `save_to_disk` folder

        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            ds = ds["train"] if "train" in ds else next(iter(ds.values()))
        yield from _table_documents(iter(ds), path.name, spec.text_field)
    else:
        files = sorted(p for p in path.glob(spec.glob) if p.is_file()
                       and (p.suffix in TEXT_SUFFIXES | {".jsonl", ".parquet"}))
        if not files:
            raise UserError(f"corpus folder {path} has no text files matching '{spec.glob}'")
        for f in files:
            for doc in _file_documents(f, spec.text_field):
                yield Document(f"{f.relative_to(path).as_posix()}:{doc.source}", doc.text)


def split_documents(spec: CorpusSpec, split: str) -> Iterator[Document]:
    """The documents of one split, 'train' or 'heldout'."""
    want_heldout = split == "heldout"
    for doc in iter_documents(spec):
        if is_heldout(doc.source, spec.heldout_fraction) == want_heldout:
            yield doc
