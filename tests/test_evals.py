import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from scalelab.errors import UserError
from scalelab.evals import evaluate, load_backend, load_task
from scalelab.evals.backends import hf as hf_backend
from scalelab.evals.cache import CachedBackend, ResponseCache
from scalelab.evals.requests import Generation, Loglikelihood
from scalelab.evals.stats import mcnemar, summarize
from scalelab.evals.tasks.custom import parse_verdict
from scalelab.evals.tasks.humaneval import pass_at_k
from tests.conftest import assert_clean_error, run_cli, write_mmlu


@pytest.fixture(scope="module")
def backend(tiny_run):
    return load_backend(f"run:{tiny_run}", precision="fp32")


@pytest.fixture
def mmlu_dir(tmp_path) -> Path:
    return write_mmlu(tmp_path / "mmlu", header=False)


def write_truthfulqa(path: Path) -> Path:
    rows = [{"question": f"What does function {i} return?",
             "mc1_targets": {f"It returns {i}.": 1, "It returns nothing.": 0, "It raises an error.": 0},
             "mc2_targets": {f"It returns {i}.": 1, f"The value {i}.": 1, "It returns nothing.": 0}} for i in range(4)]
    path.write_text(json.dumps(rows))
    return path


def write_humaneval(path: Path) -> Path:
    problems = [
        {"task_id": "T/0", "prompt": "def add(a, b):\n    \"\"\"Sum of a and b.\"\"\"\n",
         "canonical_solution": "    return a + b\n", "entry_point": "add",
         "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"},
        {"task_id": "T/1", "prompt": "def double(x):\n", "canonical_solution": "    return 2 * x\n",
         "entry_point": "double", "test": "def check(candidate):\n    assert candidate(4) == 8\n"},
    ]
    path.write_text("".join(json.dumps(p) + "\n" for p in problems))
    return path


def test_mmlu_prompt_is_lm_evaluation_harness_format(tmp_path):
    root = write_mmlu(tmp_path / "m", header=True)
    task = load_task("mmlu", {"mmlu": str(root)}, shots=1)
    s = task.samples[0]
    expected = ("The following are multiple choice questions (with answers) about basic math.\n\n"
                "In basic_math question 0, what is 0 + 2?\nA. 0 items\nB. 1 items\nC. 2 items\nD. 3 items\n"
                "Answer: C\n\n"
                "In basic_math question 0, what is 0 + 2?\nA. 0 items\nB. 1 items\nC. 2 items\nD. 3 items\nAnswer:")
    assert s.prompt == expected
    assert s.choices == [" A", " B", " C", " D"] and s.target == 2 and s.group == "basic_math"
    # both CSV layouts read to the same items
    original = load_task("mmlu", {"mmlu": str(write_mmlu(tmp_path / "o", header=False))}, shots=1)
    assert [x.prompt for x in original.samples] == [x.prompt for x in task.samples]
    assert [x.target for x in original.samples] == [x.target for x in task.samples]


def test_translated_mmlu_jsonl_any_script(tmp_path):
    rows = [{"instruction": "Hvilken verdi har 2 + 2?", "option_a": "3", "option_b": "4", "option_c": "5",
             "option_d": "22", "answer": "B", "id": "x0"},
            {"instruction": "二加二等于几？", "option_a": "四", "option_b": "三", "option_c": "五", "option_d": "二",
             "answer": "A"}]
    path = tmp_path / "nb_mmlu.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    task = load_task("mmlu_nb", {"mmlu_nb": str(path)})
    assert [s.target for s in task.samples] == [1, 0]
    assert "二加二等于几？\nA. 四" in task.samples[1].prompt


def test_published_layouts_cmmlu_truthfulqa_labels_and_gzipped_jsonl(tmp_path):
    import gzip

    # CMMLU: a folder of per-subject CSVs with the header ",Question,A,B,C,D,Answer" (answer a letter)
    (tmp_path / "cmmlu" / "dev").mkdir(parents=True)
    (tmp_path / "cmmlu" / "test").mkdir()
    for split, n in (("dev", 2), ("test", 3)):
        rows = "".join(f"{i},问题{i}是什么？,甲{i},乙{i},丙{i},丁{i},{'ABCD'[i % 4]}\n" for i in range(n))
        (tmp_path / "cmmlu" / split / f"agronomy_{split}.csv").write_text(",Question,A,B,C,D,Answer\n" + rows)
    task = load_task("mmlu_zh", {"mmlu_zh": str(tmp_path / "cmmlu")}, shots=2)
    assert [s.target for s in task.samples] == [0, 1, 2] and task.samples[0].group == "agronomy"
    assert "问题0是什么？\nA. 甲0\nB. 乙0\nC. 丙0\nD. 丁0\nAnswer: A\n\n" in task.samples[0].prompt
    # TruthfulQA with {choices, labels} targets (the mc_task.json shape of the translated releases)
    tqa = tmp_path / "tqa.json"
    tqa.write_text(json.dumps([{"question": "q?", "mc1_targets": {"choices": ["yes", "no"], "labels": [0, 1]},
                                "mc2_targets": {"choices": ["yes", "no", "nope"], "labels": [0, 1, 1]}}]))
    s = load_task("truthfulqa_mc", {"truthfulqa_mc": str(tqa)}).samples[0]
    assert s.target == {"mc1": [0, 1], "mc2": [0, 1, 1]} and s.choices == [" yes", " no", " yes", " no", " nope"]
    # translated MMLU and HumanEval as .jsonl.gz
    mmlu = tmp_path / "nb.jsonl.gz"
    with gzip.open(mmlu, "wt", encoding="utf-8") as f:
        f.write(json.dumps({"instruction": "Hva er 2+2?", "option_a": "3", "option_b": "4", "option_c": "5",
                            "option_d": "6", "answer": "B"}, ensure_ascii=False) + "\n")
    assert load_task("mmlu_nb", {"mmlu_nb": str(mmlu)}).samples[0].target == 1
    he = tmp_path / "HumanEval.jsonl.gz"
    with gzip.open(he, "wt") as f:
        f.write(write_humaneval(tmp_path / "he.jsonl").read_text())
    assert [s.id for s in load_task("humaneval", {"humaneval": str(he)}).samples] == ["T/0", "T/1"]


