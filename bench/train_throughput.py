"""Trainer throughput and MFU for d_model 256/512/768, against this machine's measured matmul peak.

Writes bench/results/train_throughput.json: rows {d_model, n_layer, tokens_per_s, achieved_flops,
peak_flops, mfu, precision}, plus the bf16 and fp32 peaks. MFU is taken against the peak (square
matmuls grown until one takes >= 1 s) of the precision the trainer picked (bf16 where bf16 matmuls
are fast, else fp32). Tokens/s is the median over the 10-step windows the trainer logs after the
first (warm-up) one: 10 windows per shape, so one slow window cannot set the figure.
Run: .venv/bin/python bench/train_throughput.py
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

import torch

from scalelab.provenance import code_version, machine
from scalelab.train import build_config, train
from scalelab.train.hardware import peak_flops, pick_device, pick_precision

SHAPES = [(256, 4), (512, 4), (768, 4)]
STEPS = 110  # 11 logged windows of 10 steps; the first is warm-up


def main() -> None:
    device = pick_device("auto")
    precision = pick_precision(device, "auto")
    peaks = {p: peak_flops(device, p, max_n=8192, min_seconds=1.0) for p in ("fp32", "bf16")}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for d_model, n_layer in SHAPES:
            cfg = build_config(overrides=[f"d_model={d_model}", f"n_layer={n_layer}", "head_dim=64", "seq_len=256",
                                          "batch_size=8", f"steps={STEPS}", "eval_tokens=512", "vocab_size=384",
                                          f"checkpoint_every={STEPS}", f"base_d_model={d_model}"])
            run = Path(tmp) / f"d{d_model}"
            summary = train(cfg, run, show_progress=False)
            logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
            steady = [r["tokens_per_s"] for r in logged if "tokens_per_s" in r][1:]  # skip the warm-up window
            tps = statistics.median(steady)
            achieved = tps * summary["flops_per_token"]
            rows.append({"d_model": d_model, "n_layer": n_layer, "tokens_per_s": tps, "windows": len(steady),
                         "tokens_per_s_range": [min(steady), max(steady)], "achieved_flops": achieved,
                         "peak_flops": peaks[precision], "mfu": achieved / peaks[precision], "precision": precision})
            print(f"d_model={d_model} n_layer={n_layer}: {tps:,.0f} tok/s, {achieved / 1e9:.1f} GFLOP/s, "
                  f"MFU {achieved / peaks[precision]:.2f} ({precision})")
    out = Path(__file__).parent / "results" / "train_throughput.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "peak_flops": peaks, "precision": precision,
                               "threads": torch.get_num_threads(), "device": str(device), "machine": machine(),
                               "code": code_version()}, indent=2) + "\n")
    print(f"peaks: fp32 {peaks['fp32'] / 1e9:.1f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s -> {out}")


if __name__ == "__main__":
    main()
