"""Text encodings an attack may hide a request in, each with the decoding a judge reads the reply through.

A model asked in base64 may answer in base64: the reply is decoded before judging (and a canary is
looked for in every decoding), so an answer is never counted as safe only because it was encoded.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re

LEET = str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7", "A": "4", "E": "3", "I": "1",
                      "O": "0", "S": "5", "T": "7"})
UNLEET = str.maketrans({"4": "a", "3": "e", "1": "i", "0": "o", "5": "s", "7": "t", "@": "a", "$": "s"})
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{8,}={0,2}")


def to_base64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


def from_base64(text: str) -> str:
    """Every run of base64 in `text` decoded where it decodes to UTF-8 text; other text kept as is."""
    def decode(m: re.Match) -> str:
        run = m.group(0)
        try:
            return base64.b64decode(run + "=" * (-len(run) % 4), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return run
    return _BASE64_RUN.sub(decode, text)


def rot13(text: str) -> str:
    return codecs.encode(text, "rot13")


def to_leet(text: str) -> str:
    return text.translate(LEET)


def from_leet(text: str) -> str:
    return text.translate(UNLEET)


DECODERS = {"base64": from_base64, "rot13": rot13, "leetspeak": from_leet}


def all_readings(text: str) -> dict[str, str]:
    """The text as written and through every decoding (what a canary check searches)."""
    return {"plain": text, **{name: decode(text) for name, decode in DECODERS.items()}}
