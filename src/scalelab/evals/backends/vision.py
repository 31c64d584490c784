"""Hugging Face vision-to-text models as a backend: log-likelihoods and generation with images.

Any folder `AutoModelForImageTextToText` and `AutoProcessor` load (our exported VLM runs are
`LlavaForConditionalGeneration`). A request's images (PNG data URLs) go where its text's `<image>`
markers stand, one marker per image (a prompt without markers gets them first, LLaVA's layout).
Log-likelihood: the text (context + continuation) is tokenised whole and the tokens starting at
or after the end of the context are scored, the same split the HTTP path makes from offsets, so
in-process and served scores agree. lm-evaluation-harness cannot do this with images.
"""

from __future__ import annotations

from pathlib import Path

import torch

from scalelab.data.images import from_data_url
from scalelab.errors import UserError
from scalelab.evals.requests import Generation, Loglikelihood, cut_at_stop
from scalelab.train.hardware import pick_device, scoring_precision


def is_vision_folder(folder: str | Path) -> bool:
    """Whether a Hugging Face folder holds a model that takes images (its config has a vision part)."""
    import json

    path = Path(folder) / "config.json"
    return path.exists() and "vision_config" in json.loads(path.read_text())


def place_markers(text: str, n_images: int, marker: str, where: str = "prompt") -> str:
    """`text` with one marker per image: as written when it has exactly that many, with the markers
    put first when it has none; any other count is an error."""
    found = text.count(marker)
    if found == n_images:
        return text
    if found == 0:
        return f"{marker}\n" * n_images + text
    raise UserError(f"{where}: {found} {marker} markers for {n_images} images")


class HFVisionBackend:
    """A transformers image-text-to-text model, in fp32 unless bf16 is asked for."""

    takes_images = True

    def __init__(self, folder: str | Path, identity: str, device: str = "auto", precision: str = "auto"):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        folder = Path(folder)
        self.device = pick_device(device)
        self.precision = scoring_precision(precision)
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        self.processor = AutoProcessor.from_pretrained(folder)
        self.tokenizer = self.processor.tokenizer
        self.marker = getattr(self.processor, "image_token", None) or "<image>"
        self.model = AutoModelForImageTextToText.from_pretrained(folder, dtype=dtype).to(self.device).eval()
        self.identity = f"{identity}|{self.precision}"

    def _inputs(self, text: str, images: tuple[str, ...]) -> dict:
        pictures = [from_data_url(u, "image") for u in images]
        kwargs = {"images": pictures} if pictures else {}
        return self.processor(text=[text], return_tensors="pt", **kwargs)

    @torch.inference_mode()
    def text_logprobs(self, text: str, images: tuple[str, ...]) -> tuple[list[int], list[float | None], list[int]]:
        """The text's tokens (image markers unexpanded), each one's log-probability given everything
        before it (None for the first and for markers) and its character offset in `text`."""
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc.input_ids, [o[0] for o in enc.offset_mapping]
        inputs = self._inputs(text, images)
        expanded = inputs["input_ids"][0].tolist()
        logits = self.model(**{k: v.to(self.device) for k, v in inputs.items()}).logits[0]
        logprobs = torch.log_softmax(logits.float(), -1).cpu()
        marker_id = self.tokenizer.convert_tokens_to_ids(self.marker)
        # walk the expanded sequence beside the text's tokens: each marker became a run of image tokens
        out: list[float | None] = []
        j = 0
        for t in ids:
            if t == marker_id:
                while j < len(expanded) and expanded[j] == marker_id:
                    j += 1
                out.append(None)
                continue
            if expanded[j] != t:
                raise UserError("the processor's tokens do not follow the tokenizer's; cannot score this text")
            out.append(None if j == 0 else float(logprobs[j - 1, t]))
            j += 1
        return ids, out, offsets

    def loglikelihood(self, requests: list[Loglikelihood]) -> list[float]:
        out = []
        for r in requests:
            context = place_markers(r.context, len(r.images), self.marker)
            _, lps, offsets = self.text_logprobs(context + r.continuation, r.images)
            start = len(context.rstrip())  # trailing spaces go with the continuation, as in HFBackend
            picked = [lp for lp, o in zip(lps, offsets, strict=True) if o >= start]
            if not picked or any(lp is None for lp in picked):
                raise UserError(f"nothing to score in the continuation {r.continuation!r}")
            out.append(float(sum(picked)))
        return out

    def prompt_text(self, request: Generation) -> str:
        """The prompt as the model reads it: through the chat template where the processor has one."""
        if request.chat and getattr(self.processor, "chat_template", None):
            content = [{"type": "image"} for _ in request.images] + [{"type": "text", "text": request.prompt}]
            head = [{"role": "system", "content": [{"type": "text", "text": request.system}]}] if request.system \
                else []
            turns = [{"role": r, "content": [{"type": "text", "text": c}]} for r, c in request.turns]
            return self.processor.apply_chat_template(head + turns + [{"role": "user", "content": content}],
                                                      add_generation_prompt=True)
        parts = [request.system, *(c for _, c in request.turns), request.prompt] if request.chat else [request.prompt]
        return place_markers("\n\n".join(p for p in parts if p), len(request.images), self.marker)

    @torch.inference_mode()
    def generate(self, requests: list[Generation]) -> list[list[str]]:
        out = []
        for r in requests:
            inputs = {k: v.to(self.device) for k, v in self._inputs(self.prompt_text(r), r.images).items()}
            sample = r.temperature > 0
            torch.manual_seed(r.seed)
            eos = self.tokenizer.eos_token_id
            generated = self.model.generate(
                **inputs, max_new_tokens=r.max_tokens, do_sample=sample, temperature=r.temperature if sample else None,
                top_p=None, top_k=None, num_return_sequences=r.n, pad_token_id=eos, eos_token_id=eos)
            width = inputs["input_ids"].shape[1]
            texts = self.tokenizer.batch_decode(generated[:, width:], skip_special_tokens=True)
            out.append([cut_at_stop(t, r.stop) for t in texts])
        return out
