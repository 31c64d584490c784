"""GPT-4's normalisation (report, appendix C): drop every space and symbol, keep the letters and
digits of every script, lowercased; and GPT-3's word split for n-grams.

Both sides of a check go through the same function, so an evaluation example and the corpus text
become the same bytes whatever the script. All of the text goes through `bytes.translate` (C speed),
which handles ASCII; only the runs of other characters left after it are handled one character at
a time.
"""

from __future__ import annotations

import functools
import re

import numpy as np

SEPARATOR = "\x00"  # joins documents in one block; survives as BREAK, which no pattern contains
BREAK = b"\x01"
_TABLE = bytes(ord(chr(c).lower()) if c < 128 else c for c in range(256)).replace(b"\x00", BREAK, 1)
_DELETE = bytes(c for c in range(1, 128) if not chr(c).isalnum())
_WORD = re.compile(r"[^\W_]+")


@functools.lru_cache(maxsize=1 << 16)
def _char(ch: str) -> bytes:
    return "".join(c for c in ch.lower() if c.isalnum()).encode()


@functools.lru_cache(maxsize=1 << 16)
def _run(run: bytes) -> bytes:
    return b"".join(_char(ch) for ch in run.decode("utf-8", "surrogatepass"))


def normalize(text: str) -> bytes:
    """Letters and digits of `text`, lowercased, as UTF-8; SEPARATOR becomes BREAK."""
    return normalize_utf8(text.encode("utf-8", "surrogatepass"))


def normalize_utf8(raw: bytes) -> bytes:
    """`normalize` of the text that the UTF-8 bytes `raw` encode, without decoding it first."""
    data = raw.translate(_TABLE, _DELETE)  # bytes >= 0x80 pass as they are
    if data.isascii():
        return data
    high = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) >= 0x80)
    # runs of non-ASCII bytes: whole characters, since deleting ASCII never splits a UTF-8 sequence
    cut = np.flatnonzero(np.diff(high) > 1) + 1
    edges = np.empty(2 * len(cut) + 4, dtype=np.int64)  # 0, start, end, start, end, ..., len
    edges[0], edges[-1] = 0, len(data)
    edges[1:-1:2] = high[np.concatenate([[0], cut])]
    edges[2:-1:2] = high[np.concatenate([cut - 1, [len(high) - 1]])] + 1
    bounds = edges.tolist()
    pieces = [data[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]  # ASCII, run, ASCII, ..., ASCII
    pieces[1::2] = map(_run, pieces[1::2])
    return b"".join(pieces)


def offset_map(text: str) -> np.ndarray:
    """For each byte of `normalize(text)`, the index in `text` of the character it came from."""
    if text.isascii():
        return np.flatnonzero(_ascii_keep()[np.frombuffer(text.encode(), dtype=np.uint8)])
    lengths = np.fromiter((len(_char(ch)) if ch != SEPARATOR else 1 for ch in text), dtype=np.int64, count=len(text))
    return np.repeat(np.arange(len(text)), lengths)


@functools.cache
def _ascii_keep() -> np.ndarray:
    keep = np.array([chr(c).isalnum() for c in range(128)] + [True] * 128, dtype=bool)
    keep[0] = True  # the separator
    return keep


def words(text: str) -> list[str]:
    """GPT-3's n-gram view: lowercased, punctuation stripped, split into words."""
    return _WORD.findall(text.lower())