def reference_loglikelihood(model, tokenizer, context: str, continuation: str) -> float:
    """Straightforward scoring of one request: tokenise, one forward pass, sum the log-probs."""
    ctx = tokenizer(context, add_special_tokens=False).input_ids
    whole = tokenizer(context + continuation, add_special_tokens=False).input_ids
    ids = torch.tensor([whole])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0].float(), -1)
    return float(sum(logprobs[i - 1, whole[i]] for i in range(len(ctx), len(whole))))


def test_shared_prefix_scoring_equals_plain_scoring(backend, mmlu_dir, monkeypatch):
    task = load_task("mmlu", {"mmlu": str(mmlu_dir)}, shots=1)
    assert all(len(backend.encode(s.prompt)) < backend.max_length for s in task.samples)  # no truncation
    requests = [Loglikelihood(s.prompt, c) for s in task.samples for c in s.choices]
    groups = hf_backend._group_by_prefix  # the prefix cache is really used
    calls = []
    monkeypatch.setattr(hf_backend, "_group_by_prefix", lambda rows: calls.append(g := groups(rows)) or g)
    shared = backend.loglikelihood(requests)
    assert sum(len(members) for prefix, members in calls[0] if len(prefix) >= 32) == len(task.samples)
    monkeypatch.setattr(hf_backend, "MIN_SHARED", 10**9)
    plain = backend.loglikelihood(requests)
    np.testing.assert_allclose(shared, plain, atol=1e-4)
    monkeypatch.setattr(hf_backend, "BATCH_TOKENS", 1)  # one row per forward pass
    one_by_one = backend.loglikelihood(requests)
    np.testing.assert_allclose(shared, one_by_one, atol=1e-4)
    k = len(task.samples[0].choices)
    assert (np.argmax(np.reshape(shared, (-1, k)), 1) == np.argmax(np.reshape(one_by_one, (-1, k)), 1)).all()
    for r, got in list(zip(requests, shared, strict=True))[:6]:
        assert got == pytest.approx(reference_loglikelihood(backend.model, backend.tokenizer, r.context,
                                                            r.continuation), abs=1e-4)


def test_batched_generation_equals_one_at_a_time(backend):
    prompts = ["def add(a, b):", "import os\n\nclass Path", "x = [", "for i in range(10):\n    print(i)\n"]
    requests = [Generation(p, max_tokens=12, stop=("\n\n",)) for p in prompts]
    batched = backend.generate(requests)
    single = [backend.generate_ids(backend.prompt_ids(r), r) for r in requests]
    assert batched == single and all(len(texts) == 1 for texts in batched)
    two = backend.generate([Generation(prompts[0], max_tokens=8, temperature=1.0, n=2)])
    assert len(two) == 1 and len(two[0]) == 2


def test_eval_cli_writes_results_and_samples(tiny_run, mmlu_dir, tmp_path):
    tqa = write_truthfulqa(tmp_path / "mc_task.json")
    out = tmp_path / "res"
    proc = run_cli("eval", "--model", f"run:{tiny_run}", "--tasks", "mmlu,truthfulqa_mc", "--data",
                   f"mmlu={mmlu_dir}", "--data", f"truthfulqa_mc={tqa}", "--out", str(out), "--limit", "5")
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["model"] == f"run:{tiny_run}"
    mmlu = results["tasks"]["mmlu"]
    assert mmlu["n"] == 5 and set(mmlu["metrics"]) == {"acc", "acc_norm"}
    for m in [*mmlu["metrics"].values(), *results["tasks"]["truthfulqa_mc"]["metrics"].values()]:
        assert set(m) == {"value", "stderr", "ci95"} and m["ci95"][0] <= m["value"] <= m["ci95"][1]
    assert set(results["tasks"]["truthfulqa_mc"]["metrics"]) == {"mc1", "mc2"}
    assert "basic_math" in mmlu["groups"]
    rows = [json.loads(line) for line in (out / "samples_mmlu.jsonl").read_text().splitlines()]
    assert len(rows) == 5
    for r in rows:
        assert {"id", "prompt", "choices", "loglikelihoods", "pred", "target"} <= set(r)
        assert r["pred"] == int(np.argmax(r["loglikelihoods"]))
        assert r["scores"]["acc"] == float(r["pred"] == r["target"])
    tqa_rows = [json.loads(line) for line in (out / "samples_truthfulqa_mc.jsonl").read_text().splitlines()]
    r = tqa_rows[0]
    p = np.exp(np.array(r["loglikelihoods"][3:]))  # MC2 choices follow the 3 MC1 ones
    assert r["scores"]["mc2"] == pytest.approx(p[:2].sum() / p.sum(), rel=1e-6)


def test_truthfulqa_csv_layout(tmp_path):
    path = tmp_path / "TruthfulQA.csv"
    path.write_text("Type,Category,Question,Best Answer,Correct Answers,Incorrect Answers,Source\n"
                    'Adversarial,Misc,What is 2+2?,Four,Four; 4,Five; Three,x\n')
    task = load_task("truthfulqa_mc", {"truthfulqa_mc": str(path)})
    s = task.samples[0]
    assert s.target == {"mc1": [1, 0, 0], "mc2": [1, 1, 0, 0]}
    assert s.choices == [" Four", " Five", " Three", " Four", " 4", " Five", " Three"]
    assert s.prompt.startswith("Q: What is human life expectancy") and s.prompt.endswith("Q: What is 2+2?\nA:")


class _Counting:
    """Counts the requests that reach the model; fails after `fail_after` calls (a killed eval)."""

    def __init__(self, inner, fail_after=None):
        self.inner, self.identity, self.calls, self.requests, self.fail_after = inner, inner.identity, 0, 0, fail_after

    def loglikelihood(self, requests):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt
        self.calls += 1
        self.requests += len(requests)
        return self.inner.loglikelihood(requests)


