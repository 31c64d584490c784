"""`scalelab train --preset vlm-tiny` on this machine: held-out accuracy per question type against
its chance level, the answer loss, and the wall time against the 10-minute goal; with `--forecast`,
also `scalelab forecast --preset vlm-cpu` once (its error and time). Writes bench/results/vlm.json.
Run: .venv/bin/python bench/vlm.py [--forecast]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from scalelab.provenance import code_version, machine
from scalelab.scaling.vlm_forecast import VLMForecastConfig, run_vlm_forecast
from scalelab.train.vlm_trainer import VLM_PRESETS, VLMTrainConfig, train_vlm

OUT = Path(__file__).parent / "results" / "vlm.json"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--forecast", action="store_true", help="also run the vlm-cpu forecast once")
    args = parser.parse_args()
    result = json.loads(OUT.read_text()) if OUT.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = train_vlm(VLMTrainConfig(**VLM_PRESETS["vlm-tiny"]), Path(tmp) / "run")
        wall = time.perf_counter() - start
        result["vlm_tiny"] = {"wall_seconds": wall, "goal_seconds": 600, "answer_loss": summary["final_eval_loss"],
                              "accuracy": summary["accuracy"], "by_type": summary["by_type"],
                              "eval_items": summary["eval_items"], "steps": summary["steps"],
                              "params": summary["params"], "precision": summary["precision"],
                              "machine": machine(), "code": code_version()}
        for q, v in summary["by_type"].items():
            print(f"{q:10s} accuracy {v['accuracy']:.3f} (chance {v['chance']:.2f}, n {v['n']})")
        print(f"vlm-tiny: {wall:.0f} s, answer loss {summary['final_eval_loss']:.4f}")
        if args.forecast:
            start = time.perf_counter()
            f = run_vlm_forecast(VLMForecastConfig(), Path(tmp) / "forecast")
            result["vlm_cpu_forecast"] = {
                "wall_seconds": time.perf_counter() - start, "predicted": f["predicted_loss"],
                "interval_90": f["interval_90"], "actual": f["actual_loss"], "relative_error": f["relative_error"],
                "within_interval": f["within_interval"], "ladder_seconds": f["ladder_seconds"],
                "max_ladder_compute_fraction": f["max_ladder_compute_fraction"], "target_flops": f["target_flops"],
                "ladder": [{k: e[k] for k in ("name", "seed", "d_model", "steps", "flops", "final_eval_loss",
                                              "accuracy")} for e in f["ladder"]], "machine": machine(),
                "code": code_version()}
            print(f"vlm-cpu forecast: predicted {f['predicted_loss']:.4f} {f['interval_90']}, actual "
                  f"{f['actual_loss']:.4f} ({100 * f['relative_error']:+.2f}%) in {time.perf_counter() - start:.0f} s")
    result.pop("machine", None), result.pop("code", None)  # each entry carries its own
    OUT.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
