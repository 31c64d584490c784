"""Corpus to tokens: documents, a deterministic held-out split, BPE and memmapped tokens."""

from scalelab.data.corpus import CorpusSpec, Document, iter_documents, split_documents
from scalelab.data.tokens import EOS, TokenData, prepare

__all__ = ["EOS", "CorpusSpec", "Document", "TokenData", "iter_documents", "prepare", "split_documents"]
