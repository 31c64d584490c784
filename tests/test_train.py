import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from scalelab.train import build_config, train
from scalelab.train.checkpoint import load_checkpoint
from scalelab.train.export import export_run, max_logit_difference
from scalelab.train.schedule import lr_factor

from .conftest import assert_clean_error, run_cli

SUMMARY_KEYS = {"final_train_loss", "final_eval_loss", "steps", "tokens", "flops", "params", "params_non_embedding",
                "corpus_fingerprint", "wall_seconds"}


def small_settings(corpus_dir, **extra) -> list[str]:
    base = dict(corpus=str(corpus_dir), vocab_size=300, heldout_fraction=0.1, precision="fp32", eval_tokens=4096)
    return [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in {**base, **extra}.items()]


def test_schedule_warms_up_then_ends_exactly_at_min_ratio():
    total = 201  # 20 warmup steps, then 180 decay steps
    factors = [lr_factor(s, total, 0.1, 0.1) for s in range(total)]
    assert factors[0] == pytest.approx(0.05) and factors[19] == pytest.approx(1.0)
    assert factors[20] == pytest.approx(1.0)
    assert factors[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(factors[20:], factors[21:], strict=False))
    # cosine, not linear: half-way through the decay it is half-way between peak and floor, and at a
    # quarter 0.1 + 0.45 (1 + cos(pi/4)) = 0.868 (a linear decay would give 0.775)
    assert factors[20 + 90] == pytest.approx(0.55)
    assert factors[20 + 45] == pytest.approx(0.1 + 0.45 * (1 + 2 ** -0.5))
    assert lr_factor(total + 50, total, 0.1, 0.1) == pytest.approx(0.1)  # past the end it stays at the floor
    # warmup steps are whole: 5% of 30 is 1 step, so step 0 already runs at the peak
    assert lr_factor(0, 30, 0.05, 0.2) == 1.0 and lr_factor(1, 30, 0.05, 0.2) == 1.0
    # no room to decay (warmup to the last step, or a one-step run): the last step still ends at the floor
    assert [lr_factor(s, 10, 0.95, 0.2) for s in range(10)] == pytest.approx([*(k / 9 for k in range(1, 10)), 0.2])
    assert lr_factor(0, 1, 0.0, 0.2) == 0.2 and [lr_factor(s, 2, 0.0, 0.2) for s in range(2)] == [1.0, 0.2]


def _ngram_losses(token_data) -> tuple[float, float]:
    """Held-out cross-entropy (nats/token) of add-one unigram and add-0.1 bigram models of the train split."""
    import numpy as np

    train_ids = np.asarray(token_data.tokens("train"), dtype=np.int64)
    held = np.asarray(token_data.tokens("heldout"), dtype=np.int64)
    v = token_data.vocab_size
    unigram = np.log((np.bincount(train_ids, minlength=v) + 1) / (len(train_ids) + v))
    pairs = np.zeros((v, v))
    np.add.at(pairs, (train_ids[:-1], train_ids[1:]), 1)
    bigram = np.log((pairs + 0.1) / (pairs.sum(1, keepdims=True) + 0.1 * v))
    return float(-unigram[held].mean()), float(-bigram[held[:-1], held[1:]].mean())


def test_tiny_preset_trains_and_writes_the_run_contract(tmp_path, corpus_dir, token_data):
    cfg = build_config("tiny", overrides=small_settings(corpus_dir, steps=60, eval_every=30, checkpoint_every=20))
    summary = train(cfg, tmp_path / "run", show_progress=False)
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert SUMMARY_KEYS <= on_disk.keys()
    assert on_disk["steps"] == 60 and on_disk["tokens"] == 60 * 16 * 64
    assert on_disk["flops"] == on_disk["tokens"] * on_disk["flops_per_token"]
    unigram, bigram = _ngram_losses(token_data)  # the same corpus, vocabulary and held-out split
    assert bigram < unigram
    assert summary["final_eval_loss"] < unigram  # it learned more than token frequencies
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "eval_loss" in r] == [30, 60]
    assert load_checkpoint(tmp_path / "run")["step"] == 60
    logged = [r for r in rows if "train_loss" in r]
    assert logged and all(r["tokens_per_s"] > 0 and 0 < r["mfu"] < 1 for r in logged)
    # resuming a finished run trains nothing and reports the same run: its last logged loss, its time
    elapsed = load_checkpoint(tmp_path / "run")["elapsed"]
    again = train(cfg, tmp_path / "run", resume=True, show_progress=False)
    assert again["final_train_loss"] == logged[-1]["train_loss"]
    assert again["final_eval_loss"] == summary["final_eval_loss"] and again["steps"] == 60
    assert again["wall_seconds"] >= elapsed > 0  # the time of the sessions before counts


def test_gradient_accumulation_equals_the_larger_batch(tmp_path, corpus_dir):
    """4 micro-batches of 4 sequences take the step one batch of 16 does (same windows, same mean loss)."""
    runs = {}
    for accum in (1, 4):
        cfg = build_config("tiny", overrides=small_settings(corpus_dir, steps=20, batch_size=16, grad_accum=accum,
                                                            threads=1))
        runs[accum] = train(cfg, tmp_path / f"accum{accum}", show_progress=False)
    assert runs[1]["tokens"] == runs[4]["tokens"]
    assert abs(runs[1]["final_eval_loss"] - runs[4]["final_eval_loss"]) < 1e-4
    halved = build_config("tiny", overrides=small_settings(corpus_dir, steps=20, batch_size=4, threads=1))
    assert abs(train(halved, tmp_path / "small", show_progress=False)["final_eval_loss"]
               - runs[1]["final_eval_loss"]) > 1e-3  # a smaller batch is a different run: the check can fail


