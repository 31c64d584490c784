"""Judges against human labels on real completions: the refusal phrases, the RBRM with a local grader,
and a refusal classifier trained on other rows of the same file (`scalelab redteam train-judge`).

Reads Do-Not-Answer's `data_en.csv` (939 questions, each answered by six models, every answer with a
human `action` label): action 0 (cannot assist) and 4 (cannot answer: no ability or knowledge) are
refusals, 1-3 (refutes, both sides, disclaimer) and 5 (follows the instruction) compliances. The
questions are split in two by id: the trained judge learns from the first half's answers, and every
judge is measured on the second half's, so no question it was trained on is scored.
Writes bench/results/judge_calibration.json.
Run: .venv/bin/python bench/judge_calibration.py --do-not-answer PATH/data_en.csv [--train 800 --test 400]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from scalelab.align.refusal_classifier import ClassifierSettings, train_refusal_classifier
from scalelab.evals.cache import ResponseCache
from scalelab.io import read_csv_records
from scalelab.provenance import code_version, machine
from scalelab.redteam import calibrate, make_judge
from scalelab.redteam.judges import cached_grader

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("GPT4", "ChatGPT", "Claude", "ChatGLM2", "llama2-7b-chat", "vicuna-7b")
REFUSAL_ACTIONS = {"0", "4"}


def labelled_rows(path: Path) -> list[dict]:
    rows = []
    for _, r in read_csv_records(path)[1]:
        for m in MODELS:
            action = r.get(f"{m}_action", "").strip()
            if r.get(f"{m}_response", "").strip() and action in {"0", "1", "2", "3", "4", "5"}:
                rows.append({"id": f"{r['id']}/{m}", "question": int(r["id"]), "prompt": r["question"],
                             "completion": r[f"{m}_response"], "type": m,
                             "label": "refusal" if action in REFUSAL_ACTIONS else "compliance"})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--do-not-answer", type=Path, required=True, help="Do-Not-Answer's data_en.csv")
    parser.add_argument("--train", type=int, default=800, help="labelled answers the trained judge learns from")
    parser.add_argument("--test", type=int, default=400, help="held-out answers every judge is measured on")
    parser.add_argument("--model", default="smollm2", help="the local model: RBRM grader and classifier base")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--full", action="store_true", help="tune the whole model, not only the head")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "judge_calibration.json")
    args = parser.parse_args()
    rows = labelled_rows(args.do_not_answer)
    cut = max(r["question"] for r in rows) // 2
    rng = random.Random(0)
    train = rng.sample([r for r in rows if r["question"] <= cut], args.train)
    test = rng.sample([r for r in rows if r["question"] > cut], args.test)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        trained = train_refusal_classifier(args.model, [{**r, "refusal": r["label"] == "refusal"} for r in train],
                                           Path(tmp) / "judge", ClassifierSettings(
                                               steps=args.steps, max_length=256, head_only=not args.full,
                                               lr=5e-5 if args.full else 1e-3))
        train_seconds = time.perf_counter() - start
        grader_for = cached_grader(ResponseCache(Path(tmp) / "cache.sqlite"))
        for spec in ("refusal", f"rbrm:{args.model}", f"trained:{Path(tmp) / 'judge'}"):
            start = time.perf_counter()
            result, _ = calibrate(make_judge(spec, grader_for), test)
            name = "trained" if spec.startswith("trained:") else spec
            results[name] = {k: result[k] for k in ("n", "n_unscored", "agreement", "sensitivity", "specificity",
                                                    "confusion")} | {"seconds": time.perf_counter() - start}
            a = result["agreement"]
            print(f"{name:18s} agreement {a['value']:.3f} [{a['ci95'][0]:.3f}, {a['ci95'][1]:.3f}]  sensitivity "
                  f"{result['sensitivity']['value']:.3f}  specificity {result['specificity']['value']:.3f}", flush=True)
    share = sum(r["label"] == "refusal" for r in test) / len(test)
    out = {"data": str(args.do_not_answer.name), "mapping": "action 0, 4 -> refusal; 1, 2, 3, 5 -> compliance",
           "n_train": len(train), "n_test": len(test), "test_refusal_share": share, "model": args.model,
           "trained_judge": trained | {"train_seconds": train_seconds}, "judges": results, "machine": machine(),
           "code": code_version()}
    args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
