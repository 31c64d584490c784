"""Any OpenAI-compatible HTTP API, through the `openai` client.

Generation uses chat/completions for chat requests and completions for raw prompts; log-likelihood
uses completions with echo + logprobs and max_tokens 0, which only some servers support (ours,
vLLM, llama.cpp's server): the others get a clear error. The client retries 429, 5xx and timeouts
with exponential backoff. A server that reports its model's precision in /v1/models (`scalelab
serve` does) has it recorded and keyed in the response cache; others are `unknown`.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from scalelab.errors import UserError
from scalelab.evals.requests import Generation, Loglikelihood, cut_at_stop

MAX_RETRIES = 5
PARALLEL = 8


class OpenAIBackend:
    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None, timeout: float = 120):
        import openai

        self.model = model
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        key = api_key or os.environ.get("OPENAI_API_KEY") or "none"
        self.client = openai.OpenAI(base_url=self.base_url, api_key=key, max_retries=MAX_RETRIES, timeout=timeout)
        served = self._served()
        self.precision = str(served.get("precision", "unknown"))
        self.image_input = bool(served.get("image_input", False))
        self.identity = f"openai:{model}@{self.base_url}|{self.precision}"

    def _served(self) -> dict:
        """What the server says of this model in /v1/models (scalelab serve: its precision and whether it
        takes images); fails before any work when nothing answers at the base URL (a missing /models is
        fine)."""
        import openai

        try:
            listed = self.client.with_options(max_retries=1, timeout=30).models.list().data
        except openai.APIConnectionError as e:
            raise UserError(f"cannot reach {self.base_url}: {e.__cause__ or e}") from None
        except openai.APIStatusError:
            return {}
        return next((entry.model_extra or {} for entry in listed if entry.id == self.model), {})

    def _call(self, fn, **kwargs):
        import openai

        try:
            return fn(model=self.model, **kwargs)
        except openai.APIConnectionError as e:
            raise UserError(f"cannot reach {self.base_url}: {e.__cause__ or e}") from None
        except openai.AuthenticationError:
            raise UserError(f"{self.base_url} rejected the API key (set OPENAI_API_KEY or --api-key)") from None
        except (openai.NotFoundError, openai.BadRequestError) as e:
            raise UserError(f"{self.base_url} refused the request for model {self.model}: {e.message}") from None

    def _one_loglikelihood(self, r: Loglikelihood) -> float:
        extra = {}
        if r.images:
            if not self.image_input:
                raise UserError(f"{self.base_url} does not take images with log-likelihood requests (a vision model "
                                "under `scalelab serve` does)")
            extra["extra_body"] = {"images": list(r.images)}
        resp = self._call(self.client.completions.create, prompt=r.context + r.continuation, max_tokens=0,
                          echo=True, logprobs=1, temperature=0, **extra)
        lp = resp.choices[0].logprobs
        if lp is None or not lp.token_logprobs or lp.text_offset is None:
            raise UserError(f"{self.base_url} does not return prompt log-probabilities (completions with "
                            "echo=True and logprobs); log-likelihood tasks need a server that does")
        start = len(r.context.rstrip())  # trailing spaces go with the continuation, as in HFBackend
        picked = [x for off, x in zip(lp.text_offset, lp.token_logprobs, strict=True) if off >= start]
        if not picked or any(x is None for x in picked):
            raise UserError(f"{self.base_url} returned no log-probability for the continuation {r.continuation!r}")
        return float(sum(picked))

    def loglikelihood(self, requests: list[Loglikelihood]) -> list[float]:
        with ThreadPoolExecutor(PARALLEL) as pool:
            return list(pool.map(self._one_loglikelihood, requests))

    def _one_generation(self, r: Generation) -> list[str]:
        common = dict(max_tokens=r.max_tokens, temperature=r.temperature, n=r.n, seed=r.seed,
                      stop=list(r.stop)[:4] or None)
        if r.chat or r.images:
            resp = self._call(self.client.chat.completions.create, messages=_with_images(r), **common)
            texts = [c.message.content or "" for c in resp.choices]
        else:
            resp = self._call(self.client.completions.create, prompt=r.prompt, **common)
            texts = [c.text for c in resp.choices]
        return [cut_at_stop(t, r.stop) for t in texts]

    def generate(self, requests: list[Generation]) -> list[list[str]]:
        with ThreadPoolExecutor(PARALLEL) as pool:
            return list(pool.map(self._one_generation, requests))


def _with_images(r: Generation) -> list[dict]:
    """A request's chat messages, the last one with OpenAI's image_url parts before its text (the
    prompt's own `<image>` markers dropped: the parts say where the images go)."""
    messages = r.messages()
    if r.images:
        text = r.prompt.replace("<image>\n", "").replace("<image>", "")
        messages[-1] = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": u}} for u in r.images]
                        + [{"type": "text", "text": text}]}
    return messages
