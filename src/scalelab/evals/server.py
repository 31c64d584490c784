"""`scalelab serve`: an OpenAI-compatible HTTP server (FastAPI + uvicorn) for a local model.

/v1/models, /v1/completions (with echo + logprobs: what log-likelihood evaluation needs) and
/v1/chat/completions (streamed as server-sent events when asked). One model, requests serialised.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from typing import Any

from pydantic import BaseModel, Field

from scalelab.evals.backends.hf import HFBackend
from scalelab.evals.requests import Generation, cut_at_stop


class CompletionRequest(BaseModel):
    model: str | None = None
    prompt: str | list[str]
    max_tokens: int = Field(16, ge=0)
    temperature: float = Field(1.0, ge=0)
    n: int = Field(1, ge=1)
    stop: str | list[str] | None = None
    echo: bool = False
    logprobs: int | None = None
    seed: int | None = None


class ChatMessage(BaseModel):
    role: str
    content: str


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


def create_app(backend: HFBackend, name: str):
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    app = FastAPI(title="scalelab", version="1")
    lock = threading.Lock()

    def header(kind: str) -> dict[str, Any]:
        return {"id": f"{kind}-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": name}

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "scalelab"}]}

    @app.post("/v1/completions")
    def completions(req: CompletionRequest) -> dict:
        prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        choices = []
        with lock:
            for prompt in prompts:
                logprobs = None
                if req.echo and req.logprobs is not None:
                    ids, lps, offsets = backend.token_logprobs(prompt)
                    logprobs = {"tokens": [backend.tokenizer.decode([t]) for t in ids], "token_logprobs": lps,
                                "top_logprobs": None, "text_offset": offsets}
                texts = [""] * req.n
                if req.max_tokens > 0:
                    gen = Generation(prompt, max_tokens=req.max_tokens, stop=_stops(req.stop),
                                     temperature=req.temperature, n=req.n, seed=req.seed or 0)
                    texts = backend.generate_ids(backend.prompt_ids(gen), gen)
                for text in texts:
                    choices.append({"index": len(choices), "text": (prompt if req.echo else "") + text,
                                    "logprobs": logprobs, "finish_reason": "stop" if req.max_tokens else "length"})
        return {**header("cmpl"), "object": "text_completion", "choices": choices}

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest):
        messages = [m.model_dump() for m in req.messages]
        gen = Generation("", max_tokens=req.max_completion_tokens or req.max_tokens or 256, stop=_stops(req.stop),
                         temperature=req.temperature, n=req.n, seed=req.seed or 0)
        if req.stream:
            return StreamingResponse(_stream(backend, lock, messages, gen, header("chatcmpl")),
                                     media_type="text/event-stream")
        with lock:
            texts = backend.generate_ids(backend.chat_ids(messages), gen)
        return {**header("chatcmpl"), "object": "chat.completion",
                "choices": [{"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
                            for i, t in enumerate(texts)]}

    return app


def _stream(backend: HFBackend, lock: threading.Lock, messages: list[dict], gen: Generation, head: dict):
    """Server-sent events, one chunk per decoded piece as the model writes it (first choice only)."""
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(backend.tokenizer, skip_prompt=True, skip_special_tokens=True)
    one = dataclasses.replace(gen, n=1)

    def work() -> None:
        with lock:
            backend.generate_ids(backend.chat_ids(messages), one, streamer=streamer)

    threading.Thread(target=work, daemon=True).start()

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


def serve(backend: HFBackend, name: str, host: str = "127.0.0.1", port: int = 8000) -> None:
    import uvicorn

    uvicorn.run(create_app(backend, name), host=host, port=port, log_level="warning")
