"""How far the scoring paths drift apart, in each precision: SmolLM2-135M-Instruct on MMLU k-shot.

For fp32 and bf16, the same items are scored four ways: in-process (shared-prefix KV cache,
batched: the default path), in-process without the prefix cache, in-process one row per forward
pass, and over HTTP through `scalelab serve` (the OpenAI-compatible client, echo + logprobs).
Each path is compared with the default one: the largest log-likelihood difference, and how many
items get another choice. Writes bench/results/precision_drift.json.
Run: .venv/bin/python bench/precision_drift.py --mmlu DIR [--items 40] [--shots 1] [--precisions fp32 bf16]
(bf16 on a CPU without AVX512-BF16 or AMX runs ~100x slower: `--precisions fp32` there.)
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from scalelab.evals import evaluate, load_backend, load_task
from scalelab.evals.backends import hf as hf_backend
from scalelab.provenance import code_version, machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scores(backend, task, tmp: Path, name: str) -> tuple[np.ndarray, float, float]:
    """Log-likelihoods (items x choices), accuracy and seconds of one evaluation."""
    start = time.perf_counter()
    result = evaluate(backend, [task], tmp / name, name, cache_path=tmp / f"{name}.sqlite", show_progress=False)
    seconds = time.perf_counter() - start
    rows = [json.loads(x) for x in (tmp / name / "samples_mmlu.jsonl").read_text().splitlines()]
    return np.array([r["loglikelihoods"] for r in rows]), result["tasks"]["mmlu"]["metrics"]["acc"]["value"], seconds


def _served(precision: str):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "scalelab", "serve", "smollm2", "--port", str(port),
                             "--precision", precision], stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5)
            return proc, f"openai:smollm2@http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("scalelab serve did not start")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mmlu", type=Path, required=True, help="folder with dev/ and test/ CSVs")
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "precision_drift.json")
    args = parser.parse_args()
    task = load_task("mmlu", {"mmlu": str(args.mmlu)}, shots=args.shots, limit=args.items)
    out: dict = {"n_items": len(task.samples), "shots": args.shots, "model": "SmolLM2-135M-Instruct (Q4_1 GGUF)",
                 "machine": machine(), "code": code_version(), "precisions": {}}
    defaults = {}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for precision in args.precisions:
            backend = load_backend("smollm2", precision=precision)
            paths = {"in-process": _scores(backend, task, tmp, f"{precision}-default")}
            hf_backend.MIN_SHARED, saved = 10**9, hf_backend.MIN_SHARED
            paths["no prefix cache"] = _scores(backend, task, tmp, f"{precision}-noprefix")
            hf_backend.BATCH_TOKENS, saved_batch = 1, hf_backend.BATCH_TOKENS
            paths["batch 1"] = _scores(backend, task, tmp, f"{precision}-batch1")
            hf_backend.MIN_SHARED, hf_backend.BATCH_TOKENS = saved, saved_batch
            del backend
            proc, spec = _served(precision)
            try:
                paths["http"] = _scores(load_backend(spec), task, tmp, f"{precision}-http")
            finally:
                proc.terminate()
                proc.wait(30)
            base = paths["in-process"][0]
            defaults[precision] = base
            out["precisions"][precision] = {name: {
                "max_abs_loglikelihood_difference": float(np.max(np.abs(ll - base))),
                "choices_different": int(np.sum(ll.argmax(1) != base.argmax(1))), "acc": acc, "seconds": seconds}
                for name, (ll, acc, seconds) in paths.items()}
            print(precision, json.dumps(out["precisions"][precision], indent=1), flush=True)
    if len(defaults) == 2:
        fp32, bf16 = defaults["fp32"], defaults["bf16"]
        out["bf16_vs_fp32"] = {"max_abs_loglikelihood_difference": float(np.max(np.abs(bf16 - fp32))),
                               "choices_different": int(np.sum(bf16.argmax(1) != fp32.argmax(1)))}
        print(json.dumps(out["bf16_vs_fp32"]))
    args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