def test_interrupted_eval_resumes_from_the_response_cache(backend, tmp_path, monkeypatch):
    from scalelab.evals import cache as cache_module

    monkeypatch.setattr(cache_module, "CHUNK", 8)
    root = write_mmlu(tmp_path / "m", header=False)
    task = load_task("mmlu", {"mmlu": str(root)}, shots=2)
    n_requests = sum(len(s.choices) for s in task.samples)
    cache = ResponseCache(tmp_path / "cache.sqlite")
    first = _Counting(backend, fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        task.run(CachedBackend(first, cache))
    assert first.requests == 16
    second = _Counting(backend)
    rows = task.run(CachedBackend(second, ResponseCache(tmp_path / "cache.sqlite")))
    assert second.requests == n_requests - 16
    again = _Counting(backend)
    assert task.run(CachedBackend(again, cache)) == rows and again.requests == 0


def test_the_response_cache_never_answers_for_another_model_or_a_retrained_run(tiny_run, mmlu_dir, tmp_path):
    """Stale scores are the worst silent failure of an eval tool: the cache keys on the weights."""
    import shutil

    from scalelab.train import build_config, train

    task = load_task("mmlu", {"mmlu": str(mmlu_dir)}, shots=1)
    n_requests = sum(len(s.choices) for s in task.samples)
    cache = ResponseCache(tmp_path / "cache.sqlite")
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    first = _Counting(load_backend(f"run:{run}"))
    rows = task.run(CachedBackend(first, cache))
    again = _Counting(load_backend(f"run:{run}"))
    assert task.run(CachedBackend(again, cache)) == rows and again.requests == 0  # same weights: all cached
    # the same run folder trained further: new weights, so every request goes to the model again
    config = json.loads((run / "config.json").read_text()) | {"steps": 70}
    (run / "config.json").write_text(json.dumps(config))  # on resume the saved config is the one used
    train(build_config("tiny"), run, resume=True, show_progress=False)
    retrained = _Counting(load_backend(f"run:{run}"))
    assert retrained.identity != first.identity
    new_rows = task.run(CachedBackend(retrained, cache))
    assert retrained.requests == n_requests
    assert [r["loglikelihoods"] for r in new_rows] != [r["loglikelihoods"] for r in rows]
    other = _Counting(load_backend(f"run:{tiny_run}", precision="bf16"))  # the same weights in another precision
    task.run(CachedBackend(other, cache))
    assert other.requests == n_requests


def test_humaneval_scores_given_samples_in_the_sandbox(tmp_path):
    problems = write_humaneval(tmp_path / "HumanEval.jsonl")
    samples = tmp_path / "samples.jsonl"
    completions = [("T/0", "    return a + b\n"), ("T/0", "    return a - b\n"), ("T/1", "    while True: pass\n"),
                   ("T/1", "    return 2 * x\n")]
    samples.write_text("".join(json.dumps({"task_id": t, "completion": c}) + "\n" for t, c in completions))
    out = tmp_path / "he"
    proc = run_cli("eval", "--tasks", "humaneval", "--data", f"humaneval={problems}", "--samples", str(samples),
                   "--out", str(out), "--sandboxes", "2")
    assert proc.returncode == 0, proc.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["sandbox"] in ("bubblewrap", "rlimits")
    assert res["sandbox_isolation"]["parallel"] == 2 and res["sandbox_isolation"]["mode"] == res["sandbox"]
    assert res["tasks"]["humaneval"]["metrics"]["pass@1"]["value"] == pytest.approx(0.5)
    rows = {r["task_id"]: r for r in map(json.loads, (out / "samples_humaneval.jsonl").read_text().splitlines())}
    assert rows["T/0"]["passed"] is True and rows["T/0"]["passed_each"] == [True, False]
    assert rows["T/0"]["errors"][1] == "assertion"
    assert rows["T/1"]["error"] == "timeout" and rows["T/1"]["passed_each"] == [False, True]


def test_humaneval_with_generated_completions(backend, tmp_path):
    """The model writes the completions (greedy, then 3 samples); each is run, and pass@k counts them."""
    from scalelab.evals.tasks.humaneval import STOP

    problems = write_humaneval(tmp_path / "HumanEval.jsonl")
    greedy = load_task("humaneval", {"humaneval": str(problems)})
    results = evaluate(backend, [greedy], tmp_path / "g", "tiny", cache_path=tmp_path / "c.sqlite", show_progress=False)
    rows = [json.loads(x) for x in (tmp_path / "g" / "samples_humaneval.jsonl").read_text().splitlines()]
    expected = backend.generate([Generation(s.prompt, max_tokens=512, stop=STOP) for s in greedy.samples])
    assert [r["completion"] for r in rows] == [e[0] for e in expected]
    assert results["tasks"]["humaneval"]["metrics"]["pass@1"]["value"] == np.mean([r["passed"] for r in rows])
    sampled = load_task("humaneval", {"humaneval": str(problems)}, humaneval={"n": 3, "temperature": 1.0})
    evaluate(backend, [sampled], tmp_path / "s", "tiny", cache_path=tmp_path / "c.sqlite", show_progress=False)
    rows = [json.loads(x) for x in (tmp_path / "s" / "samples_humaneval.jsonl").read_text().splitlines()]
    for r in rows:
        assert len(r["completions"]) == len(r["passed_each"]) == len(r["errors"]) == 3
        c = sum(r["passed_each"])
        assert r["scores"]["pass@1"] == pytest.approx(c / 3) and "pass@10" not in r["scores"]


def test_pass_at_k_matches_counting_subsets():
    from itertools import combinations

    n, c = 7, 3
    outcomes = [1] * c + [0] * (n - c)
    for k in (1, 2, 5):
        subsets = list(combinations(outcomes, k))
        assert pass_at_k(n, c, k) == pytest.approx(sum(any(s) for s in subsets) / len(subsets))


def test_verdict_parsing_counts_unparsable_as_invalid():
    assert parse_verdict("B", ["A", "B"], "classify") == "B"
    assert parse_verdict("The answer is clear.\nReasoning...\nA\nA", ["A", "B"], "cot_classify") == "A"
    assert parse_verdict("I cannot decide", ["A", "B"], "classify") is None
    assert parse_verdict("", ["Y", "N"], "cot_classify") is None
    # classify reads the first line only; cot_classify reads from the last line back
    assert parse_verdict("Hmm.\nA", ["A", "B"], "classify") is None
    assert parse_verdict("B\nA", ["A", "B"], "classify") == "B"
    assert parse_verdict("A looks right at first.\nOn reflection, no.\nB", ["A", "B"], "cot_classify") == "B"


class ScriptedGrader:
    """Stands in for a model that writes (a grader, or the model under evaluation): its reply is scripted by
    which key the prompt holds; it has no log-probabilities, as a chat API."""

    identity = "scripted-grader"

    def __init__(self, verdicts: dict[str, str]):
        self.verdicts, self.requests = verdicts, []

    @property
    def prompts(self) -> list[str]:
        return [r.prompt for r in self.requests]

    def loglikelihood(self, requests):
        raise UserError("text only")

    def generate(self, requests):
        self.requests += requests
        return [[next(v for k, v in self.verdicts.items() if k in r.prompt)] for r in requests]


def test_user_generation_task_scores_exact_match_and_inclusion(tmp_path):
    rows = [{"prompt": "Capital of France?", "ideal": "Paris"},
            {"prompt": "What is 2+2?", "ideal": ["4", "four"]},
            {"prompt": "Colour of the sky?", "ideal": "blue"},
            {"id": "chat", "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Greet"}],
             "ideal": "hi"}]
    (tmp_path / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = ScriptedGrader({"France": "Paris is the capital.", "2+2": "It is four.", "sky": "Grey today.",
                            "Greet": "  hi there"})
    task = load_task(str(tmp_path / "qa.jsonl"), {})
    results = evaluate(model, [task], tmp_path / "out", "scripted", cache_path=tmp_path / "c.sqlite",
                       show_progress=False)
    out = [json.loads(x) for x in (tmp_path / "out" / "samples_qa.jsonl").read_text().splitlines()]
    assert [r["scores"] for r in out] == [{"match": 1.0, "includes": 1.0}, {"match": 0.0, "includes": 1.0},
                                          {"match": 0.0, "includes": 0.0}, {"match": 1.0, "includes": 1.0}]
    assert [r["id"] for r in out] == ["0", "1", "2", "chat"] and out[1]["ideal"] == ["4", "four"]
    assert model.prompts[3] == "system: Be brief.\nuser: Greet"  # chat messages written one per line
    metrics = results["tasks"]["qa"]["metrics"]
    assert metrics["match"]["value"] == 0.5 and metrics["includes"]["value"] == 0.75


@pytest.mark.parametrize("eval_type", ["classify", "cot_classify"])
def test_modelgraded_task_scores_verdicts_exactly_and_counts_invalid_ones(tmp_path, eval_type):
    spec = tmp_path / "fact.yaml"
    rows = [{"input": f"What is {i}+{i}?", "ideal": str(2 * i), "completion": str(2 * i)} for i in range(4)]
    del rows[3]["completion"]  # the evaluated model writes this one
    (tmp_path / "fact.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec.write_text(f"name: fact\ntype: modelgraded\ndata: fact.jsonl\neval_type: {eval_type}\n"
                    "choice_strings: YN\nchoice_scores: {Y: 1.0, N: 0.0}\n"
                    "prompt: 'Question: {input}\\nAnswer: {completion}\\nExpert: {ideal}\\nIs the answer right?'\n")
    reasoning = "The answer matches the expert.\n" if eval_type == "cot_classify" else ""
    grader = ScriptedGrader({"What is 0+0": f"{reasoning}Y", "What is 1+1": f"{reasoning}N",
                             "What is 2+2": "I cannot tell.", "What is 3+3": f"{reasoning}Y."})
    task = load_task(str(spec), {}, grader=grader)
    model = ScriptedGrader({"What is 3+3": "6"})
    results = evaluate(model, [task], tmp_path / "out", "scripted", cache_path=tmp_path / "c.sqlite",
                       show_progress=False)
    rows = [json.loads(x) for x in (tmp_path / "out" / "samples_fact.jsonl").read_text().splitlines()]
    assert model.prompts == ["What is 3+3?"] and rows[3]["completion"] == "6"
    assert [r["prompt"] for r in rows] == [f"What is {i}+{i}?" for i in range(4)]
    assert {r.max_tokens for r in grader.requests} == {512 if eval_type == "cot_classify" else 16}
    assert [r["choice"] for r in rows] == ["Y", "N", None, "Y"]
    assert [r["scores"] for r in rows] == [{"score": 1.0}, {"score": 0.0}, {}, {"score": 1.0}]
    fact = results["tasks"]["fact"]
    assert fact["n_invalid"] == 1 and fact["metrics"]["score"]["value"] == pytest.approx(2 / 3)
    assert all("Expert: " in p and "Is the answer right?" in p for p in grader.prompts)  # the template was filled
    assert "Answer: 6\\nExpert: 6" in grader.prompts[3]  # the model's own completion was graded


class ScriptedScorer:
    """Stands in for a model under evaluation: each choice's log-likelihood from a rule; records the requests."""

    identity = "scripted-scorer"

    def __init__(self, rule):
        self.rule, self.requests = rule, []

    def loglikelihood(self, requests):
        self.requests += requests
        return [self.rule(r) for r in requests]

    def generate(self, requests):
        raise UserError("no generation")


def test_multiple_choice_scores_are_the_argmax_and_the_per_character_argmax():
    from scalelab.evals.tasks.base import MultipleChoiceTask, Sample, choice_scores

    choices = [" yes", " no, never"]  # per character: -2/4 = -0.5 against -3/10 = -0.3
    assert choice_scores(Sample("a", "p", "q", choices, target=1), [-2.0, -3.0]) == (0, {"acc": 0.0, "acc_norm": 1.0})
    assert choice_scores(Sample("b", "p", "q", choices, target=0), [-2.0, -3.0]) == (0, {"acc": 1.0, "acc_norm": 0.0})
    image = ("data:image/png;base64,iVBORw0KGgo=",)
    task = MultipleChoiceTask("t", [Sample("c", "<image>Is it?", "Is it?", choices, target=1, images=image)],
                              choice_scores)
    model = ScriptedScorer(lambda r: -1.0 if r.continuation == " no, never" else -2.0)
    [row] = task.run(model)
    assert [r.images for r in model.requests] == [image, image]  # the item's image goes with each choice
    assert (row["id"], row["prompt"], row["pred"], row["loglikelihoods"]) == ("c", "<image>Is it?", 1, [-2.0, -1.0])
    assert row["scores"] == {"acc": 1.0, "acc_norm": 1.0}


def test_mmlu_results_per_subject_from_the_models_choices(mmlu_dir, tmp_path):
    from scalelab.evals.runner import task_fingerprint

    task = load_task("mmlu", {"mmlu": str(mmlu_dir)}, shots=2)
    model = ScriptedScorer(lambda r: -1.0 if r.continuation == " B" else -2.0)  # always answers B
    results = evaluate(model, [task], tmp_path / "out", "scripted", cache_path=tmp_path / "c.sqlite",
                       show_progress=False)
    # the answers write_mmlu draws: basic_math C B A D C B (two Bs), python_code D C B A D C (one B)
    mmlu = results["tasks"]["mmlu"]
    assert results["model"] == "scripted" and mmlu["n"] == 12 and mmlu["metrics"]["acc"]["value"] == 3 / 12
    assert {g: (v["n"], v["metrics"]["acc"]["value"]) for g, v in mmlu["groups"].items()} == {
        "basic_math": (6, 2 / 6), "python_code": (6, 1 / 6)}
    assert mmlu["fingerprint"] == task_fingerprint(task) and mmlu["shots"] == 2
    rows = [json.loads(x) for x in (tmp_path / "out" / "samples_mmlu.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows[:2]] == ["basic_math/0", "basic_math/1"]
    assert rows[0]["prompt"] == task.samples[0].prompt
    assert [r["pred"] for r in rows] == [1] * 12


def test_mmlu_single_file_and_the_mmmlu_header_with_a_subject_column(tmp_path):
    # OpenAI's MMMLU: an unnamed index column first and a Subject column last
    mmmlu = tmp_path / "MMMLU_FR-FR.csv"
    mmmlu.write_text(",Question,A,B,C,D,Answer,Subject\n0,Combien font 2 + 2 ?,3,4,5,6,B,elementary_mathematics\n")
    [s] = load_task("mmlu_fr", {"mmlu_fr": str(mmmlu)}, shots=0).samples
    assert s.prompt.endswith("Combien font 2 + 2 ?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer:") and s.target == 1
    assert s.group == "MMMLU_FR-FR"
    one = load_task("mmlu", {"mmlu": str(write_mmlu(tmp_path / "m", header=False) / "test" / "basic_math_test.csv")},
                    shots=0)
    assert {x.group for x in one.samples} == {"basic_math"} and len(one.samples) == 6


def test_truthfulqa_mc1_is_the_top_answer_and_mc2_the_true_mass(tmp_path):
    from scalelab.evals.tasks.base import Sample
    from scalelab.evals.tasks.truthfulqa import mc_scores

    sample = Sample("0", "p", "q", [" a", " b", " c", " d", " e", " f"], target={"mc1": [0, 1, 0], "mc2": [1, 1, 0]})
    lls = [-3.0, -1.0, -2.0, *np.log([0.2, 0.3, 0.5])]
    pred, scores = mc_scores(sample, lls)
    assert pred == 1 and scores == {"mc1": 1.0, "mc2": pytest.approx(0.5)}
    assert mc_scores(sample, [-1.0, -3.0, -2.0, *np.log([0.2, 0.3, 0.5])])[1]["mc1"] == 0.0
    folder = tmp_path / "tqa"
    folder.mkdir()
    write_truthfulqa(folder / "mc_task.json")
    task = load_task("truthfulqa_mc", {"truthfulqa_mc": str(folder)})  # a folder: its mc_task.json
    assert len(task.samples) == 4 and task.info == {"shots": 6}
    (folder / "mc_task.json").write_text(json.dumps([{"question": "q?", "mc1_targets": {"choices": ["y", "n"]},
                                                      "mc2_targets": {"y": 1, "n": 0}}]))
    with pytest.raises(UserError, match="item 0 mc1_targets: targets need choices with labels"):
        load_task("truthfulqa_mc", {"truthfulqa_mc": str(folder)})
    with pytest.raises(UserError, match="data for task 'truthfulqa_mc' not found"):
        load_task("truthfulqa_mc", {"truthfulqa_mc": str(tmp_path / "nowhere")})


def test_user_multiple_choice_task_rows(tmp_path):
    rows = [{"question": "2+2?", "choices": ["3", "4"], "answer": "4"},
            {"id": "q7", "question": "Sky?", "choices": ["blue", "green", "red"], "answer": 0}]
    (tmp_path / "mc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = load_task(str(tmp_path / "mc.jsonl"), {})
    assert [(s.id, s.prompt, s.question, s.choices, s.target) for s in task.samples] == [
        ("0", "2+2?\nAnswer:", "2+2?", [" 3", " 4"], 1),
        ("q7", "Sky?\nAnswer:", "Sky?", [" blue", " green", " red"], 0)]
    (tmp_path / "bad.jsonl").write_text(json.dumps({"question": "q", "choices": ["a", "b"], "answer": "c"}) + "\n")
    with pytest.raises(UserError, match="bad.jsonl:1: answer 'c' is not one of the choices"):
        load_task(str(tmp_path / "bad.jsonl"), {})
    (tmp_path / "bad.jsonl").write_text(json.dumps({"question": "q", "choices": ["a"], "answer": 0}) + "\n")
    with pytest.raises(UserError, match="bad.jsonl:1: 'choices' must be a list of at least two answers"):
        load_task(str(tmp_path / "bad.jsonl"), {})


def test_humaneval_given_samples_in_process_record_the_sandbox(tmp_path):
    from scalelab.evals import read_completions
    from scalelab.evals.tasks.humaneval import load_humaneval

    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps({"task_id": t, "completion": c}) + "\n" for t, c in [
        ("T/0", "    return a + b\n"), ("T/1", "    return 3 * x\n"), ("T/0", "    return b + a\n")]))
    given = read_completions(samples)
    assert given == {"T/0": ["    return a + b\n", "    return b + a\n"], "T/1": ["    return 3 * x\n"]}
    task = load_humaneval(write_humaneval(tmp_path / "HumanEval.jsonl"), given=given, parallel=2)
    assert [s.question for s in task.samples] == [s.prompt for s in task.samples]  # what contamination reads
    results = evaluate(None, [task], tmp_path / "out", "given", cache_path=tmp_path / "c.sqlite", show_progress=False)
    assert results["sandbox"] in ("bubblewrap", "rlimits")
    assert results["sandbox_isolation"]["mode"] == results["sandbox"]
    assert results["tasks"]["humaneval"]["metrics"]["pass@1"]["value"] == 0.5  # T/0 passes both, T/1 neither
    (tmp_path / "bad.jsonl").write_text(json.dumps({"completion": "x"}) + "\n")
    with pytest.raises(UserError, match="bad.jsonl:1: missing field 'task_id'"):
        read_completions(tmp_path / "bad.jsonl")


def test_a_grader_without_log_probabilities_writes_its_answer():
    from scalelab.evals.grading import Graded, choice_probabilities

    grader = ScriptedGrader({"first": "B", "second": "I'm sorry, I can’t grade this.", "third": "Maybe."})
    graded = choice_probabilities(grader, ["first", "second", "third"], ["A", "B"])
    assert graded == [Graded({"A": 0.0, "B": 1.0}, reply="B"),
                      Graded(None, "grader refused", "I'm sorry, I can’t grade this."),
                      Graded(None, "unparsable", "Maybe.")]
    assert {r.max_tokens for r in grader.requests} == {4}
    # with log-likelihoods: a softmax over the answers that stays finite far from zero
    far_off = ScriptedScorer(lambda r: -800.0 if r.continuation == " A" else -801.0)
    far = choice_probabilities(far_off, ["p"], ["A", "B"])
    assert far[0].probs == pytest.approx({"A": 1 / (1 + np.exp(-1)), "B": 1 / (1 + np.exp(1))})


def test_compare_paired_statistics(tmp_path):
    from scalelab.evals.compare import compare

    rng = np.random.default_rng(0)
    for name, p in (("a", 0.8), ("b", 0.5)):
        folder = tmp_path / name
        folder.mkdir()
        scores = (rng.random(200) < p).astype(float)
        (folder / "samples_t.jsonl").write_text("".join(json.dumps({"id": str(i), "scores": {"acc": s}}) + "\n"
                                                        for i, s in enumerate(scores)))
        (folder / "results.json").write_text(json.dumps({"model": name, "tasks": {"t": {"n": 200}}}))
    out = compare(tmp_path / "a", tmp_path / "b")["tasks"]["t"]["metrics"]["acc"]
    assert out["difference"] > 0.15 and out["ci95"][0] > 0 and out["mcnemar"]["p_value"] < 1e-3
    same = compare(tmp_path / "a", tmp_path / "a")["tasks"]["t"]["metrics"]["acc"]
    assert same["difference"] == 0 and same["mcnemar"]["p_value"] == 1.0
    assert mcnemar([1, 1, 0], [0, 0, 0])["only_a"] == 2
    s = summarize([0, 1] * 50)
    assert s["value"] == 0.5 and s["stderr"] == pytest.approx(0.05025, abs=1e-4)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(tiny_run, *flags: str):
    """`scalelab serve` on the tiny run, on a free loopback port; yields the base URL."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "scalelab", "serve", f"run:{tiny_run}", "--port", str(port),
                             "--name", "tiny", *flags], stderr=subprocess.PIPE, text=True)
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail(proc.stderr.read())
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def server(tiny_run):
    with serving(tiny_run) as url:  # the default precision: what users get
        yield url


def _rows(folder: Path, task: str) -> list[dict]:
    return [json.loads(x) for x in (folder / f"samples_{task}.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("shots", [1, 3])  # 3 shots overflow the 256-token context: truncation must agree too
def test_eval_through_http_matches_in_process(server, tiny_run, mmlu_dir, tmp_path, shots):
    """Under the default precision, in-process and HTTP scoring agree on every machine (bf16 CPU units or not)."""
    tasks = [load_task("mmlu", {"mmlu": str(mmlu_dir)}, shots=shots),
             load_task("truthfulqa_mc", {"truthfulqa_mc": str(write_truthfulqa(tmp_path / "tqa.json"))})]
    in_process = load_backend(f"run:{tiny_run}")
    assert in_process.precision == "fp32"
    local = evaluate(in_process, tasks, tmp_path / "local", "local", cache_path=tmp_path / "c.sqlite",
                     show_progress=False)
    remote = evaluate(load_backend(f"openai:tiny@{server}"), tasks, tmp_path / "http", "http",
                      cache_path=tmp_path / "c.sqlite", show_progress=False)
    assert local["precision"] == remote["precision"] == "fp32"  # the server reports what it runs in
    decided = 0
    for task in ("mmlu", "truthfulqa_mc"):
        rows_l, rows_h = _rows(tmp_path / "local", task), _rows(tmp_path / "http", task)
        np.testing.assert_allclose(np.concatenate([r["loglikelihoods"] for r in rows_l]),
                                   np.concatenate([r["loglikelihoods"] for r in rows_h]), atol=1e-4)
        # The same choice wherever the best choice leads by more than that tolerance. In this tiny model the
        # letters' byte tokens never occur in training, so their readout rows stay equal (μP's zero init) and
        # the choices " A".." D" tie exactly; one path may then differ in a float's last bit, and which tied
        # choice argmax picks is noise (seen once in `make test`: pred 0 in-process, 1 over HTTP).
        gap = [np.diff(np.sort(r["loglikelihoods"]))[-1] for r in rows_l]
        mine = [i for i, g in enumerate(gap) if g > 1e-4]
        assert [rows_l[i]["pred"] for i in mine] == [rows_h[i]["pred"] for i in mine]
        decided += len(mine)
        if len(mine) == len(rows_l):
            for name, m in local["tasks"][task]["metrics"].items():
                assert remote["tasks"][task]["metrics"][name]["value"] == pytest.approx(m["value"], abs=1e-4)
    assert decided >= 4  # the comparison is not empty


def test_bf16_is_an_explicit_recorded_choice(tiny_run, mmlu_dir, tmp_path):
    """bf16 runs on any CPU (slowly without bf16 units): recorded, cached apart, close to fp32 but not equal."""
    task = load_task("mmlu", {"mmlu": str(mmlu_dir)}, shots=1)
    cache = tmp_path / "c.sqlite"
    fp32 = evaluate(load_backend(f"run:{tiny_run}"), [task], tmp_path / "fp32", "m", cache_path=cache,
                    show_progress=False)
    bf16_backend = load_backend(f"run:{tiny_run}", precision="bf16")
    assert bf16_backend.model.dtype == torch.bfloat16
    bf16 = evaluate(bf16_backend, [task], tmp_path / "bf16", "m", cache_path=cache, show_progress=False)
    assert (fp32["precision"], bf16["precision"]) == ("fp32", "bf16")
    a = np.concatenate([r["loglikelihoods"] for r in _rows(tmp_path / "fp32", "mmlu")])
    b = np.concatenate([r["loglikelihoods"] for r in _rows(tmp_path / "bf16", "mmlu")])
    assert not np.array_equal(a, b)  # answered by the bf16 model, not from the fp32 cache entries
    assert np.max(np.abs(a - b)) < 0.5
    with serving(tiny_run, "--precision", "bf16") as url:
        remote = load_backend(f"openai:tiny@{url}")
        assert remote.precision == "bf16" and remote.identity.endswith("|bf16")
        requests = [Loglikelihood(s.prompt, c) for s in task.samples[:4] for c in s.choices]
        drift = np.abs(np.array(remote.loglikelihood(requests)) - np.array(bf16_backend.loglikelihood(requests)))
        assert np.max(drift) < 0.5  # bf16 paths drift apart (bench/precision_drift.py measures it on SmolLM2)
    with pytest.raises(UserError, match="decides its precision"):
        load_backend(f"openai:tiny@{url}", precision="bf16")


def test_completions_take_token_ids_and_return_top_logprobs(server, backend):
    """What lm-evaluation-harness's local-completions sends: token-ID prompts, echo, logprobs=1, max_tokens=1."""
    import openai

    client = openai.OpenAI(base_url=server, api_key="none")
    texts = ["def add(a, b):\n    return", "import os\nimport sys"]
    ids = [backend.encode(t) for t in texts]
    batched = client.completions.create(model="tiny", prompt=ids, max_tokens=1, echo=True, logprobs=2,
                                        temperature=0)
    assert [c.index for c in batched.choices] == [0, 1]
    for text, prompt, choice in zip(texts, ids, batched.choices, strict=True):
        lp = choice.logprobs
        assert len(lp.token_logprobs) == len(prompt) + 1 and lp.token_logprobs[0] is None
        assert lp.top_logprobs[0] is None and all(len(t) == 2 for t in lp.top_logprobs[1:])
        # the echoed part is the prompt's own scoring; the last token is the greedy continuation
        assert choice.text.startswith(text)
        greedy = backend.generate_ids(prompt, Generation(text, max_tokens=1))[0]
        assert choice.text == text + greedy
        for token_lp, top in zip(lp.token_logprobs[1:], lp.top_logprobs[1:], strict=True):
            assert max(top.values()) >= token_lp - 1e-6
        assert lp.token_logprobs[-1] == max(lp.top_logprobs[-1].values())  # greedy: it is the top token
    single = client.completions.create(model="tiny", prompt=ids[0], max_tokens=0, echo=True, logprobs=0,
                                       temperature=0)
    text_prompt = client.completions.create(model="tiny", prompt=texts[0], max_tokens=0, echo=True, logprobs=0,
                                            temperature=0)
    np.testing.assert_allclose(single.choices[0].logprobs.token_logprobs[1:],
                               text_prompt.choices[0].logprobs.token_logprobs[1:], atol=1e-5)
    np.testing.assert_allclose(single.choices[0].logprobs.token_logprobs[1:],
                               batched.choices[0].logprobs.token_logprobs[1:-1], atol=1e-4)
    with pytest.raises(openai.BadRequestError, match="token-ID"):
        client.completions.create(model="tiny", prompt=[[10**9]], max_tokens=0, echo=True, logprobs=0)
    generated = client.completions.create(model="tiny", prompt=texts[0], max_tokens=5, logprobs=1, temperature=0)
    lp = generated.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) and "".join(lp.tokens).startswith(
        generated.choices[0].text[:1])


def test_lm_eval_local_completions_matches_its_own_hf_run(server, tiny_run, tmp_path):
    """lm-evaluation-harness as the client: through our server it scores what its own HF backend scores."""
    import yaml

    lm_eval = pytest.importorskip("lm_eval")  # a test dependency (pyproject's test extra)
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from scalelab.evals.backends import hf_folder

    root = write_mmlu(tmp_path / "mmlu", header=True)
    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    (tasks_dir / "local_mmlu.yaml").write_text(yaml.safe_dump({
        "task": "local_mmlu", "dataset_path": "csv",
        "dataset_kwargs": {"data_files": {"test": str(root / "test" / "basic_math_test.csv"),
                                          "dev": str(root / "dev" / "basic_math_dev.csv")}},
        "test_split": "test", "fewshot_split": "dev", "fewshot_config": {"sampler": "first_n"}, "num_fewshot": 2,
        "output_type": "multiple_choice",
        "doc_to_text": "{{question.strip()}}\nA. {{choice0}}\nB. {{choice1}}\nC. {{choice2}}\nD. {{choice3}}\nAnswer:",
        "doc_to_choice": ["A", "B", "C", "D"], "doc_to_target": "answer", "metric_list": [{"metric": "acc"}]}))
    folder = hf_folder(f"run:{tiny_run}")
    common = dict(tasks=["local_mmlu"], log_samples=True, task_manager=TaskManager(include_path=str(tasks_dir)),
                  verbosity="ERROR")
    ours = {}
    for tokenized in (True, False):
        ours[tokenized] = lm_eval.simple_evaluate(
            model="local-completions", model_args=f"model=tiny,base_url={server}/completions,tokenizer={folder},"
            f"tokenizer_backend=huggingface,tokenized_requests={tokenized},max_length=256,max_retries=1", **common)
    theirs = lm_eval.simple_evaluate(model=HFLM(pretrained=str(folder), dtype="float32", batch_size=4, device="cpu",
                                                max_length=256), **common)

    def scores(out):
        return np.array([[x[0] for x in r["filtered_resps"]] for r in out["samples"]["local_mmlu"]])

    for run in ours.values():
        assert run["results"]["local_mmlu"]["acc,none"] == theirs["results"]["local_mmlu"]["acc,none"]
        np.testing.assert_allclose(scores(run), scores(theirs), atol=1e-4)
        assert scores(run).shape == (6, 4)


def test_server_chat_streams_and_lists_models(server):
    import openai

    client = openai.OpenAI(base_url=server, api_key="none")
    assert [m.id for m in client.models.list().data] == ["tiny"]
    whole = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "def f"}],
                                           max_tokens=12, temperature=0)
    pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "def f"}], max_tokens=12, temperature=0, stream=True)]
    assert len(pieces) > 2 and "".join(pieces) == whole.choices[0].message.content


