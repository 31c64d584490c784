"""Multi-pattern matching over a corpus scanned once.

`SubstringIndex` finds which of many byte strings occur in a text. Every pattern of length L >= q+k-1
contains, wherever it occurs, a q-byte gram starting at a text position divisible by k; so the scan
hashes only every k-th gram of the text (k = shortest pattern - q + 1: 1/35 of the positions for
GPT-4's 50-character substrings) and looks them up among all grams of all patterns, then verifies
each candidate byte for byte. Patterns are sampled in length tiers, so that the whole-question
patterns of short questions (a fifth of MMLU's are under 50 normalised characters) need a dense
stride only over their own small, cache-resident filter; those under 12 bytes go to Aho-Corasick.
This is a sampled Rabin-Karp: measured here it scans normalised text an order of magnitude faster
than Aho-Corasick automata (ahocorasick-rs, hyperscan) over the ~40,000 overlapping 50-byte
patterns of an MMLU-sized check, whose automata stay deep in partial matches on real text.

`NgramIndex` finds GPT-3-style word 13-grams: word ids from the examples' vocabulary, rolling hashes
in numpy, membership in the examples' gram set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TIERS = ((50, 16), (24, 16), (12, 8))  # (shortest pattern, gram bytes): each tier sampled on its own
_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F], dtype=np.uint64)
CACHE_BITS = 22  # a 512 KB filter stays in cache; larger ones get one of this size in front of them
FIND_EACH = 32  # up to this many patterns under 12 bytes are found one by one (bytes.find, ~1 ms per
# 4 MB each); more share one Aho-Corasick pass (~40 ms per 4 MB of letters, whatever their number)


def _mix(first: np.ndarray, second: np.ndarray | np.uint64) -> np.ndarray:
    """One 64-bit hash from the 8-byte halves of a gram (the second is 0 for 8-byte grams)."""
    with np.errstate(over="ignore"):
        h = first * _MIX[0] + second * _MIX[1]
    return h ^ (h >> np.uint64(29))


def _words(data: np.ndarray) -> np.ndarray:
    """The little-endian 8-byte word starting at every byte of `data` (an unaligned view, no copy)."""
    return np.ndarray(shape=(max(0, len(data) - 7),), dtype="<u8", buffer=data, strides=(1,))


def _gram_hashes(data: np.ndarray, starts: np.ndarray, q: int) -> np.ndarray:
    """Hashes of the q-byte grams (q = 8 or 16) of `data` (uint8) starting at `starts`."""
    words = _words(data)
    return _mix(words[starts], words[starts + 8] if q == 16 else np.uint64(0))


def _strided_hashes(data: np.ndarray, q: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of the q-byte grams of `data` at every k-th position, and those positions: plain strided
    slices of the word view, several times faster than gathering arbitrary starts."""
    n = (len(data) - q) // k + 1
    words = _words(data)
    second = words[8:8 + n * k:k] if q == 16 else np.uint64(0)
    return _mix(words[0:n * k:k], second), np.arange(0, n * k, k)


def _bit_filter(h: np.ndarray, n_bits: int) -> np.ndarray:
    """A bit array with the bit of each hash's top `n_bits` bits set (h sorted)."""
    slot = h >> np.uint64(64 - n_bits)
    byte = slot >> np.uint64(3)
    bits = np.zeros(1 << (n_bits - 3), dtype=np.uint8)
    if len(h):  # the slots are sorted with the hashes, so each byte's bits are one run
        runs = np.flatnonzero(np.concatenate([[True], byte[1:] != byte[:-1]]))
        bits[byte[runs]] = np.bitwise_or.reduceat((1 << (slot & np.uint64(7))).astype(np.uint8), runs)
    return bits


def _in_filter(bits: np.ndarray, h: np.ndarray, n_bits: int) -> np.ndarray:
    slot = h >> np.uint64(64 - n_bits)
    return ((bits[slot >> np.uint64(3)] >> (slot & np.uint64(7)).astype(np.uint8)) & 1).view(bool)


@dataclass
class _Group:
    q: int  # gram bytes
    k: int  # text sampling stride: shortest pattern - q + 1
    hashes: np.ndarray  # sorted gram hashes of the group's patterns
    pattern: np.ndarray  # pattern id of each
    offset: np.ndarray  # where in that pattern the gram starts
    filters: list[tuple[np.ndarray, int]]  # (bits, n_bits): a cache-sized filter first, then ~1.5% full

    def candidates(self, h: np.ndarray) -> np.ndarray:
        """Indices into h that may be pattern grams (cheap bit tests; a binary search follows)."""
        (bits, n_bits), *rest = self.filters
        maybe = np.flatnonzero(_in_filter(bits, h, n_bits))
        for bits, n_bits in rest:
            maybe = maybe[_in_filter(bits, h[maybe], n_bits)]
        return maybe


