"""Hostile input across every command: one line on stderr naming the problem, exit 2, no traceback,
and every file and folder that existed before byte-identical afterwards (nothing created either).

The commands run in this process (through `scalelab.cli.main`, the console script's entry point),
so a hundred of them take seconds; an alarm turns a command that starts real work into a failure.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import signal
import socket
import sys
import traceback
from pathlib import Path

import pytest

from tests.conftest import write_mmlu


def _world(root: Path) -> None:
    """Small files in the shapes users pass, good and bad."""
    (root / "adir").mkdir()
    (root / "adir" / "inner.txt").write_text("a folder where a file should go")
    (root / "emptydir").mkdir()
    (root / "afile.txt").write_text("a file where a folder should go")
    (root / "out.json").write_text('{"keep": "me"}\n')
    (root / "good.csv").write_text("params,tokens,loss\n" + "".join(
        f"{n},{20 * n},{2 + 400 / n ** 0.5:.4f}\n" for n in (1e4, 3e4, 1e5, 3e5, 1e6, 3e6)))
    (root / "bin.csv").write_bytes(bytes(range(256)) * 8)
    (root / "latin1.csv").write_bytes("params,tokens,loss\n1e4,2e5,3.5\n1e5,2e6,caf\xe9\n".encode("latin-1"))
    (root / "nul.csv").write_bytes(b"params,tokens,loss\n1e4,2e5,3.5\x00\n")
    (root / "bigfield.csv").write_text("params,tokens,loss\n1," + "9" * 200_000 + ",3\n")
    (root / "dup.csv").write_text("params,params,tokens,loss\n1e4,1e5,2e5,3.5\n" * 1)
    (root / "neg.csv").write_text("params,tokens,loss\n" + "".join(f"{n},{n * 20},-1\n" for n in (1e4, 1e5, 1e6, 1e7)))
    (root / "short.csv").write_text("params,tokens,loss\n1e4,2e5,3.5\n1e5,2e6,3.0\n")
    for name, loss in (("nan.csv", "nan"), ("text.csv", "high")):
        (root / name).write_text("params,tokens,loss\n" + "".join(f"{n},{n * 20},{loss}\n" for n in (1e4, 1e5, 1e6)))
    (root / "empty.csv").write_text("")
    whole = gzip.compress("".join(json.dumps({"task_id": f"T/{i}", "completion": "    return 1\n"}) + "\n"
                                  for i in range(400)).encode())
    (root / "trunc.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    (root / "bad.yaml").write_text("name: x\ntype: generation\ndata: [unclosed\n  prompt: {\n")
    (root / "nodata.yaml").write_text("name: x\ntype: generation\ndata: missing.jsonl\n")
    (root / "badtype.yaml").write_text("name: x\ntype: poetry\ndata: rows.jsonl\n")
    (root / "rows.jsonl").write_text(json.dumps({"prompt": "p", "ideal": "i"}) + "\n")
    (root / "bad.json").write_text("{not json")
    (root / "list.json").write_text("[1, 2]")
    (root / "bad.toml").write_text("steps = = 1\n")
    (root / "notobj.jsonl").write_text("[1, 2]\n")
    (root / "badline.jsonl").write_text(json.dumps({"task_id": "T/0", "completion": "x"}) + "\n{oops\n")
    (root / "he.jsonl").write_text(json.dumps({"task_id": "T/0", "prompt": "def f():\n", "entry_point": "f",
                                               "test": "def check(c):\n    assert c() == 1\n"}) + "\n")
    (root / "he_samples.jsonl").write_text(json.dumps({"task_id": "T/0", "completion": "    return 1\n"}) + "\n")
    (root / "he_other.jsonl").write_text(json.dumps({"task_id": "Z/9", "completion": "    return 1\n"}) + "\n")
    (root / "he_nofield.jsonl").write_text(json.dumps({"task_id": "T/0", "prompt": "def f():\n"}) + "\n")
    write_mmlu(root / "mmlu", header=True)
    for name, content in (("mmlu_bin", bytes(range(256)) * 8),
                          ("mmlu_big", b"q," + b"x" * 200_000 + b",b,c,d,A\n"),
                          ("mmlu_letter", b"q,a,b,c,d,E\n"),
                          ("mmlu_short", b"q,a,b\n")):
        (root / name / "test").mkdir(parents=True)
        (root / name / "test" / "x_test.csv").write_bytes(content)
    (root / "tqa_bad.json").write_text('[{"question": "q", "mc1_targets": 3}]')
    (root / "tqa_dup.csv").write_text("Question,Question,Best Answer,Correct Answers,Incorrect Answers\nq,q,a,a,b\n")
    for name, body in (("res_broken", "{broken"), ("res_notasks", '{"model": "m"}')):
        (root / name).mkdir()
        (root / name / "results.json").write_text(body)
    for name, ids in (("res_a", ["1", "2"]), ("res_b", ["3", "4"])):
        (root / name).mkdir()
        (root / name / "results.json").write_text(json.dumps({"model": name, "tasks": {"t": {"n": 2}}}))
        (root / name / "samples_t.jsonl").write_text("".join(json.dumps({"id": i, "scores": {"acc": 1.0}}) + "\n"
                                                             for i in ids))
    (root / "res_other").mkdir()
    (root / "res_other" / "results.json").write_text(json.dumps({"model": "o", "tasks": {"u": {"n": 1}}}))
    (root / "pairs.jsonl").write_text(json.dumps({"prompt": "p", "chosen": "good", "rejected": "bad"}) + "\n")
    (root / "pairs_p.jsonl").write_text(json.dumps({"prompt": "p", "a": "x", "b": "y", "p_a": 1.5}) + "\n")
    (root / "pairs_nochosen.jsonl").write_text(json.dumps({"prompt": "p", "rejected": "bad"}) + "\n")
    (root / "pairs_hh.jsonl").write_text(json.dumps({"chosen": "no assistant here", "rejected": "nor here"}) + "\n")
    (root / "graded.jsonl").write_text(json.dumps({"prompt": "p", "response": "r", "tag": "maybe"}) + "\n")
    (root / "graded_notag.jsonl").write_text(json.dumps({"prompt": "p", "response": "r"}) + "\n")
    (root / "prompts.jsonl").write_text(json.dumps({"prompt": "p", "tag": "allowed"}) + "\n")
    (root / "prompts_badtag.jsonl").write_text(json.dumps({"prompt": "p", "tag": "sometimes"}) + "\n")
    (root / "prompts_notext.csv").write_text("category,tag\nx,allowed\n")
    (root / "empty_set.jsonl").write_text("\n")
    (root / "res_badjson").mkdir()
    (root / "res_badjson" / "redteam.json").write_text("{not json")
    (root / "labels_bad.jsonl").write_text(json.dumps({"prompt": "p", "completion": "c", "label": "maybe"}) + "\n")
    (root / "labels_nocompletion.jsonl").write_text(json.dumps({"prompt": "p", "label": "refusal"}) + "\n")
    (root / "labels_refusals.jsonl").write_text(json.dumps({"prompt": "p", "completion": "No.", "label": "refusal"})
                                                + "\n")
    (root / "judge_canary.json").write_text(json.dumps({"judge": "canary", "counts": {"tp": 1, "fn": 0, "tn": 1,
                                                                                      "fp": 0}}))
    (root / "judge_nocounts.json").write_text(json.dumps({"judge": "refusal"}))
    (root / "sft.json").write_text(json.dumps([{"instruction": "i", "input": "", "output": "o"}]))
    (root / "sft_noout.json").write_text(json.dumps([{"instruction": "i", "input": ""}]))
    (root / "sft_msgs.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "x"}]}) + "\n")
    (root / "rubric_one.txt").write_text("A: only one class\n")
    (root / "reward_fn.py").write_text("def other(completions, **kw):\n    return [0.0 for _ in completions]\n")
    (root / "corpus.txt").write_text("def f():\n    return 1\n" * 50)


def _snapshot(*roots: Path) -> dict[str, str]:
    state = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            state[str(path)] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return state


class _Alarm(Exception):
    pass


def _run(argv: list[str]) -> tuple[object, str]:
    """(exit code, stderr) of `scalelab ARGV` run in this process; a traceback if it raised."""
    from scalelab.cli import main

    def ring(*_):
        raise _Alarm("still running after 60 s: the command started real work")

    err = io.StringIO()
    old = signal.signal(signal.SIGALRM, ring)
    signal.alarm(60)
    code: object = 0
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            sys.argv = ["scalelab", *argv]
            try:
                main()
            except SystemExit as e:
                code = e.code
    except BaseException:  # noqa: BLE001  (anything escaping main is the failure under test)
        code, err = "traceback", io.StringIO(traceback.format_exc())
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return code, err.getvalue()


CASES: list[tuple[str, str]] = [
    # (needle the message must contain, command line); {w} is the folder of files, {run} a trained run
    # --- the command line itself
    ("No such command", "nosuch"),
    ("Missing option", "train"),
    ("No such option", "fit {w}/good.csv --bogus 1"),
    ("--limit", "eval --out {w}/o --tasks mmlu --limit abc"),
    # --- train
    ("--preset", "train --out {w}/t"),
    ("unknown preset", "train --preset nosuch --out {w}/t"),
    ("missing.json", "train --config {w}/missing.json --out {w}/t"),
    ("bad.json", "train --config {w}/bad.json --out {w}/t"),
    ("bad.toml", "train --config {w}/bad.toml --out {w}/t"),
    ("list.json", "train --config {w}/list.json --out {w}/t"),
    ("bin.csv", "train --config {w}/bin.csv --out {w}/t"),
    ("key=value", "train --preset tiny --set noequals --out {w}/t"),
    ("steps", "train --preset tiny --set steps=-1 --out {w}/t"),
    ("d_model", "train --preset tiny --set d_model=abc --out {w}/t"),
    ("nosuchkey", "train --preset tiny --set nosuchkey=1 --out {w}/t"),
    ("is a file", "train --preset tiny --out {w}/afile.txt"),
    ("/proc", "train --preset tiny --out /proc/scalelab-run"),
    ("is a file", "train --preset tiny --out {w}/afile.txt/run"),
    ("missing-corpus", "train --preset tiny --set corpus={w}/missing-corpus --out {w}/t"),
    ("emptydir", "train --resume --out {w}/emptydir"),
    # --- export
    ("missing-run", "export {w}/missing-run {w}/hf"),
    ("afile.txt", "export {w}/afile.txt {w}/hf"),
    ("is a file", "export {run} {w}/afile.txt"),
    ("/sys", "export {run} /sys/scalelab-hf"),
    # --- fit
    ("missing.csv", "fit {w}/missing.csv"),
    ("bin.csv", "fit {w}/bin.csv"),
    ("latin1.csv", "fit {w}/latin1.csv"),
    ("nul.csv", "fit {w}/nul.csv"),
    ("bigfield.csv", "fit {w}/bigfield.csv"),
    ("'params' appears more than once", "fit {w}/dup.csv"),
    ("neg.csv:2", "fit {w}/neg.csv"),
    ("nan.csv:2", "fit {w}/nan.csv"),
    ("text.csv:2", "fit {w}/text.csv"),
    ("short.csv", "fit {w}/short.csv"),
    ("empty.csv", "fit {w}/empty.csv"),
    ("adir", "fit {w}/adir"),
    ("trunc.jsonl.gz", "fit {w}/trunc.jsonl.gz"),
    ("notobj.jsonl:1", "fit {w}/notobj.jsonl"),
    ("--form", "fit {w}/good.csv --form nosuch"),
    ("--level", "fit {w}/good.csv --level 1.5"),
    ("--level", "fit {w}/good.csv --level 0"),
    ("--level", "fit {w}/good.csv --level nan"),
    ("--bootstrap", "fit {w}/good.csv --bootstrap -3"),
    ("--bootstrap", "fit {w}/good.csv --bootstrap 0"),
    ("--exclude-top-loss", "fit {w}/good.csv --exclude-top-loss -1"),
    ("--exclude-top-loss", "fit {w}/good.csv --exclude-top-loss 5"),
    ("--predict-flops", "fit {w}/good.csv --predict-flops -5"),
    ("--predict-flops", "fit {w}/good.csv --predict-flops inf"),
    ("N,D", "fit {w}/good.csv --form chinchilla --predict 1,2,3"),
    ("positive", "fit {w}/good.csv --form chinchilla --predict -1,5"),
    ("is a folder", "fit {w}/good.csv --json {w}/adir"),
    ("/proc", "fit {w}/good.csv --json /proc/scalelab.json"),
    ("/proc", "fit {w}/good.csv --json {w}/out.json --plot /proc/x.png"),
    ("is a folder", "fit {w}/good.csv --json {w}/out.json --plot {w}/adir"),
    ("is a file", "fit {w}/good.csv --json {w}/afile.txt/fit.json"),
    # --- forecast
    ("forecast preset", "forecast --preset nosuch --out {w}/f"),
    ("--runs", "forecast --runs 2 --out {w}/f"),
    ("--runs", "forecast --runs -1 --out {w}/f"),
    ("--span", "forecast --span -1 --out {w}/f"),
    ("--max-fraction", "forecast --max-fraction 2 --out {w}/f"),
    ("--max-fraction", "forecast --max-fraction 0 --out {w}/f"),
    ("--target-flops", "forecast --target-flops -1 --out {w}/f"),
    ("--jobs", "forecast --jobs 0 --out {w}/f"),
    ("--seed", "forecast --seed -4 --out {w}/f"),
    ("is a file", "forecast --out {w}/afile.txt"),
    ("/proc", "forecast --out /proc/scalelab-forecast"),
    ("missing-corpus", "forecast --corpus {w}/missing-corpus --out {w}/f"),
    ("emptydir", "forecast --resume --out {w}/emptydir"),
    # --- eval
    ("--model", "eval --out {w}/o --tasks mmlu"),
    ("unknown task", "eval --model run:{run} --tasks nosuch --out {w}/o"),
    ("unknown model spec", "eval --model bogus:x --tasks mmlu --data mmlu={w}/mmlu --out {w}/o"),
    ("names no model", "eval --model openai: --tasks mmlu --data mmlu={w}/mmlu --out {w}/o"),
    ("--data mmlu=PATH", "eval --model run:{run} --tasks mmlu --out {w}/o"),
    ("TASK=PATH", "eval --model run:{run} --tasks mmlu --data mmlu --out {w}/o"),
    ("missing-mmlu", "eval --model run:{run} --tasks mmlu --data mmlu={w}/missing-mmlu --out {w}/o"),
    ("--limit", "eval --model run:{run} --tasks mmlu --data mmlu={w}/mmlu --limit -1 --out {w}/o"),
    ("--limit", "eval --model run:{run} --tasks mmlu --data mmlu={w}/mmlu --limit 0 --out {w}/o"),
    ("--shots", "eval --model run:{run} --tasks mmlu --data mmlu={w}/mmlu --shots -2 --out {w}/o"),
    ("--shots 9", "eval --model run:{run} --tasks mmlu --data mmlu={w}/mmlu --shots 9 --out {w}/o"),
    ("--n", "eval --samples {w}/he_samples.jsonl --tasks humaneval --data humaneval={w}/he.jsonl --n 0 --out {w}/o"),
    ("--temperature", "eval --model run:{run} --tasks humaneval --data humaneval={w}/he.jsonl --temperature -1 "
                      "--out {w}/o"),
    ("--sandboxes", "eval --samples {w}/he_samples.jsonl --tasks humaneval --data humaneval={w}/he.jsonl "
                    "--sandboxes 0 --out {w}/o"),
    ("--precision", "eval --model run:{run} --tasks mmlu --data mmlu={w}/mmlu --precision bf17 --out {w}/o"),
    ("decides its precision", "eval --model openai:m@http://127.0.0.1:9/v1 --tasks mmlu --data mmlu={w}/mmlu "
                              "--precision bf16 --out {w}/o"),
    ("is a file", "eval --model run:{run} --tasks mmlu --data mmlu={w}/mmlu --out {w}/afile.txt"),
    ("/proc", "eval --model run:{run} --tasks mmlu --data mmlu={w}/mmlu --out /proc/scalelab-eval"),
    ("is a folder", "eval --model run:{run} --tasks mmlu --data mmlu={w}/mmlu --cache {w}/adir --out {w}/o"),
    ("/proc", "eval --model run:{run} --tasks mmlu --data mmlu={w}/mmlu --cache /proc/c.sqlite --out {w}/o"),
    ("x_test.csv", "eval --model run:{run} --tasks mmlu --data mmlu={w}/mmlu_bin --out {w}/o"),
    ("x_test.csv", "eval --model run:{run} --tasks mmlu --data mmlu={w}/mmlu_big --out {w}/o"),
    ("x_test.csv:1", "eval --model run:{run} --tasks mmlu --data mmlu={w}/mmlu_letter --out {w}/o"),
    ("x_test.csv:1", "eval --model run:{run} --tasks mmlu --data mmlu={w}/mmlu_short --out {w}/o"),
    ("tqa_bad.json", "eval --model run:{run} --tasks truthfulqa_mc --data truthfulqa_mc={w}/tqa_bad.json "
                     "--out {w}/o"),
    ("tqa_dup.csv:1", "eval --model run:{run} --tasks truthfulqa_mc --data truthfulqa_mc={w}/tqa_dup.csv "
                      "--out {w}/o"),
    ("missing.jsonl", "eval --samples {w}/missing.jsonl --tasks humaneval --data humaneval={w}/he.jsonl --out {w}/o"),
    ("truncated", "eval --samples {w}/trunc.jsonl.gz --tasks humaneval --data humaneval={w}/he.jsonl --out {w}/o"),
    ("badline.jsonl:2", "eval --samples {w}/badline.jsonl --tasks humaneval --data humaneval={w}/he.jsonl "
                        "--out {w}/o"),
    ("T/0", "eval --samples {w}/he_other.jsonl --tasks humaneval --data humaneval={w}/he.jsonl --out {w}/o"),
    ("he_nofield.jsonl:1", "eval --samples {w}/he_samples.jsonl --tasks humaneval "
                           "--data humaneval={w}/he_nofield.jsonl --out {w}/o"),
    ("trunc.jsonl.gz", "eval --samples {w}/he_samples.jsonl --tasks humaneval --data humaneval={w}/trunc.jsonl.gz "
                  "--out {w}/o"),
    ("bad.yaml:4", "eval --model run:{run} --tasks {w}/bad.yaml --out {w}/o"),
    ("missing.jsonl", "eval --model run:{run} --tasks {w}/nodata.yaml --out {w}/o"),
    ("poetry", "eval --model run:{run} --tasks {w}/badtype.yaml --out {w}/o"),
    ("missing-corpus", "eval --samples {w}/he_samples.jsonl --tasks humaneval --data humaneval={w}/he.jsonl "
                       "--contamination-corpus {w}/missing-corpus --out {w}/o"),
    # --- contamination
    ("missing-corpus", "contamination --corpus {w}/missing-corpus --data mmlu={w}/mmlu --out {w}/c"),
    ("TASK=PATH", "contamination --corpus {w}/corpus.txt --data mmlu --out {w}/c"),
    ("missing-mmlu", "contamination --corpus {w}/corpus.txt --data mmlu={w}/missing-mmlu --out {w}/c"),
    ("--method", "contamination --corpus {w}/corpus.txt --data mmlu={w}/mmlu --method nosuch --out {w}/c"),
    ("--threshold", "contamination --corpus {w}/corpus.txt --data mmlu={w}/mmlu --method ngram --threshold 1.5 "
                    "--out {w}/c"),
    ("--threshold", "contamination --corpus {w}/corpus.txt --data mmlu={w}/mmlu --threshold -1 --out {w}/c"),
    ("--jobs", "contamination --corpus {w}/corpus.txt --data mmlu={w}/mmlu --jobs 0 --out {w}/c"),
    ("res_broken", "contamination --corpus {w}/corpus.txt --data mmlu={w}/mmlu --results {w}/res_broken --out {w}/c"),
    ("res_notasks", "contamination --corpus {w}/corpus.txt --data mmlu={w}/mmlu --results {w}/res_notasks "
                    "--out {w}/c"),
    ("no results.json", "contamination --corpus {w}/corpus.txt --data mmlu={w}/mmlu --results {w}/emptydir "
                        "--out {w}/c"),
    ("is a file", "contamination --corpus {w}/corpus.txt --data mmlu={w}/mmlu --out {w}/afile.txt"),
    ("/proc", "contamination --corpus {w}/corpus.txt --data mmlu={w}/mmlu --out /proc/scalelab-c"),
    ("x_test.csv", "contamination --corpus {w}/corpus.txt --data mmlu={w}/mmlu_bin --out {w}/c"),
    # --- serve
    ("unknown model spec", "serve bogus:x"),
    ("local model", "serve openai:m@http://127.0.0.1:9/v1"),
    ("--port", "serve run:{run} --port 99999"),
    ("--port", "serve run:{run} --port 0"),
    ("--precision", "serve run:{run} --precision bf17"),
    ("in use", "serve run:{run} --port {busy}"),
    ("missing-run", "serve run:{w}/missing-run --port {free}"),
    # --- compare
    ("missing-a", "compare {w}/missing-a {w}/res_a"),
    ("share no", "compare {w}/res_a {w}/res_b"),
    ("share no task", "compare {w}/res_a {w}/res_other"),
    ("res_broken", "compare {w}/res_a {w}/res_broken"),
    ("is a folder", "compare {w}/res_a {w}/res_a --json {w}/adir"),
    ("/proc", "compare {w}/res_a {w}/res_a --json /proc/cmp.json"),
    # --- align sft / rm / rm-eval
    ("missing.json", "align sft --model run:{run} --data {w}/missing.json --out {w}/s"),
    ("bin.csv", "align sft --model run:{run} --data {w}/bin.csv --out {w}/s"),
    ("sft_noout.json", "align sft --model run:{run} --data {w}/sft_noout.json --out {w}/s"),
    ("sft_msgs.jsonl:1", "align sft --model run:{run} --data {w}/sft_msgs.jsonl --out {w}/s"),
    ("--steps", "align sft --model run:{run} --data {w}/sft.json --steps 0 --out {w}/s"),
    ("--lr", "align sft --model run:{run} --data {w}/sft.json --lr -1 --out {w}/s"),
    ("--lr", "align sft --model run:{run} --data {w}/sft.json --lr 0 --out {w}/s"),
    ("--batch-size", "align sft --model run:{run} --data {w}/sft.json --batch-size 0 --out {w}/s"),
    ("is a file", "align sft --model run:{run} --data {w}/sft.json --out {w}/afile.txt"),
    ("unknown model spec", "align sft --model bogus:x --data {w}/sft.json --out {w}/s"),
    ("unknown model spec", "align sft --model openai:m@http://x/v1 --data {w}/sft.json --out {w}/s"),
    ("pairs_p.jsonl:1", "align rm --model run:{run} --data {w}/pairs_p.jsonl --out {w}/r"),
    ("pairs_nochosen.jsonl:1", "align rm --model run:{run} --data {w}/pairs_nochosen.jsonl --out {w}/r"),
    ("pairs_hh.jsonl:1", "align rm --model run:{run} --data {w}/pairs_hh.jsonl --out {w}/r"),
    ("--steps", "align rm --model run:{run} --data {w}/pairs.jsonl --steps -5 --out {w}/r"),
    ("/proc", "align rm --model run:{run} --data {w}/pairs.jsonl --out /proc/scalelab-rm"),
    ("adir", "align rm-eval --model {w}/adir --data {w}/pairs.jsonl"),
    ("missing.jsonl", "align rm-eval --model {w}/adir --data {w}/missing.jsonl"),
    ("/proc", "align rm-eval --model {w}/adir --data {w}/pairs.jsonl --json /proc/rm.json"),
    # --- align rbrm / rlaif
    ("graded.jsonl:1", "align rbrm --data {w}/graded.jsonl --out {w}/g.jsonl --grader run:{run}"),
    ("graded_notag.jsonl:1", "align rbrm --data {w}/graded_notag.jsonl --out {w}/g.jsonl --grader run:{run}"),
    ("is a folder", "align rbrm --data {w}/prompts.jsonl --out {w}/adir --grader run:{run}"),
    ("rubric_one.txt", "align rbrm --data {w}/prompts.jsonl --out {w}/g.jsonl --grader run:{run} "
                       "--rubric {w}/rubric_one.txt"),
    ("missing-rubric", "align rbrm --data {w}/prompts.jsonl --out {w}/g.jsonl --grader run:{run} "
                       "--rubric {w}/missing-rubric"),
    ("unknown model spec", "align rbrm --data {w}/prompts.jsonl --out {w}/g.jsonl --grader bogus:x"),
    ("missing.jsonl", "align rlaif --data {w}/missing.jsonl --out {w}/l.jsonl --labeller run:{run}"),
    ("is a folder", "align rlaif --data {w}/pairs.jsonl --out {w}/adir --labeller run:{run}"),
    ("trunc.jsonl.gz", "align rlaif --data {w}/trunc.jsonl.gz --out {w}/l.jsonl --labeller run:{run}"),
    # --- align rl / dpo / eval / demo
    ("unknown reward", "align rl --model run:{run} --prompts {w}/prompts.jsonl --reward nosuch --out {w}/p"),
    ("--weight", "align rl --model run:{run} --prompts {w}/prompts.jsonl --reward rbrm --reward drlaif --weight 1 "
                 "--out {w}/p"),
    ("--algorithm", "align rl --model run:{run} --prompts {w}/prompts.jsonl --reward rbrm --algorithm ppo2 "
                    "--out {w}/p"),
    ("--generations", "align rl --model run:{run} --prompts {w}/prompts.jsonl --reward rbrm --generations 0 "
                      "--out {w}/p"),
    ("--prompts-per-step", "align rl --model run:{run} --prompts {w}/prompts.jsonl --reward rbrm "
                           "--prompts-per-step 0 --out {w}/p"),
    ("--max-tokens", "align rl --model run:{run} --prompts {w}/prompts.jsonl --reward rbrm --max-tokens 0 "
                     "--out {w}/p"),
    ("--beta", "align rl --model run:{run} --prompts {w}/prompts.jsonl --reward rbrm --beta -1 --out {w}/p"),
    ("missing.jsonl", "align rl --model run:{run} --prompts {w}/missing.jsonl --reward rbrm --out {w}/p"),
    ("prompts_badtag.jsonl:1", "align rl --model run:{run} --prompts {w}/prompts_badtag.jsonl --reward rbrm "
                               "--out {w}/p"),
    ("prompts_notext.csv:2", "align rl --model run:{run} --prompts {w}/prompts_notext.csv --reward rbrm --out {w}/p"),
    ("no function 'missing'", "align rl --model run:{run} --prompts {w}/prompts.jsonl "
                              "--reward py:{w}/reward_fn.py:missing --out {w}/p"),
    ("is a file", "align rl --model run:{run} --prompts {w}/prompts.jsonl --reward rbrm --out {w}/afile.txt"),
    ("--beta", "align dpo --model run:{run} --data {w}/pairs.jsonl --beta 0 --out {w}/d"),
    ("--min-confidence", "align dpo --model run:{run} --data {w}/pairs.jsonl --min-confidence 0.7 --out {w}/d"),
    ("--steps", "align dpo --model run:{run} --data {w}/pairs.jsonl --steps 0 --out {w}/d"),
    ("pairs_p.jsonl:1", "align dpo --model run:{run} --data {w}/pairs_p.jsonl --out {w}/d"),
    ("missing.jsonl", "align eval --policy run:{run} --prompts {w}/missing.jsonl --grader run:{run} --out {w}/e"),
    ("--max-tokens", "align eval --policy run:{run} --prompts {w}/prompts.jsonl --max-tokens 0 --out {w}/e"),
    ("is a file", "align eval --policy run:{run} --prompts {w}/prompts.jsonl --grader run:{run} --out {w}/afile.txt"),
    ("unknown model spec", "align eval --policy bogus:x --prompts {w}/prompts.jsonl --out {w}/e"),
    ("--rl-steps", "align demo --rl-steps 0 --out {w}/demo"),
    # --- redteam
    ("--bogus", "redteam attacks --bogus"),
    ("unknown attack 'warp'", "redteam run --target run:{run} --prompts {w}/prompts.jsonl --attacks direct,warp "
                              "--out {w}/rt"),
    ("only come last", "redteam run --target run:{run} --prompts {w}/prompts.jsonl --attacks pair+cot --out {w}/rt"),
    ("empty part", "redteam run --target run:{run} --prompts {w}/prompts.jsonl --attacks cot++base64 --out {w}/rt"),
    ("unknown judge 'oracle'", "redteam run --target run:{run} --prompts {w}/prompts.jsonl --judge oracle "
                               "--out {w}/rt"),
    ("not a trained judge", "redteam run --target run:{run} --prompts {w}/prompts.jsonl --judge trained:{w}/adir "
                            "--out {w}/rt"),
    ("unknown model spec", "redteam run --target run:{run} --prompts {w}/prompts.jsonl --judge rbrm:bogus:x "
                           "--out {w}/rt"),
    ("unknown model spec", "redteam run --target bogus:x --prompts {w}/prompts.jsonl --out {w}/rt"),
    ("prompts_notext.csv:2", "redteam run --target run:{run} --prompts {w}/prompts_notext.csv --out {w}/rt"),
    ("prompts_badtag.jsonl:1", "redteam run --target run:{run} --prompts {w}/prompts_badtag.jsonl --out {w}/rt"),
    ("missing.jsonl", "redteam run --target run:{run} --prompts {w}/missing.jsonl --out {w}/rt"),
    ("no prompts", "redteam run --target run:{run} --prompts {w}/empty_set.jsonl --out {w}/rt"),
    ("bin.csv", "redteam run --target run:{run} --prompts {w}/bin.csv --out {w}/rt"),
    ("measures the judge 'canary'", "redteam run --target run:{run} --prompts {w}/prompts.jsonl --judge refusal "
                                    "--judge-calibration {w}/judge_canary.json --out {w}/rt"),
    ("'counts'", "redteam run --target run:{run} --prompts {w}/prompts.jsonl --judge-calibration "
                 "{w}/judge_nocounts.json --out {w}/rt"),
    ("bad.json", "redteam run --target run:{run} --prompts {w}/prompts.jsonl --judge-calibration {w}/bad.json "
                 "--out {w}/rt"),
    ("not one of the --prompts", "redteam run --target run:{run} --prompts {w}/prompts.jsonl "
                                 "--system {w}/other.jsonl={w}/corpus.txt --out {w}/rt"),
    ("missing-system", "redteam run --target run:{run} --prompts {w}/prompts.jsonl --system {w}/missing-system "
                       "--out {w}/rt"),
    ("--max-tokens", "redteam run --target run:{run} --prompts {w}/prompts.jsonl --max-tokens 0 --out {w}/rt"),
    ("--pair-rounds", "redteam run --target run:{run} --prompts {w}/prompts.jsonl --pair-rounds 0 --out {w}/rt"),
    ("--limit", "redteam run --target run:{run} --prompts {w}/prompts.jsonl --limit 0 --out {w}/rt"),
    ("is a file", "redteam run --target run:{run} --prompts {w}/prompts.jsonl --out {w}/afile.txt"),
    ("labels_bad.jsonl:1: label 'maybe'", "redteam calibrate --judge refusal --labels {w}/labels_bad.jsonl "
                                          "--out {w}/cal"),
    ("labels_nocompletion.jsonl:1", "redteam calibrate --judge refusal --labels {w}/labels_nocompletion.jsonl "
                                    "--out {w}/cal"),
    ("unknown judge", "redteam calibrate --judge nope --labels {w}/labels_refusals.jsonl --out {w}/cal"),
    ("is a file", "redteam calibrate --judge refusal --labels {w}/labels_refusals.jsonl --out {w}/afile.txt"),
    ("labels_bad.jsonl:1", "redteam train-judge --model run:{run} --labels {w}/labels_bad.jsonl --out {w}/tj"),
    ("both refusals and compliances", "redteam train-judge --model run:{run} --labels {w}/labels_refusals.jsonl "
                                      "--out {w}/tj"),
    ("--steps", "redteam train-judge --model run:{run} --labels {w}/labels_refusals.jsonl --steps 0 --out {w}/tj"),
    ("unknown model spec", "redteam train-judge --model openai:m@http://x/v1 --labels {w}/labels_refusals.jsonl "
                           "--out {w}/tj"),
    ("no compliance-labelled rows", "redteam judge-attack --judge refusal --responses {w}/labels_refusals.jsonl "
                                    "--out {w}/ja"),
    ("unknown wrapper 'nope'", "redteam judge-attack --judge refusal --responses {w}/labels_refusals.jsonl "
                               "--wrappers nope --out {w}/ja"),
    ("labels_bad.jsonl:1", "redteam judge-attack --judge refusal --responses {w}/labels_bad.jsonl --out {w}/ja"),
    ("is a file", "redteam demo --out {w}/afile.txt"),
    # --- sweep / report / view
    ("unknown executor 'k8s'", "sweep tiny --grid lr=1e-3,3e-3 --executor k8s --out {w}/sw"),
    ("unknown setting 'learning_rate'", "sweep tiny --grid learning_rate=1,2 --out {w}/sw"),
    ("names 'lr' twice", "sweep tiny --grid lr=1e-3 --grid lr=3e-3 --out {w}/sw"),
    ("no values", "sweep tiny --grid steps= --out {w}/sw"),
    ("neither a config file", "sweep nosuch --grid lr=1e-3 --out {w}/sw"),
    ("bad.json", "sweep {w}/bad.json --grid lr=1e-3 --out {w}/sw"),
    ("--slurm-time", "sweep tiny --grid lr=1e-3 --executor slurm --slurm-time 0 --out {w}/sw"),
    ("is a file", "sweep tiny --grid lr=1e-3 --out {w}/afile.txt"),
    ("unknown executor 'k8s'", "forecast --executor k8s --out {w}/fc"),
    ("holds no result", "report {w}/emptydir --out {w}/rep"),
    ("is not a folder", "report {w}/missing-folder --out {w}/rep"),
    ("redteam.json", "report {w}/res_badjson --out {w}/rep"),
    ("is a file", "report {w}/res_a --out {w}/afile.txt"),
    ("no report.html", "view {w}/emptydir"),
    ("--sft-steps", "align demo --sft-steps -1 --out {w}/demo"),
    ("is a file", "align demo --out {w}/afile.txt"),
]


def test_the_battery_is_large_and_covers_every_command():
    from scalelab.cli.app import align_app, app, redteam_app

    assert len(CASES) >= 100
    commands = {c.name or c.callback.__name__ for c in app.registered_commands}
    commands |= {f"align {c.name}" for c in align_app.registered_commands}
    commands |= {f"redteam {c.name}" for c in redteam_app.registered_commands}
    covered = {" ".join(line.split()[:2]) if line.startswith(("align", "redteam")) else line.split()[0]
               for _, line in CASES}
    assert commands <= covered, commands - covered


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("world")
    _world(root)
    return root


@pytest.mark.parametrize("needle, line", CASES, ids=[f"{i:03d}-{line.split()[0]}" for i, (_, line) in
                                                      enumerate(CASES)])
def test_hostile_input_is_one_clean_line(world, tiny_run, needle, line, monkeypatch):
    monkeypatch.chdir(world)  # default output paths land in the checked folder too
    with socket.socket() as busy, socket.socket() as spare:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        spare.bind(("127.0.0.1", 0))
        free = spare.getsockname()[1]
        spare.close()
        argv = line.format(w=world, run=tiny_run, busy=busy.getsockname()[1], free=free).split()
        before = _snapshot(world, tiny_run)
        code, err = _run(argv)
    after = _snapshot(world, tiny_run)
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2, (code, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert needle in lines[0], lines[0]
    assert after == before, sorted(set(after.items()) ^ set(before.items()))
    assert os.getcwd() == str(world)