def test_bad_input_is_one_clean_line(tiny_run, mmlu_dir, tmp_path):
    out = tmp_path / "o"
    assert_clean_error(run_cli("eval", "--model", f"run:{tiny_run}", "--tasks", "nosuch", "--out", str(out)),
                       "unknown task")
    assert_clean_error(run_cli("eval", "--model", "bogus:x", "--tasks", "mmlu", "--data", f"mmlu={mmlu_dir}",
                               "--out", str(out)), "unknown model spec")
    assert_clean_error(run_cli("eval", "--model", f"run:{tiny_run}", "--tasks", "mmlu", "--out", str(out)),
                       "--data mmlu=PATH")
    bad = tmp_path / "bad"
    (bad / "test").mkdir(parents=True)
    (bad / "test" / "x_test.csv").write_text("q,1,2,3,4,A\nq2,1,2,3,4,E\n")
    assert_clean_error(run_cli("eval", "--model", f"run:{tiny_run}", "--tasks", "mmlu", "--data", f"mmlu={bad}",
                               "--out", str(out)), "x_test.csv:2")
    assert_clean_error(run_cli("eval", "--model", "openai:m@http://127.0.0.1:9/v1", "--tasks", "mmlu", "--data",
                               f"mmlu={mmlu_dir}", "--out", str(out), "--cache", str(tmp_path / "c.sqlite")),
                       "cannot reach")
    assert not out.exists()
    with pytest.raises(UserError, match="option_b"):
        (tmp_path / "t.jsonl").write_text('{"instruction": "q", "option_a": "1", "answer": "A"}\n')
        load_task("mmlu_x", {"mmlu_x": str(tmp_path / "t.jsonl")})


