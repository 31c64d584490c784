"""Byte-level BPE tokenizer training and tokens stored as numpy memmaps.

Prepared data is cached by content: the key is the corpus fingerprint plus the tokenizer
settings, so every run of a ladder shares one tokenizer and one encoded corpus.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from scalelab.data.corpus import CorpusSpec, Document, split_documents
from scalelab.errors import UserError
from scalelab.io import atomic_path, cache_root, write_json
from scalelab.progress import progress

EOS = "<|endoftext|>"
MIN_VOCAB = 257  # 256 bytes + the end-of-text token
ENCODE_BATCH = 256  # documents per encode call: bounds memory whatever the corpus size
FORMAT_VERSION = 1


def fingerprint(docs: Iterable[Document]) -> tuple[str, int, int]:
    """sha256 over every document's name and text; also the document and byte counts."""
    h, n_docs, n_bytes = hashlib.sha256(), 0, 0
    for doc in docs:
        data = doc.text.encode("utf-8", errors="replace")
        h.update(doc.source.encode() + b"\0" + data + b"\0")
        n_docs, n_bytes = n_docs + 1, n_bytes + len(data)
    return h.hexdigest(), n_docs, n_bytes


def train_tokenizer(docs: Iterable[Document], vocab_size: int) -> Tokenizer:
    if vocab_size < MIN_VOCAB:
        raise UserError(f"vocab_size={vocab_size} is too small: byte-level BPE needs at least {MIN_VOCAB}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator((d.text for d in docs), trainer=trainer)
    return tok


def _batches(docs: Iterable[Document], size: int) -> Iterator[list[Document]]:
    it = iter(docs)
    while batch := list(islice(it, size)):
        yield batch


def encode_to_file(tok: Tokenizer, docs: Iterable[Document], path: Path, dtype: np.dtype,
                   total_bytes: int, label: str) -> int:
    """Stream-encode documents, each followed by EOS, into a flat binary token file."""
    eos = tok.token_to_id(EOS)
    n_tokens = 0
    with atomic_path(path) as tmp, open(tmp, "wb") as out, progress() as bar:
        task = bar.add_task(f"encode {label}", total=total_bytes)
        for batch in _batches(docs, ENCODE_BATCH):
            for enc in tok.encode_batch([d.text for d in batch]):
                ids = np.asarray(enc.ids + [eos], dtype=dtype)
                out.write(ids.tobytes())
                n_tokens += ids.size
            bar.advance(task, sum(len(d.text.encode("utf-8", errors="replace")) for d in batch))
    return n_tokens


@dataclass(frozen=True)
class TokenData:
    """A prepared corpus: tokenizer.json, train.bin, heldout.bin and meta.json in one folder."""

    root: Path

    @property
    def meta(self) -> dict:
        return json.loads((self.root / "meta.json").read_text())

    @property
    def tokenizer_path(self) -> Path:
        return self.root / "tokenizer.json"

    @property
    def vocab_size(self) -> int:
        return self.meta["vocab_size"]

    def tokens(self, split: str) -> np.ndarray:
        meta = self.meta
        return np.memmap(self.root / f"{split}.bin", dtype=meta["dtype"], mode="r")


def prepare(spec: CorpusSpec, vocab_size: int, cache: Path | None = None) -> TokenData:
    """Fingerprint the corpus; train the tokenizer and encode it unless the cache has it."""
    if vocab_size < MIN_VOCAB:
        raise UserError(f"vocab_size={vocab_size} is too small: byte-level BPE needs at least {MIN_VOCAB}")
    train_fp, n_train, train_bytes = fingerprint(split_documents(spec, "train"))
    heldout_fp, n_heldout, heldout_bytes = fingerprint(split_documents(spec, "heldout"))
    if n_train == 0 or train_bytes == 0:
        raise UserError(f"corpus {spec.name} has no training text")
    if n_heldout == 0:
        raise UserError(f"corpus {spec.name} has no held-out documents; raise heldout_fraction or add files")
    key = hashlib.sha256(f"{FORMAT_VERSION}:{train_fp}:{heldout_fp}:{vocab_size}".encode()).hexdigest()[:16]
    root = (cache or cache_root()) / "tokens" / key
    if (root / "meta.json").exists():
        return TokenData(root)
    root.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer(split_documents(spec, "train"), vocab_size)
    dtype = np.dtype(np.uint16 if tok.get_vocab_size() <= 2**16 else np.uint32)
    with atomic_path(root / "tokenizer.json") as tmp:
        tok.save(str(tmp))
    counts = {split: encode_to_file(tok, split_documents(spec, split), root / f"{split}.bin", dtype, nbytes, split)
              for split, nbytes in (("train", train_bytes), ("heldout", heldout_bytes))}
    write_json(root / "meta.json", {
        "corpus": spec.name,
        "vocab_size": tok.get_vocab_size(),
        "dtype": dtype.name,
        "train_fingerprint": train_fp,
        "heldout_fingerprint": heldout_fp,
        "train_documents": n_train,
        "heldout_documents": n_heldout,
        "train_bytes": train_bytes,
        "heldout_bytes": heldout_bytes,
        "train_tokens": counts["train"],
        "heldout_tokens": counts["heldout"],
    })
    return TokenData(root)
