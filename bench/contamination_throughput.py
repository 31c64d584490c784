"""Contamination scan throughput: corpus MB/s against an MMLU-sized task (14,042 examples), 2 cores.

Generates its own corpus (word salad from a fixed vocabulary, with 100 examples planted in it) in a
temporary folder, runs GPT-4's substring check (3 x 50 characters per example) with 2 processes,
and writes bench/results/contamination_throughput.json: the median of --repeat scans of the same
corpus. Time includes building the pattern index in each process.
Run: .venv/bin/python bench/contamination_throughput.py [--mb 1024] [--method gpt4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

from scalelab.contamination import Example, check
from scalelab.contamination.scan import substrings

N_EXAMPLES = 14_042  # MMLU's test set


def vocabulary(rng: random.Random, n: int = 20_000) -> list[str]:
    syllables = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "si", "pe", "do", "gra", "stu", "phi", "ing", "er"]
    return ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=1024, help="corpus size")
    parser.add_argument("--method", default="gpt4")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="scans of the same corpus; the median is reported")
    args = parser.parse_args()
    rng = random.Random(0)
    words = vocabulary(rng)
    examples = [Example("mmlu", str(i), " ".join(rng.choices(words, k=rng.randint(10, 60))) + "?")
                for i in range(N_EXAMPLES)]
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        line = " ".join(rng.choices(words, k=200_000)) + "\n"  # ~1.3 MB, shuffled per write
        with open(corpus, "w") as f:
            written, k = 0, 0
            while written < args.mb * 1_000_000:
                parts = line.split(" ")
                rng.shuffle(parts)
                chunk = " ".join(parts)
                if k < 100:
                    chunk += examples[k * 97].text.upper().replace(" ", "\n ") + "\n"
                f.write(chunk)
                written += len(chunk)
                k += 1
        runs = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            report = check(examples, [str(corpus)], method=args.method, jobs=args.jobs)
            runs.append(time.perf_counter() - start)
        seconds = statistics.median(runs)
    found = report["tasks"]["mmlu"]["n_contaminated"]
    n_patterns = sum(len(substrings(e.text, 0, f"{e.task}/{e.id}")) for e in examples)
    result = {"mb_per_s": report["bytes_scanned"] / seconds / 1e6, "n_patterns": n_patterns,
              "bytes": report["bytes_scanned"], "seconds": seconds,
              "mb_per_s_runs": [report["bytes_scanned"] / r / 1e6 for r in runs], "method": args.method,
              "jobs": args.jobs,
              "n_examples": N_EXAMPLES, "planted_found": found, "machine": platform.processor() or platform.machine()}
    print(json.dumps(result, indent=2))
    out = Path(__file__).parent / "results" / "contamination_throughput.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
