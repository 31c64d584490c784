"""Which evaluation examples appear in the training corpora: GPT-4's substring method or GPT-3's
13-gram overlap, one pass over the corpora for all examples, on every core.

gpt4 (GPT-4 report, appendix C): both sides normalised (letters and digits of every script,
lowercased); three seeded random 50-character substrings of each example's question (the whole of
it when shorter); contaminated if any occurs in the corpus.
ngram (GPT-3, appendix C): lowercased words without punctuation; an example's overlap is the share
of its 13-grams found (all of its words as one gram when it has fewer); contaminated when the
overlap reaches `threshold` (default: any).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from scalelab.contamination.matcher import NgramIndex, SubstringIndex
from scalelab.contamination.normalize import SEPARATOR, normalize, offset_map, words
from scalelab.contamination.sources import Block, FileSlice, check_corpora, iter_blocks
from scalelab.errors import UserError
from scalelab.progress import progress

SUBSTRINGS = 3
LENGTH = 50
SNIPPET = 120


@dataclass(frozen=True)
class Example:
    task: str
    id: str
    text: str  # the question or context: the only part checked, as GPT-4 did


def substrings(text: str, seed: int, key: str, n: int = SUBSTRINGS, length: int = LENGTH) -> list[bytes]:
    """`n` random `length`-character substrings of the normalised text (all of it when shorter),
    seeded by the run's seed and the example's key, so they do not depend on the order of examples."""
    norm = normalize(text).decode()
    if len(norm) <= length:
        return [norm.encode()] if norm else []
    span = len(norm) - length + 1
    starts = [int.from_bytes(hashlib.sha256(f"{seed}:{key}:{j}".encode()).digest()[:8], "little") % span
              for j in range(n)]
    return [norm[s:s + length].encode() for s in starts]


# --- worker side: one index per process, built once ---------------------------------------------

_index: Any = None


def _init(method: str, payload: Any) -> None:
    global _index
    _index = SubstringIndex(payload) if method == "gpt4" else NgramIndex(payload)


def _scan_substrings(item: Block | FileSlice) -> tuple[int, list[tuple[int, str, int, str]]]:
    block = item.load()
    found = _index.find(block.normalized())
    hits = []
    if found:
        where = offset_map(block.text)
        for pid, pos in found.items():
            char = int(where[pos])
            source, offset = block.locate(char)
            hits.append((pid, source, offset, block.text[char:char + SNIPPET].split(SEPARATOR)[0]))
    return block.new_bytes, hits


def _scan_ngrams(item: Block | FileSlice) -> tuple[int, list[tuple[int, str, int | None, str]]]:
    block = item.load()
    hits = []
    for start, source, _ in block.docs:
        end = block.text.find(SEPARATOR, start)
        part = block.text[start:end if end >= 0 else len(block.text)]
        for h in _index.find(words(part)):
            hits.append((int(h), source, None, ""))
    return block.new_bytes, hits


# --- the check ---------------------------------------------------------------------------------


def check(examples: list[Example], corpora: list[str], method: str = "gpt4", seed: int = 0,
          threshold: float = 0.0, jobs: int | None = None, text_field: str = "text",
          show_progress: bool = True, train_split_of: float | None = None) -> dict[str, Any]:
    """Scan the corpora once for all examples; the contamination.json structure. With
    `train_split_of`, only the training split the trainer makes at that held-out fraction is scanned."""
    if method not in ("gpt4", "ngram"):
        raise UserError(f"unknown method '{method}'; use gpt4 or ngram")
    check_corpora(corpora)
    jobs = jobs or min(2, os.cpu_count() or 1)
    start = time.perf_counter()
    if method == "gpt4":
        owners, patterns = [], []
        for i, ex in enumerate(examples):
            for p in substrings(ex.text, seed, f"{ex.task}/{ex.id}"):
                owners.append(i)
                patterns.append(p)
        payload, scan = patterns, _scan_substrings
    else:
        example_words = [words(ex.text) for ex in examples]
        payload, scan = example_words, _scan_ngrams
    first_hit: dict[int, tuple[str, int | None, str]] = {}  # example -> where (gpt4)
    gram_source: dict[int, str] = {}  # gram hash -> the first document holding it (ngram)
    scanned = 0
    with progress(disable=not show_progress) as bar, \
            ProcessPoolExecutor(jobs, initializer=_init, initargs=(method, payload)) as pool:
        job = bar.add_task("scan corpus (MB)", total=None)
        in_flight: deque = deque()  # a few blocks ahead of the workers: memory stays bounded

        def collect() -> None:
            nonlocal scanned
            n_bytes, hits = in_flight.popleft().result()
            scanned += n_bytes
            bar.advance(job, n_bytes / 1e6)
            for key, source, offset, snippet in hits:
                if method == "gpt4":
                    first_hit.setdefault(owners[key], (source, offset, snippet))
                else:
                    gram_source.setdefault(key, source)

        for block in iter_blocks(corpora, text_field, train_split_of):
            in_flight.append(pool.submit(scan, block))
            if len(in_flight) > 2 * jobs:
                collect()
        while in_flight:
            collect()
        if scanned == 0:
            raise UserError(f"the corpus is empty: {', '.join(corpora)}")
    tasks: dict[str, Any] = {}
    if method == "ngram":
        index = NgramIndex(payload)
        found = np.fromiter(gram_source, dtype=np.uint64, count=len(gram_source))
    for i, ex in enumerate(examples):
        entry = tasks.setdefault(ex.task, {"n": 0, "n_contaminated": 0, "fraction": 0.0, "contaminated": []})
        entry["n"] += 1
        if method == "gpt4":
            hit = first_hit.get(i)
            overlap = None
        else:
            grams = index.example_grams[i]
            present = grams[np.isin(grams, found)]
            overlap = len(present) / len(grams) if len(grams) else 0.0
            hit = (gram_source[int(present[0])], None, "") if overlap > 0 and overlap >= threshold else None
        if hit is None:
            continue
        source, offset, snippet = hit
        row = {"id": ex.id, "snippet": snippet or ex.text[:SNIPPET], "source": source or None, "offset": offset}
        if overlap is not None:
            row["overlap"] = overlap
        entry["contaminated"].append(row)
        entry["n_contaminated"] += 1
    for entry in tasks.values():
        entry["fraction"] = entry["n_contaminated"] / entry["n"] if entry["n"] else 0.0
    out = {"method": method, "bytes_scanned": scanned, "seconds": time.perf_counter() - start,
           "corpora": corpora, "seed": seed, "tasks": tasks}
    if train_split_of is not None:
        out["split"] = {"name": "train", "heldout_fraction": train_split_of}
    if method == "ngram":
        out["threshold"] = threshold
    return out
