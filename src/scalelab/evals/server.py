"""`scalelab serve`: an OpenAI-compatible HTTP server (FastAPI + uvicorn) for a local model.

/v1/models (with the precision the model runs in), /v1/completions (text or token-ID prompts,
single or batched; echo + logprobs with top_logprobs: what log-likelihood evaluation needs, ours
and lm-evaluation-harness's `local-completions`) and /v1/chat/completions (streamed as server-sent
events when asked). One model, requests serialised.

Images, for a vision-language model (/v1/models says `"image_input": true`): chat messages take
OpenAI's content parts, `{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}`
beside text parts (an http(s) URL is refused: the server fetches nothing), and /v1/completions
takes an extension field `images` (data URLs for the prompt's `<image>` markers) so echo +
logprobs scores image questions as it does text. An image sent to a text-only model is a 400.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import BaseModel, Field

from scalelab.data.images import from_data_url, to_data_url
from scalelab.errors import UserError
from scalelab.evals.backends.hf import HFBackend
from scalelab.evals.backends.vision import HFVisionBackend
from scalelab.evals.requests import Generation, cut_at_stop


class CompletionRequest(BaseModel):
    model: str | None = None
    prompt: str | list[str] | list[int] | list[list[int]]  # text or token IDs, one or a batch
    max_tokens: int = Field(16, ge=0)
    temperature: float = Field(1.0, ge=0)
    n: int = Field(1, ge=1)
    stop: str | list[str] | None = None
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=20)
    seed: int | None = None
    images: list[str] | None = None  # scalelab's extension: data URLs for the prompt's <image> markers

    def prompts(self) -> list[str | list[int]]:
        p = self.prompt
        if isinstance(p, str) or (p and all(isinstance(t, int) for t in p)):
            return [p]
        return list(p)


class ChatMessage(BaseModel):
    role: str
    content: str | list[dict[str, Any]]

    def text_and_images(self) -> tuple[str, list[str]]:
        """The message's text (parts joined) and its image URLs, in order."""
        if isinstance(self.content, str):
            return self.content, []
        texts, images = [], []
        for part in self.content:
            if part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            elif part.get("type") == "image_url":
                url = part.get("image_url")
                url = url.get("url") if isinstance(url, dict) else url
                if not isinstance(url, str):
                    raise UserError("an image_url part needs image_url.url")
                images.append(url)
            else:
                raise UserError(f"unknown content part type {part.get('type')!r}; use text or image_url")
        return "\n".join(texts), images


class ChatRequest(BaseModel):
    model: str | None = None
    messages: list[ChatMessage]
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0)
    n: int = Field(1, ge=1)
    stop: str | list[str] | None = None
    stream: bool = False
    seed: int | None = None


def _stops(stop: str | list[str] | None) -> tuple[str, ...]:
    return (stop,) if isinstance(stop, str) else tuple(stop or ())


