"""Text of a vision-language example: the prompt with its `<image>` marker, the answer, and the
tokenizer that reads them (byte-level BPE with `<image>` and end-of-text as special tokens).

LLaVA's layout: `<image>` stands where the image goes and is expanded to one token per patch
before the model sees it, as Llava's processor does. Loss falls on the answer tokens only.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer

from scalelab.data.corpus import Document
from scalelab.data.tokens import EOS, train_tokenizer
from scalelab.errors import UserError

IGNORE = -100
IMAGE_TOKEN = "<image>"


def prompt_text(question: str, n_images: int = 1) -> str:
    """The prompt a question is asked with; `n_images` markers first (LLaVA puts the image first)."""
    return f"{IMAGE_TOKEN}\n" * n_images + f"Question: {question}\nAnswer:"


def vlm_tokenizer(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    tok = train_tokenizer((Document(f"t{i}", t) for i, t in enumerate(texts)), vocab_size)
    tok.add_special_tokens([IMAGE_TOKEN])
    return tok


def expand_images(ids: list[int], image_id: int, n_patches: int) -> list[int]:
    """Each `<image>` id repeated once per patch."""
    out: list[int] = []
    for t in ids:
        out.extend([t] * n_patches if t == image_id else [t])
    return out


def encode(tok: Tokenizer, prompt: str, answer: str | None, n_patches: int,
           max_len: int | None = None) -> tuple[list[int], list[int]]:
    """(ids, labels) of prompt + ' answer' + EOS; labels are IGNORE except on the answer and EOS."""
    image_id = tok.token_to_id(IMAGE_TOKEN)
    ids = expand_images(tok.encode(prompt, add_special_tokens=False).ids, image_id, n_patches)
    labels = [IGNORE] * len(ids)
    if answer is not None:
        tail = tok.encode(f" {answer}", add_special_tokens=False).ids + [tok.token_to_id(EOS)]
        ids, labels = ids + tail, labels + tail
    if max_len is not None and len(ids) > max_len:
        raise UserError(f"an example of {len(ids)} tokens (image patches included) is longer than the model's "
                        f"context of {max_len}")
    return ids, labels
