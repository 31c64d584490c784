"""The training loop: one recipe for every run, from a smoke test to a forecast target.

A run folder holds `config.json`, `checkpoint.pt` (latest, written atomically),
`metrics.jsonl` (one JSON object per logged step or eval) and, when finished, `summary.json`.
Data order is a pure function of (seed, step), so a resumed run sees exactly the batches an
uninterrupted one would.
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from rich.progress import TextColumn

from scalelab.data.tokens import TokenData, prepare
from scalelab.errors import UserError
from scalelab.io import check_output_dir, write_atomic, write_json
from scalelab.model import GPT, count_params, train_flops_per_token
from scalelab.progress import progress
from scalelab.train.checkpoint import load_checkpoint, save_checkpoint
from scalelab.train.config import TrainConfig, validate_config
from scalelab.train.hardware import peak_flops, pick_device, pick_precision
from scalelab.train.schedule import lr_factor
from scalelab.train.tracking import Tracker

LOG_EVERY = 10


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def batch_windows(seed: int, step: int, n_tokens: int, batch_size: int, seq_len: int) -> np.ndarray:
    """Start offsets of the step's random windows: a function of (seed, step) alone."""
    rng = np.random.default_rng([seed, step])
    return rng.integers(0, n_tokens - seq_len - 1, size=batch_size)