class SubstringIndex:
    def __init__(self, patterns: list[bytes]):
        self.patterns = patterns
        self.max_len = max((len(p) for p in patterns), default=0)
        self.lengths = np.array([len(p) for p in patterns], dtype=np.int64)
        width = max(1, self.max_len)
        padded = b"".join(p.ljust(width, b"\x00") for p in patterns)
        self.matrix = np.frombuffer(padded, dtype=np.uint8).reshape(len(patterns), width)  # zero-padded
        self.groups = []
        upper = 1 << 62
        for low, q in TIERS:
            ids = [i for i, p in enumerate(patterns) if low <= len(p) < upper]
            if ids:
                self.groups.append(self._group(ids, q))
            upper = low
        self.tiny = [i for i, p in enumerate(patterns) if 0 < len(p) < upper]
        self.automaton = None
        if len(self.tiny) > FIND_EACH:
            import ahocorasick_rs

            self.automaton = ahocorasick_rs.BytesAhoCorasick([patterns[i] for i in self.tiny])

    def _group(self, ids: list[int], q: int) -> _Group:
        """Every q-byte gram of every pattern in `ids`, hashed in one vectorised pass."""
        data = np.frombuffer(b"".join(self.patterns[i] for i in ids), dtype=np.uint8)
        lengths = np.array([len(self.patterns[i]) for i in ids])
        n_grams = lengths - q + 1
        first = np.concatenate([[0], np.cumsum(lengths)[:-1]])  # where each pattern starts in `data`
        owners = np.repeat(np.array(ids), n_grams)
        offsets = np.arange(n_grams.sum()) - np.repeat(np.cumsum(n_grams) - n_grams, n_grams)
        h = _gram_hashes(data, np.repeat(first, n_grams) + offsets, q)
        order = np.argsort(h)
        h, owners, offsets = h[order], owners[order], offsets[order]
        full = min(max(int(np.ceil(np.log2(max(2, len(h))))) + 6, 16), 27)  # ~1.5% of its bits set
        sizes = [CACHE_BITS, full] if full > CACHE_BITS else [full]
        return _Group(q, int(lengths.min()) - q + 1, h, owners, offsets, [(_bit_filter(h, n), n) for n in sizes])

    @staticmethod
    def _pairs(starts: np.ndarray, lo: np.ndarray, hi: np.ndarray, g: _Group) -> tuple[np.ndarray, np.ndarray]:
        """Every (pattern, text position where it would begin) that a gram hit implies."""
        count = hi - lo
        which = np.repeat(np.arange(len(lo)), count)
        entry = np.repeat(lo - np.concatenate([[0], np.cumsum(count)[:-1]]), count) + np.arange(count.sum())
        return g.pattern[entry], starts[which] - g.offset[entry]

    def _verify(self, data: np.ndarray, pid: np.ndarray, begin: np.ndarray) -> tuple[list[int], list[int]]:
        """The pairs whose pattern really is at that position, compared byte for byte."""
        ok = (begin >= 0) & (begin + self.lengths[pid] <= len(data))
        pid, begin = pid[ok], begin[ok]
        if not len(pid):
            return [], []
        cols = np.arange(self.matrix.shape[1])
        window = data[np.minimum(begin[:, None] + cols, len(data) - 1)]
        same = ((window == self.matrix[pid]) | (cols >= self.lengths[pid][:, None])).all(axis=1)
        return pid[same].tolist(), begin[same].tolist()

    def find(self, text: bytes) -> dict[int, int]:
        """Pattern id -> first byte position in `text` where it occurs."""
        data = np.frombuffer(text, dtype=np.uint8)
        found: dict[int, int] = {}
        for g in self.groups:
            if len(data) < g.q:
                continue
            h, starts = _strided_hashes(data, g.q, g.k)
            maybe = g.candidates(h)
            starts, h = starts[maybe], h[maybe]
            lo = np.searchsorted(g.hashes, h, side="left")
            hi = np.searchsorted(g.hashes, h, side="right")
            pid, begin = self._pairs(starts, lo, hi, g)
            for p, b in zip(*self._verify(data, pid, begin), strict=True):
                if p not in found or b < found[p]:
                    found[p] = b
        if self.automaton is not None:
            for which, begin, _ in self.automaton.find_matches_as_indexes(text, overlapping=True):
                pid = self.tiny[which]
                if pid not in found or begin < found[pid]:
                    found[pid] = begin
        else:
            for pid in self.tiny:
                if (begin := text.find(self.patterns[pid])) >= 0:
                    found[pid] = begin
        return found


class NgramIndex:
    """Word n-grams of examples; `find(words)` -> the set of gram indices present."""

    def __init__(self, examples: list[list[str]], n: int = 13):
        self.n = n
        self.vocab: dict[str, int] = {}
        self.example_grams: list[np.ndarray] = []
        for ws in examples:
            ids = np.array([self.vocab.setdefault(w, len(self.vocab) + 1) for w in ws], dtype=np.uint64)
            self.example_grams.append(np.unique(self._hashes(ids, min(n, len(ids)))) if len(ids) else
                                      np.zeros(0, np.uint64))
        self.all_grams = np.unique(np.concatenate(self.example_grams)) if self.example_grams else np.zeros(0)
        self.lengths = sorted({min(n, len(ws)) for ws in examples if ws})

    @staticmethod
    def _hashes(ids: np.ndarray, n: int) -> np.ndarray:
        if len(ids) < n or n == 0:
            return np.zeros(0, dtype=np.uint64)
        h = np.zeros(len(ids) - n + 1, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for j in range(n):
                h = h * np.uint64(0x100000001B3) + ids[j:len(ids) - n + 1 + j]
        return h ^ np.uint64(n)

    def find(self, words: list[str]) -> np.ndarray:
        """The example grams (hashes) that occur in a run of corpus words."""
        ids = np.array([self.vocab.get(w, 0) for w in words], dtype=np.uint64)
        hits = []
        for n in self.lengths:
            h = self._hashes(ids, n)
            hits.append(h[np.isin(h, self.all_grams)])
        return np.unique(np.concatenate(hits)) if hits else np.zeros(0, np.uint64)