def test_kill_9_then_resume_matches_an_uninterrupted_run(tmp_path, corpus_dir):
    settings = small_settings(corpus_dir, steps=150, checkpoint_every=5, threads=1)
    reference = train(build_config("tiny", overrides=settings), tmp_path / "ref", show_progress=False)
    run_dir = tmp_path / "killed"
    cmd = [sys.executable, "-m", "scalelab", "train", "--preset", "tiny", "--out", str(run_dir)]
    for s in settings:
        cmd += ["--set", s]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        state = load_checkpoint(run_dir) if (run_dir / "checkpoint.pt").exists() else None
        if state is not None and state["step"] >= 40:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(run_dir)["step"]  # loadable whenever the kill landed
    assert 0 < killed_at < 150 and not (run_dir / "summary.json").exists()
    resumed = run_cli("train", "--out", str(run_dir), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert abs(summary["final_eval_loss"] - reference["final_eval_loss"]) <= 1e-4
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in rows if "train_loss" in r]
    assert train_steps == list(range(10, 151, 10))  # rows logged after the checkpoint were rewound, none doubled


def test_divergence_stops_with_a_clear_message_and_keeps_the_good_checkpoint(tmp_path, corpus_dir):
    run_dir = tmp_path / "run"
    good = build_config("tiny", overrides=small_settings(corpus_dir, steps=20, checkpoint_every=10))
    train(good, run_dir, show_progress=False)
    before = load_checkpoint(run_dir)
    # Continue the same folder with an absurd LR: the loss must blow up and the good checkpoint stay.
    cfg = json.loads((run_dir / "config.json").read_text()) | {"lr": 1e30, "steps": 40}
    (run_dir / "config.json").write_text(json.dumps(cfg))
    proc = run_cli("train", "--out", str(run_dir), "--resume")
    assert proc.returncode == 3, proc.stderr
    assert "loss became" in proc.stderr and "Traceback" not in proc.stderr
    after = load_checkpoint(run_dir)
    assert after["step"] <= 30
    assert all(torch.isfinite(v).all() for v in after["model"].values())
    assert before["step"] == 20


@pytest.mark.parametrize("base_head_dim", [None, 32])  # 32: a fixed-head-count μP scale, folded into q
def test_export_loads_as_plain_llama_with_matching_logits(tmp_path, corpus_dir, base_head_dim):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = build_config("tiny", overrides=small_settings(corpus_dir, steps=30, base_head_dim=base_head_dim))
    train(cfg, tmp_path / "run", show_progress=False)
    proc = run_cli("export", str(tmp_path / "run"), str(tmp_path / "hf"))
    assert proc.returncode == 0, proc.stderr
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    assert type(model).__name__ == "LlamaForCausalLM"
    tokens = torch.randint(0, 300, (2, 64), generator=torch.Generator().manual_seed(0))
    assert max_logit_difference(tmp_path / "run", tmp_path / "hf", tokens) <= 1e-4
    with torch.no_grad():
        assert model(tokens).logits.std() > 0.1  # trained logits, not a zero head
    tok = AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert tok.decode(tok("return value").input_ids) == "return value"
    with pytest.raises(Exception, match="not empty"):
        export_run(tmp_path / "run", tmp_path / "hf")


def test_ddp_on_two_cpu_processes_matches_one_process(tmp_path, corpus_dir):
    settings = small_settings(corpus_dir, steps=40, threads=1, batch_size=8)
    single = train(build_config("tiny", overrides=settings), tmp_path / "one", show_progress=False)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
           "-m", "scalelab", "train", "--preset", "tiny", "--out", str(tmp_path / "two")]
    for s in settings:
        cmd += ["--set", s]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["world_size"] == 2
    assert abs(summary["final_eval_loss"] - single["final_eval_loss"]) < 2e-3


def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, corpus_dir):
    out = tmp_path / "out"
    assert_clean_error(run_cli("train", "--preset", "nope", "--out", str(out)), "unknown preset 'nope'")
    assert_clean_error(run_cli("train", "--preset", "tiny", "--out", str(out), "--set", f"corpus={tmp_path}/missing"),
                       "corpus not found")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert_clean_error(run_cli("train", "--config", str(bad), "--out", str(out)), "bad.json", "malformed")
    bad.write_text(json.dumps({"steps": 10, "d_model": "wide"}))
    assert_clean_error(run_cli("train", "--config", str(bad), "--out", str(out)), "d_model")
    assert_clean_error(run_cli("train", "--preset", "tiny", "--out", str(out),
                               *sum((["--set", s] for s in small_settings(corpus_dir, vocab_size=100)), [])),
                       "too small")
    assert not out.exists() or not any(p.name in {"summary.json", "checkpoint.pt"} for p in out.rglob("*"))
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.access(locked, os.W_OK):  # root ignores permissions; use a path under a file instead
        target = tmp_path / "afile" / "run"
        (tmp_path / "afile").write_text("")
    else:
        target = locked / "run"
    assert_clean_error(run_cli("train", "--preset", "tiny", "--out", str(target),
                               *sum((["--set", s] for s in small_settings(corpus_dir)), [])), "not writable")
