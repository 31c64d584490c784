"""Corpora streamed as blocks of a few MB, whatever their size: files (plain, .gz, .zst), folders,
JSONL with a text field, parquet and `datasets` folders, and the standard-library corpus.

Small documents are packed into one block joined by SEPARATOR; a large one is cut into blocks that
overlap by OVERLAP_CHARS, so a match is never lost at a cut (a 50-character pattern would need more
than 64 K characters of spaces and symbols inside it to span one). A large plain text file is handed
out as byte ranges (`FileSlice`) that the scanning process reads itself: no text crosses a pipe.
Offsets are UTF-8 byte offsets in the source.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from scalelab.contamination.normalize import SEPARATOR, normalize, normalize_utf8
from scalelab.data.corpus import TEXT_SUFFIXES, CorpusSpec, iter_documents, split_documents
from scalelab.errors import UserError
from scalelab.io import open_text, read_jsonl

BLOCK_CHARS = 4_000_000
OVERLAP_CHARS = 65_536
COMPRESSED = {".gz", ".zst"}


@dataclass
class Block:
    text: str = ""
    docs: list[tuple[int, str, int]] = field(default_factory=list)  # (start in block, source, byte offset there)
    new_bytes: int = 0  # bytes of text this block adds (its overlap with the previous block not counted)
    utf8: bytes | None = None  # the text as UTF-8, when it was read as such (saves encoding it again)

    def load(self) -> Block:
        """The block itself (a FileSlice reads its Block in the scanning process)."""
        return self

    def normalized(self) -> bytes:
        """The block's text through GPT-4's normalisation, from its UTF-8 bytes when it has them."""
        return normalize(self.text) if self.utf8 is None else normalize_utf8(self.utf8)

    def locate(self, index: int) -> tuple[str, int]:
        """The source and the byte offset in it of character `index` of the block."""
        start, source, offset = max((d for d in self.docs if d[0] <= index), key=lambda d: d[0])
        return source, offset + len(self.text[start:index].encode("utf-8", "surrogatepass"))


@dataclass(frozen=True)
class FileSlice:
    """Bytes [start, end) of a plain text file, read with OVERLAP_CHARS bytes before them."""

    path: str
    start: int
    end: int

    @property
    def new_bytes(self) -> int:
        return self.end - self.start

    def load(self) -> Block:
        first = max(0, self.start - OVERLAP_CHARS)
        try:
            with open(self.path, "rb") as f:
                f.seek(first)
                data = f.read(self.end - first)
        except OSError as e:
            raise UserError(f"cannot read corpus file {self.path}: {e.strerror}") from None
        skip = 0
        while skip < min(3, len(data)) and 0x80 <= data[skip] < 0xC0:  # start on a character boundary
            skip += 1
        data = data[skip:]
        docs = [(0, self.path, first + skip)]
        try:
            return Block(data.decode("utf-8"), docs, self.new_bytes, utf8=data)
        except UnicodeDecodeError as e:
            if e.reason == "unexpected end of data":  # only a character cut at the slice's end, which the
                data = data[:e.start]  # next slice's overlap holds; everything before it decoded
                return Block(data.decode("utf-8"), docs, self.new_bytes, utf8=data)
        # not UTF-8: invalid bytes replaced, and the text encoded again when normalised
        return Block(data.decode("utf-8", errors="replace"), docs, self.new_bytes)


def _kind(path: Path) -> str:
    inner = path.with_suffix("") if path.suffix in COMPRESSED else path
    return inner.suffix


def _documents(path: Path, text_field: str) -> Iterator[tuple[str, Iterator[str]]]:
    """(source, pieces of its text) for every document of one file."""
    if _kind(path) == ".jsonl":
        for line_no, row in read_jsonl(path):
            if not isinstance(row.get(text_field), str):
                raise UserError(f"{path}:{line_no}: no string field '{text_field}'")
            yield f"{path}:{line_no}", iter([row[text_field]])
    elif _kind(path) == ".parquet":
        for doc in iter_documents(CorpusSpec(str(path), text_field=text_field)):
            yield doc.source, iter([doc.text])
    else:
        f = open_text(path, errors="replace")

        def pieces() -> Iterator[str]:
            with f:
                while piece := f.read(BLOCK_CHARS):
                    yield piece

        yield str(path), pieces()


def _files(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    files = sorted(p for p in path.rglob("*") if p.is_file() and _kind(p) in TEXT_SUFFIXES | {".jsonl", ".parquet"})
    if not files:
        raise UserError(f"corpus folder {path} has no text, JSONL or parquet files")
    yield from files


def check_corpora(corpora: list[str]) -> None:
    """Fail before any scan unless every corpus is 'stdlib' or a path that exists."""
    if not corpora:
        raise UserError("give at least one --corpus")
    for corpus in corpora:
        if corpus != "stdlib" and not Path(corpus).exists():
            raise UserError(f"corpus not found: {corpus}")


def _all_documents(corpus: str, text_field: str, train_split_of: float | None = None
                   ) -> Iterator[tuple[str, Iterator[str] | None]]:
    if train_split_of is not None:  # the trainer's own training split: its documents, its held-out rule
        spec = CorpusSpec(None if corpus == "stdlib" else corpus, text_field=text_field,
                          heldout_fraction=train_split_of)
        for doc in split_documents(spec, "train"):
            yield (f"stdlib:{doc.source}" if corpus == "stdlib" else doc.source), iter([doc.text])
        return
    if corpus == "stdlib":
        for doc in iter_documents(CorpusSpec(None)):
            yield f"stdlib:{doc.source}", iter([doc.text])
        return
    path = Path(corpus)
    if not path.exists():
        raise UserError(f"corpus not found: {path}")
    if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "state.json").exists()):
        for doc in iter_documents(CorpusSpec(str(path), text_field=text_field)):
            yield doc.source, iter([doc.text])
        return
    for file in _files(path):
        if file.suffix not in COMPRESSED and _kind(file) not in (".jsonl", ".parquet") \
                and file.stat().st_size >= BLOCK_CHARS:
            yield str(file), None  # read by the scanning processes, in byte ranges
        else:
            yield from _documents(file, text_field)


def iter_blocks(corpora: list[str], text_field: str = "text", train_split_of: float | None = None
                ) -> Iterator[Block | FileSlice]:
    """Blocks of about BLOCK_CHARS characters (or file slices) covering every document of every corpus
    (only the training split the trainer makes with held-out fraction `train_split_of`, when given)."""
    block, parts, length = Block(), [], 0
    for corpus in corpora:
        for source, pieces in _guarded(corpus, text_field, train_split_of):
            if pieces is None:
                size = Path(source).stat().st_size
                yield from (FileSlice(source, i, min(size, i + BLOCK_CHARS)) for i in range(0, size, BLOCK_CHARS))
                continue
            offset, carry = 0, ""
            for piece in pieces:
                if parts and length + len(piece) > BLOCK_CHARS:
                    block.text = SEPARATOR.join(parts)
                    yield block
                    block, parts, length = Block(), [], 0
                start = length + (len(SEPARATOR) if parts else 0)
                parts.append(carry + piece)
                length = start + len(carry) + len(piece)
                piece_bytes = len(piece.encode("utf-8", "surrogatepass"))
                block.docs.append((start, source, offset - len(carry.encode("utf-8", "surrogatepass"))))
                block.new_bytes += piece_bytes
                offset += piece_bytes
                carry = piece[-OVERLAP_CHARS:]
    if parts:
        block.text = SEPARATOR.join(parts)
        yield block


def _guarded(corpus: str, text_field: str, train_split_of: float | None
             ) -> Iterator[tuple[str, Iterator[str] | None]]:
    """Documents, with read failures turned into one line naming the file and the reason."""
    documents = _all_documents(corpus, text_field, train_split_of)
    while True:
        try:
            source, pieces = next(documents)
        except StopIteration:
            return
        except (OSError, EOFError, UnicodeError, zlib.error) as e:
            raise UserError(f"cannot read corpus {corpus}: {e}") from None
        yield source, None if pieces is None else _guarded_pieces(source, pieces)


def _guarded_pieces(source: str, pieces: Iterator[str]) -> Iterator[str]:
    try:
        yield from pieces
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(f"cannot read corpus file {source}: {e}") from None
    except Exception as e:  # zstandard raises its own error type on corrupt input
        if type(e).__module__.startswith("zstandard"):
            raise UserError(f"cannot read corpus file {source}: {e}") from None
        raise