def test_openai_backend_retries_rate_limits(tmp_path):
    """An upstream that answers 429 twice, then a completion with prompt log-probabilities."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    calls = []

    class Flaky(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("retry-after-ms", "10")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._send(200, {"object": "list", "data": []})

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            calls.append(self.path)
            if len(calls) <= 2:
                return self._send(429, {"error": {"message": "slow down"}})
            self._send(200, {"id": "x", "object": "text_completion", "created": 0, "model": "m", "choices": [
                {"index": 0, "text": "Answer: B", "finish_reason": "length", "logprobs": {
                    "tokens": ["Answer", ":", " B"], "token_logprobs": [None, -0.5, -1.25], "text_offset": [0, 6, 7],
                    "top_logprobs": None}}]})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        backend = load_backend(f"openai:m@http://127.0.0.1:{server.server_address[1]}/v1")
        assert backend.loglikelihood([Loglikelihood("Answer:", " B")]) == [-1.25]
        assert len(calls) == 3
    finally:
        server.shutdown()


def test_paired_difference_and_mcnemar_are_their_formulas():
    """The comparison numbers `scalelab compare` reports, pinned to their definitions on known data."""
    from scipy import stats as sps

    from scalelab.evals.stats import bootstrap_means, paired_difference

    a = [1, 1, 1, 0, 1, 0, 1, 1, 0, 1] * 3
    b = [1, 0, 0, 0, 1, 1, 0, 1, 0, 0] * 3
    out = paired_difference(a, b, seed=4, n_bootstrap=500)
    d = np.array(a, float) - np.array(b, float)
    means = bootstrap_means(d, 4, 500)
    assert out["difference"] == pytest.approx(d.mean()) and out["n"] == 30
    assert out["ci95"] == pytest.approx(np.percentile(means, [2.5, 97.5]).tolist())
    assert out["p_bootstrap"] == pytest.approx(np.mean(np.abs(means - d.mean()) >= abs(d.mean())))
    assert paired_difference(a, b, seed=4, n_bootstrap=500) == out  # seeded
    assert paired_difference([0.5, 0.25], [0.25, 0.5], seed=0, n_bootstrap=50)["difference"] == 0.0  # not rounded
    test = mcnemar(a, b)
    assert (test["only_a"], test["only_b"]) == (12, 3)
    assert test["p_value"] == pytest.approx(sps.binomtest(12, 15, 0.5).pvalue)
    assert mcnemar([0.5, 1], [0.5, 0]) == {"only_a": 1, "only_b": 0, "p_value": 1.0}  # 0.5 is not a pass
    assert mcnemar([1, 0], [1, 0])["p_value"] == 1.0


def test_proportion_is_the_wilson_interval():
    """The share and 95% interval every ASR and over-refusal rate is reported with: Wilson's score
    interval written out, exact at 0/n and n/n where a bootstrap collapses to a point."""
    from scalelab.evals.stats import proportion

    z = 1.959963984540054
    for k, n in [(7, 20), (0, 12), (12, 12), (1, 3)]:
        centre = (k + z * z / 2) / (n + z * z)
        half = z / (n + z * z) * np.sqrt(k * (n - k) / n + z * z / 4)
        out = proportion(k, n)
        assert out["value"] == k / n and out["n"] == n
        assert out["ci95"] == pytest.approx([centre - half, centre + half], abs=1e-12)
    assert proportion(0, 12)["ci95"][0] == pytest.approx(0, abs=1e-12)
    assert proportion(12, 12)["ci95"][1] == pytest.approx(1)
    assert proportion(0, 0) == {"value": None, "ci95": [None, None], "n": 0}


class _Echo:
    """Stands in for a model: the log-likelihood is minus the continuation's length, a generation
    echoes the prompt; every call is recorded."""

    def __init__(self, identity="echo"):
        self.identity, self.calls = identity, []

    def loglikelihood(self, requests):
        self.calls.append(len(requests))
        return [-float(len(r.continuation)) for r in requests]

    def generate(self, requests):
        self.calls.append(len(requests))
        return [[r.prompt.upper()] for r in requests]


def test_cached_backend_asks_once_per_distinct_request_in_chunks_and_keeps_order(tmp_path, monkeypatch):
    from scalelab.evals import cache as cache_module
    from scalelab.evals.requests import Generation

    monkeypatch.setattr(cache_module, "CHUNK", 300)
    requests = [Loglikelihood(f"c{i % 1050}", "x" * (i % 7)) for i in range(2100)]  # 1050 distinct, each twice
    heard = []
    model = _Echo()
    path = tmp_path / "not" / "yet" / "c.sqlite"  # a first run: the cache's folders do not exist yet
    cache = ResponseCache(path)
    cached = CachedBackend(model, cache, on_answer=heard.append)
    assert cached.identity == "echo"
    assert cached.loglikelihood(requests) == [-float(i % 7) for i in range(2100)]
    assert model.calls == [300, 300, 300, 150]  # distinct requests only, CHUNK at a time
    assert heard == [0, 600, 600, 600, 300] and sum(heard) == len(requests)  # duplicates counted as answered
    assert len(cache.get("echo", [r.key() for r in requests])) == 1050  # read back 500 keys a query
    heard.clear()
    assert cached.loglikelihood(requests[::-1]) == [-float(i % 7) for i in range(2100)][::-1]
    assert model.calls == [300, 300, 300, 150] and heard == [2100]  # all from the cache, nothing asked
    assert cache.get("other", [requests[0].key()]) == {}  # keyed by model identity
    gens = [Generation("ab", max_tokens=2), Generation("cd", max_tokens=2), Generation("ab", max_tokens=2)]
    assert cached.generate(gens) == [["AB"], ["CD"], ["AB"]] and model.calls[-1] == 2
    fresh = _Echo()
    assert CachedBackend(fresh, ResponseCache(path)).generate(gens[:1]) == [["AB"]]
    assert fresh.calls == []  # read from the file another process wrote
