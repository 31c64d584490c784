"""`scalelab train --preset vlm-tiny` on this machine: held-out accuracy per question type against
its chance level, the answer loss, and the wall time against the 10-minute goal; part `forecast`:
`scalelab forecast --preset vlm-cpu` once (its error and time, or its refusal). Each part's entry in
bench/results/vlm.json is written as soon as it ends; the other part's entry is kept.
Run: .venv/bin/python bench/vlm.py [--parts train forecast]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from scalelab.provenance import code_version, machine
from scalelab.scaling.fit import FitUntrusted
from scalelab.scaling.vlm_forecast import VLMForecastConfig, run_vlm_forecast
from scalelab.train.vlm_trainer import VLM_PRESETS, VLMTrainConfig, train_vlm

OUT = Path(__file__).parent / "results" / "vlm.json"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", nargs="+", choices=("train", "forecast"), default=["train"])
    args = parser.parse_args()
    result = json.loads(OUT.read_text()) if OUT.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        if "train" in args.parts:
            _train(result, Path(tmp))
        if "forecast" in args.parts:
            _forecast(result, Path(tmp))


def _write(result: dict) -> None:
    result.pop("machine", None), result.pop("code", None)  # each entry carries its own
    OUT.write_text(json.dumps(result, indent=2) + "\n")


def _train(result: dict, tmp: Path) -> None:
    start = time.perf_counter()
    summary = train_vlm(VLMTrainConfig(**VLM_PRESETS["vlm-tiny"]), tmp / "run")
    wall = time.perf_counter() - start
    result["vlm_tiny"] = {"wall_seconds": wall, "goal_seconds": 600, "answer_loss": summary["final_eval_loss"],
                          "accuracy": summary["accuracy"], "by_type": summary["by_type"],
                          "eval_items": summary["eval_items"], "steps": summary["steps"], "params": summary["params"],
                          "precision": summary["precision"], "machine": machine(), "code": code_version()}
    _write(result)
    for q, v in summary["by_type"].items():
        print(f"{q:10s} accuracy {v['accuracy']:.3f} (chance {v['chance']:.2f}, n {v['n']})")
    print(f"vlm-tiny: {wall:.0f} s, answer loss {summary['final_eval_loss']:.4f}")


def _forecast(result: dict, tmp: Path) -> None:
    start = time.perf_counter()
    folder = tmp / "forecast"
    try:
        f = run_vlm_forecast(VLMForecastConfig(), folder)
    except FitUntrusted as e:  # the method's own refusal is a result too: the ladder as it came out
        ladder = [json.loads(p.read_text()) for p in sorted(folder.glob("ladder/*/summary.json"))]
        result["vlm_cpu_forecast"] = {"refused": str(e), "wall_seconds": time.perf_counter() - start,
                                      "ladder": [{k: s[k] for k in ("steps", "flops", "final_eval_loss", "accuracy")}
                                                 for s in ladder], "machine": machine(), "code": code_version()}
        _write(result)
        print(f"vlm-cpu forecast refused: {e}")
        return
    result["vlm_cpu_forecast"] = {
        "wall_seconds": time.perf_counter() - start, "predicted": f["predicted_loss"],
        "interval_90": f["interval_90"], "actual": f["actual_loss"], "relative_error": f["relative_error"],
        "within_interval": f["within_interval"], "ladder_seconds": f["ladder_seconds"],
        "max_ladder_compute_fraction": f["max_ladder_compute_fraction"], "target_flops": f["target_flops"],
        "ladder": [{k: e[k] for k in ("name", "seed", "d_model", "steps", "flops", "final_eval_loss", "accuracy")}
                   for e in f["ladder"]], "machine": machine(), "code": code_version()}
    _write(result)
    print(f"vlm-cpu forecast: predicted {f['predicted_loss']:.4f} {f['interval_90']}, actual "
          f"{f['actual_loss']:.4f} ({100 * f['relative_error']:+.2f}%) in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