def create_app(backend: HFBackend | HFVisionBackend, name: str):
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    app = FastAPI(title="scalelab", version="1")
    vision = isinstance(backend, HFVisionBackend)
    # Every model call runs on one thread: requests are serialised, and torch keeps one warm
    # intra-op thread pool instead of meeting a new calling thread per request (measured 40% slower).
    model_thread = ThreadPoolExecutor(1, thread_name_prefix="scalelab-model")

    def header(kind: str) -> dict[str, Any]:
        return {"id": f"{kind}-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": name}

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "scalelab",
                                            "precision": backend.precision, "image_input": vision}]}

    @app.post("/v1/completions")
    def completions(req: CompletionRequest):
        prompts = req.prompts()
        if not prompts:
            return _error("prompt is empty", "prompt")
        if req.images and not vision:
            return _error(f"model {name} is a text-only model and takes no images", "images")
        if vision:
            if not all(isinstance(p, str) for p in prompts):
                return _error("token-ID prompts are for text-only models; send text with <image> markers", "prompt")
            try:
                images = tuple(to_data_url(from_data_url(u, "images")) for u in req.images or [])
                answers = model_thread.submit(lambda: [c for p in prompts for c in _complete_vision(
                    backend, p, images, req)]).result()
            except UserError as e:
                return _error(str(e), "images")
            return {**header("cmpl"), "object": "text_completion",
                    "choices": [{"index": i, **c} for i, c in enumerate(answers)]}
        vocab = len(backend.tokenizer)
        for p in prompts:
            if not isinstance(p, str) and (not p or not all(0 <= t < vocab for t in p)):
                return _error(f"a token-ID prompt must be non-empty IDs in [0, {vocab})", "prompt")
        answers = model_thread.submit(lambda: [c for p in prompts for c in _complete(backend, p, req)]).result()
        choices = [{"index": i, **choice} for i, choice in enumerate(answers)]
        return {**header("cmpl"), "object": "text_completion", "choices": choices}

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest):
        try:
            parts = [m.text_and_images() for m in req.messages]
            images = tuple(to_data_url(from_data_url(u, "image_url")) for _, urls in parts for u in urls)
        except UserError as e:
            return _error(str(e), "messages")
        if images and not vision:
            return _error(f"model {name} is a text-only model and takes no images", "messages")
        messages = [{"role": m.role, "content": text} for m, (text, _) in zip(req.messages, parts, strict=True)]
        gen = Generation("", max_tokens=req.max_completion_tokens or req.max_tokens or 256, stop=_stops(req.stop),
                         temperature=req.temperature, n=req.n, seed=req.seed or 0)
        if vision:
            try:
                texts = model_thread.submit(backend.generate, [_vision_request(messages, images, gen)]).result()[0]
            except UserError as e:
                return _error(str(e), "messages")
            if req.stream:
                return StreamingResponse(_single_stream(texts[0], header("chatcmpl")), media_type="text/event-stream")
            return {**header("chatcmpl"), "object": "chat.completion",
                    "choices": [{"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
                                for i, t in enumerate(texts)]}
        if req.stream:
            return StreamingResponse(_stream(backend, model_thread, messages, gen, header("chatcmpl")),
                                     media_type="text/event-stream")
        texts = model_thread.submit(backend.generate_ids, backend.chat_ids(messages), gen).result()
        return {**header("chatcmpl"), "object": "chat.completion",
                "choices": [{"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
                            for i, t in enumerate(texts)]}

    return app


def _error(message: str, param: str):
    from fastapi.responses import JSONResponse

    return JSONResponse(status_code=400, content={"error": {"message": message, "type": "invalid_request_error",
                                                           "param": param, "code": None}})


def _complete(backend: HFBackend, prompt: str | list[int], req: CompletionRequest) -> list[dict[str, Any]]:
    """The choices of one prompt, as the OpenAI completions API shapes them."""
    if isinstance(prompt, str):
        enc = backend.tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets, text = enc.input_ids, [o[0] for o in enc.offset_mapping], prompt
    else:
        ids, text = prompt, backend.tokenizer.decode(prompt)
        offsets = backend.text_offsets(ids)
    keep = backend.max_length + 1  # the longest window scored whole; longer prompts lose their start
    ids, offsets = ids[-keep:], offsets[-keep:]
    echoed, following = None, None
    if req.echo and req.logprobs is not None:
        lps, tops, following = backend.prompt_logprobs(ids, req.logprobs) if ids else ([], [], None)
        echoed = {"tokens": [backend.tokenizer.decode([t]) for t in ids], "token_logprobs": lps,
                  "top_logprobs": tops, "text_offset": offsets}
    if req.max_tokens == 0:
        return [{"text": text if req.echo else "", "logprobs": echoed, "finish_reason": "length"}] * req.n
    gen = Generation(text, max_tokens=req.max_tokens, stop=_stops(req.stop), temperature=req.temperature, n=req.n,
                     seed=req.seed or 0)
    if following is not None and req.max_tokens == 1 and req.temperature == 0:
        # one greedy token (how lm-eval asks for log-likelihoods): the echo pass already predicted it
        completions = [backend.next_token(following, gen, req.logprobs)] * req.n
    else:
        completions = backend.complete([ids or [backend.prefix_token]], gen, top=req.logprobs)[0]
    start = len(text) if req.echo else 0
    out = []
    for c in completions:
        logprobs = None
        if req.logprobs is not None:
            own = {"tokens": [backend.tokenizer.decode([t]) for t in c.tokens], "token_logprobs": c.logprobs,
                   "top_logprobs": c.top_logprobs, "text_offset": [start + o for o in backend.text_offsets(c.tokens)]}
            logprobs = own if echoed is None else {k: echoed[k] + own[k] for k in own}
        out.append({"text": (text if req.echo else "") + c.text, "logprobs": logprobs,
                    "finish_reason": c.finish_reason})
    return out


def _vision_request(messages: list[dict], images: tuple[str, ...], gen: Generation) -> Generation:
    """A chat as one generation request: system, earlier turns, and the last user message with the images."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [m for m in messages if m["role"] != "system"]
    if not rest or rest[-1]["role"] != "user":
        raise UserError("the last message must be the user's")
    turns = tuple((m["role"], m["content"]) for m in rest[:-1])
    return dataclasses.replace(gen, prompt=rest[-1]["content"], system=system, turns=turns, images=images, chat=True)


def _complete_vision(backend: HFVisionBackend, prompt: str, images: tuple[str, ...],
                     req: CompletionRequest) -> list[dict[str, Any]]:
    """Completions of a VLM: echo + logprobs of the prompt's text tokens (image markers score None)
    and, past the prompt, greedy or sampled text."""
    text = prompt if prompt.count(backend.marker) == len(images) else None
    if text is None:
        raise UserError(f"the prompt has {prompt.count(backend.marker)} {backend.marker} markers for "
                        f"{len(images)} images")
    echoed = None
    if req.echo and req.logprobs is not None:
        ids, lps, offsets = backend.text_logprobs(text, images)
        echoed = {"tokens": [backend.tokenizer.decode([t]) for t in ids], "token_logprobs": lps,
                  "top_logprobs": [None] * len(ids), "text_offset": offsets}
    if req.max_tokens == 0:
        return [{"text": text if req.echo else "", "logprobs": echoed, "finish_reason": "length"}] * req.n
    gen = Generation(text, max_tokens=req.max_tokens, stop=_stops(req.stop), temperature=req.temperature, n=req.n,
                     seed=req.seed or 0, images=images)
    return [{"text": (text if req.echo else "") + t, "logprobs": echoed, "finish_reason": "stop"}
            for t in backend.generate([gen])[0]]


def _single_stream(text: str, head: dict):
    """A finished reply as server-sent events (the VLM path generates before it answers)."""
    for delta, finish in (({"role": "assistant", "content": ""}, None), ({"content": text}, None), ({}, "stop")):
        body = {**head, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta,
                                                                         "finish_reason": finish}]}
        yield f"data: {json.dumps(body)}\n\n"
    yield "data: [DONE]\n\n"


def _stream(backend: HFBackend, model_thread: ThreadPoolExecutor, messages: list[dict], gen: Generation, head: dict):
    """Server-sent events, one chunk per decoded piece as the model writes it (first choice only)."""
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(backend.tokenizer, skip_prompt=True, skip_special_tokens=True)
    one = dataclasses.replace(gen, n=1)

    model_thread.submit(backend.generate_ids, backend.chat_ids(messages), one, streamer=streamer)

    def chunk(delta: dict, finish: str | None) -> str:
        body = {**head, "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return f"data: {json.dumps(body)}\n\n"

    yield chunk({"role": "assistant", "content": ""}, None)
    text = ""
    for piece in streamer:
        kept = cut_at_stop(text + piece, gen.stop)
        if len(kept) > len(text):
            yield chunk({"content": kept[len(text):]}, None)
        if len(kept) < len(text + piece):
            break
        text = kept
    yield chunk({}, "stop")
    yield "data: [DONE]\n\n"


def listen(host: str = "127.0.0.1", port: int = 8000) -> socket.socket:
    """A listening socket, bound before any model loads, so a busy port fails at once."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise UserError(f"--host {host}: cannot resolve ({e.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    return sock


def serve(backend: HFBackend | HFVisionBackend, name: str, sock: socket.socket) -> None:
    """Serve until interrupted, on a socket from `listen`."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(create_app(backend, name), log_level="warning"))
    server.run(sockets=[sock])