def gather_windows(tokens: np.ndarray, starts: np.ndarray, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    rows = np.stack([tokens[s : s + seq_len + 1] for s in starts]).astype(np.int64)
    t = torch.from_numpy(rows)
    return t[:, :-1], t[:, 1:]


class _Dist:
    """Rank bookkeeping; a single process is rank 0 of 1."""

    def __init__(self, device_kind: str) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def mean(self, value: float) -> float:
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return t.item() / self.world


@torch.no_grad()
def evaluate(model: GPT, tokens: np.ndarray, cfg: TrainConfig, device: torch.device, autocast,
             world: int = 1, rank: int = 0, batch_size: int = 32) -> float:
    """Mean next-token loss (nats) on evenly spaced held-out windows, the same every call."""
    n_windows = max(1, cfg.eval_tokens // cfg.seq_len)
    starts = np.linspace(0, len(tokens) - cfg.seq_len - 1, n_windows).astype(np.int64)[rank::world]
    total, count = 0.0, 0
    model.eval()
    for i in range(0, len(starts), batch_size):
        x, y = gather_windows(tokens, starts[i : i + batch_size], cfg.seq_len)
        with autocast():
            loss = model.loss(x.to(device), y.to(device))
        total += loss.item() * y.numel()
        count += y.numel()
    model.train()
    if world > 1:
        t = torch.tensor([total, count], dtype=torch.float64)
        dist.all_reduce(t)
        total, count = t.tolist()
    return total / count


def _autocast_factory(device: torch.device, precision: str):
    if precision == "bf16":
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext


def _saved_config(cfg: TrainConfig, run_dir: Path, resume: bool) -> TrainConfig:
    """On resume the saved config wins, so a run cannot silently change; a fresh run needs a free folder."""
    saved = run_dir / "config.json"
    if resume:
        if not saved.exists():
            raise UserError(f"--resume: {run_dir} holds no run (no config.json)")
        return validate_config(json.loads(saved.read_text()), source=str(saved))
    if saved.exists():
        raise UserError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    return cfg


def _rewind_metrics(path: Path, step: int) -> None:
    """Drop metric rows logged after the checkpoint we resume from."""
    if not path.exists():
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    write_atomic(path, lambda tmp: tmp.write_text("".join(line + "\n" for line in keep)))


def train(cfg: TrainConfig, run_dir: str | Path, resume: bool = False, show_progress: bool = True,
          data: TokenData | None = None) -> dict:
    """Train one run into `run_dir` and return its summary (also written to summary.json).

    Bad input (corpus, settings, folder) is reported before anything is written. `data` lets a
    caller that trains many runs on one corpus prepare it once.
    """
    run_dir = Path(run_dir)
    check_output_dir(run_dir)
    cfg = _saved_config(cfg, run_dir, resume)
    device = pick_device(cfg.device)
    ranks = _Dist(device.type)
    if device.type == "cuda":
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    else:
        torch.set_num_threads(cfg.threads or max(1, (os.cpu_count() or 1) // ranks.world))
    data = data or _prepare_data_once(cfg, ranks)
    if min(data.meta["train_tokens"], data.meta["heldout_tokens"]) <= cfg.seq_len + 1:
        raise UserError(f"corpus {cfg.corpus_spec.name} is too small for seq_len={cfg.seq_len}")
    if ranks.main and not resume:
        write_json(run_dir / "config.json", cfg.model_dump())
    ranks.barrier()
    summary = _Loop(cfg, run_dir, data, device, ranks, show_progress and ranks.main).run()
    ranks.barrier()
    return summary


def _prepare_data_once(cfg: TrainConfig, ranks: _Dist) -> TokenData:
    if ranks.main:
        data = prepare(cfg.corpus_spec, cfg.vocab_size)
    ranks.barrier()
    return data if ranks.main else prepare(cfg.corpus_spec, cfg.vocab_size)


class _Loop:
    def __init__(self, cfg: TrainConfig, run_dir: Path, data: TokenData, device: torch.device,
                 ranks: _Dist, show_progress: bool) -> None:
        self.cfg, self.run_dir, self.data, self.device, self.ranks = cfg, run_dir, data, device, ranks
        self.show_progress = show_progress
        self.precision = pick_precision(device, cfg.precision)
        self.autocast = _autocast_factory(device, self.precision)
        self.model_cfg = cfg.model_config_for(data.vocab_size)
        torch.manual_seed(cfg.seed)
        self.model = GPT(self.model_cfg).to(device)
        self.optimizer = torch.optim.AdamW(
            self.model.param_groups(cfg.lr, cfg.weight_decay), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
            fused=device.type == "cuda",
        )
        self.train_model = self.model
        if ranks.world > 1:
            self.train_model = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None)
        use_compile = cfg.compile == "on" or (cfg.compile == "auto" and device.type == "cuda")
        self.step_model = torch.compile(self.train_model) if use_compile else self.train_model
        self.train_tokens = data.tokens("train")
        self.heldout_tokens = data.tokens("heldout")
        self.flops_per_token = train_flops_per_token(self.model_cfg)
        self.tokens_per_step = cfg.batch_size * cfg.seq_len
        self.metrics_path = run_dir / "metrics.jsonl"

    def _restore(self) -> tuple[int, float]:
        state = load_checkpoint(self.run_dir, map_location=str(self.device))
        if state is None:
            return 0, 0.0
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ranks.main:
            _rewind_metrics(self.metrics_path, state["step"])
        return state["step"], state["elapsed"]

    def _checkpoint(self, step: int, elapsed: float) -> None:
        if self.ranks.main:
            save_checkpoint(self.run_dir, {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                                           "step": step, "elapsed": elapsed, "config": self.cfg.model_dump()})
        self.ranks.barrier()

    def _log(self, row: dict) -> None:
        if self.ranks.main:
            with open(self.metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")
            self.tracker.log(row)

    def _train_step(self, step: int) -> float:
        cfg, ranks = self.cfg, self.ranks
        factor = lr_factor(step, cfg.total_steps, cfg.warmup_fraction, cfg.min_lr_ratio)
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr * group["lr_scale"] * factor
        starts = batch_windows(cfg.seed, step, len(self.train_tokens), cfg.batch_size, cfg.seq_len)
        local = starts[ranks.rank :: ranks.world]
        micro = np.array_split(local, cfg.grad_accum)
        total = 0.0
        for i, chunk in enumerate(micro):
            x, y = gather_windows(self.train_tokens, chunk, cfg.seq_len)
            sync = i == len(micro) - 1 or ranks.world == 1
            ctx = nullcontext() if sync else self.train_model.no_sync()
            with ctx:
                with self.autocast():
                    logits = self.step_model(x.to(self.device, non_blocking=True))
                    loss = torch.nn.functional.cross_entropy(
                        logits.float().view(-1, logits.shape[-1]), y.to(self.device).reshape(-1))
                (loss * len(chunk) / len(local)).backward()
            total += loss.item() * len(chunk) / len(local)
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return ranks.mean(total)

    def _eval(self) -> float:
        return evaluate(self.model, self.heldout_tokens, self.cfg, self.device, self.autocast,
                        self.ranks.world, self.ranks.rank)

    def run(self) -> dict:
        cfg = self.cfg
        total_steps = cfg.total_steps
        step, elapsed = self._restore()
        if self.ranks.main:
            self.tracker = Tracker(self.run_dir, cfg.model_dump(), step, cfg.wandb_project, cfg.wandb_group)
        peak = peak_flops(self.device, self.precision)
        recent: list[float] = []
        start = time.perf_counter() - elapsed
        window_start, window_tokens = time.perf_counter(), 0
        bar = progress(TextColumn("loss {task.fields[loss]:.3f}"), TextColumn("{task.fields[tps]:,.0f} tok/s"),
                       TextColumn("MFU {task.fields[mfu]:.2f}"))
        with bar if self.show_progress else nullcontext():
            task = bar.add_task("train", total=total_steps, completed=step, loss=float("nan"), tps=0.0, mfu=0.0)
            while step < total_steps:
                loss = self._train_step(step)
                if not math.isfinite(loss):
                    raise TrainingDiverged(
                        f"loss became {loss} at step {step}; stopped, last good checkpoint kept in {self.run_dir}")
                step += 1
                recent = (recent + [loss])[-LOG_EVERY:]
                window_tokens += self.tokens_per_step
                if step % LOG_EVERY == 0 or step == total_steps:
                    now = time.perf_counter()
                    tps = window_tokens / max(now - window_start, 1e-9)
                    window_start, window_tokens = now, 0
                    mfu = tps * self.flops_per_token / peak
                    self._log({"step": step, "train_loss": loss, "lr_factor": lr_factor(
                        step - 1, total_steps, cfg.warmup_fraction, cfg.min_lr_ratio), "tokens_per_s": tps, "mfu": mfu})
                    bar.update(task, completed=step, loss=loss, tps=tps, mfu=mfu)
                if cfg.eval_every and step % cfg.eval_every == 0 and step < total_steps:
                    self._log({"step": step, "eval_loss": self._eval()})
                if step % cfg.checkpoint_every == 0 or step == total_steps:
                    self._checkpoint(step, time.perf_counter() - start)
        if not recent:  # resumed a finished run: nothing trained in this process
            recent = [row["train_loss"] for row in _read_metrics(self.metrics_path) if "train_loss" in row][-1:]
        eval_loss = self._eval()
        if not math.isfinite(eval_loss):
            raise TrainingDiverged(f"held-out loss is {eval_loss}; the run in {self.run_dir} diverged")
        wall = time.perf_counter() - start
        self._log({"step": step, "eval_loss": eval_loss})
        params = count_params(self.model_cfg)
        tokens = total_steps * self.tokens_per_step
        meta = self.data.meta
        summary = {
            "final_train_loss": float(np.mean(recent)) if recent else float("nan"),
            "final_eval_loss": eval_loss,
            "steps": total_steps,
            "tokens": tokens,
            "flops": tokens * self.flops_per_token,
            "flops_per_token": self.flops_per_token,
            "params": params.total,
            "params_non_embedding": params.non_embedding,
            "corpus": meta["corpus"],
            "corpus_fingerprint": meta["train_fingerprint"],
            "heldout_fingerprint": meta["heldout_fingerprint"],
            "vocab_size": meta["vocab_size"],
            "wall_seconds": wall,
            "tokens_per_s": tokens / wall,
            "precision": self.precision,
            "device": str(self.device),
            "world_size": self.ranks.world,
            "tokenizer": str(self.data.tokenizer_path),
        }
        if self.ranks.main:
            write_json(self.run_dir / "summary.json", summary)
            self.tracker.close(summary)
        return summary


def _read_metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
