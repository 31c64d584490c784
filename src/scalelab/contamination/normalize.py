"""GPT-4's normalisation (report, appendix C): drop every space and symbol, keep the letters and
digits of every script, lowercased; and GPT-3's word split for n-grams.

Both sides of a check go through the same function, so an evaluation example and the corpus text
become the same bytes whatever the script. ASCII runs go through `bytes.translate` (C speed);
only runs of other characters are handled one character at a time.
"""

from __future__ import annotations

import functools
import re

import numpy as np

SEPARATOR = "\x00"  # joins documents in one block; survives as BREAK, which no pattern contains
BREAK = b"\x01"
_TABLE = bytes(ord(chr(c).lower()) if c < 128 else c for c in range(256)).replace(b"\x00", BREAK, 1)
_DELETE = bytes(c for c in range(1, 128) if not chr(c).isalnum())
_NON_ASCII_RUN = re.compile(rb"([\x80-\xff]+)")
_WORD = re.compile(r"[^\W_]+")


@functools.lru_cache(maxsize=1 << 16)
def _char(ch: str) -> bytes:
    return "".join(c for c in ch.lower() if c.isalnum()).encode()


def _run(run: bytes) -> bytes:
    return b"".join(_char(ch) for ch in run.decode("utf-8", "surrogatepass"))


def normalize(text: str) -> bytes:
    """Letters and digits of `text`, lowercased, as UTF-8; SEPARATOR becomes BREAK."""
    data = text.encode("utf-8", "surrogatepass")
    if text.isascii():
        return data.translate(_TABLE, _DELETE)
    parts = _NON_ASCII_RUN.split(data)  # ASCII, non-ASCII, ASCII, ...
    return b"".join(p.translate(_TABLE, _DELETE) if i % 2 == 0 else _run(p) for i, p in enumerate(parts))


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
