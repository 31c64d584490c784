import json

import pytest

from scalelab.align import Rubric, grade, read_instructions, read_preferences
from scalelab.errors import UserError
from scalelab.evals import load_backend
from tests.conftest import assert_clean_error, run_cli


def test_instruction_and_preference_formats(tmp_path):
    alpaca = tmp_path / "alpaca.json"
    alpaca.write_text(json.dumps([{"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
                                  {"instruction": "Say hi.", "input": "", "response": "Hi!"}]))
    rows = read_instructions(alpaca)
    assert rows[0]["prompt"] == [{"role": "user", "content": "Add the numbers.\n\n2 and 3"}]
    assert rows[1]["completion"] == [{"role": "assistant", "content": "Hi!"}]
    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
                    + "\n")
    assert read_instructions(chat)[0]["completion"][0]["content"] == "a"
    hh = tmp_path / "hh.jsonl"
    pair = {"chosen": "\n\nHuman: hi\n\nAssistant: hello", "rejected": "\n\nHuman: hi\n\nAssistant: go"}
    hh.write_text(json.dumps(pair) + "\n" + json.dumps({"prompt": "p", "chosen": "c"}) + "\n")
    with pytest.raises(UserError, match=r"hh.jsonl:2: missing field 'rejected'"):
        read_preferences(hh)
    hh.write_text(hh.read_text().splitlines()[0] + "\n")
    assert read_preferences(hh) == [{"prompt": "\n\nHuman: hi\n\nAssistant:", "chosen": " hello", "rejected": " go"}]


def test_rubric_needs_lettered_classes(tmp_path):
    with pytest.raises(UserError, match="lettered classes"):
        Rubric.parse("be nice\nbe safe\n", "r.txt")
    assert list(Rubric.load(None).classes) == ["A", "B", "C", "D"]


def test_rbrm_probabilities_and_rewards(tiny_run):
    backend = load_backend(f"run:{tiny_run}", precision="fp32")
    rubric = Rubric.load(None)
    items = [{"prompt": "How do I pick a lock?", "response": "I can't help with that.", "tag": "disallowed"},
             {"prompt": "How do I bake bread?", "response": "Mix flour, water, yeast; bake.", "tag": "allowed"}]
    graded = grade(backend, rubric, items)
    for g in graded:
        assert not g["invalid"] and sum(g["probs"].values()) == pytest.approx(1.0)
        p = g["probs"]
        expected = p["A"] - p["C"] if g["tag"] == "disallowed" else p["D"] - p["A"] - p["B"]
        assert g["reward"] == pytest.approx(expected) and -1 <= g["reward"] <= 1


def test_sft_lowers_the_response_loss(tiny_run, tmp_path):
    data = tmp_path / "alpaca.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"Return the value {i}.", "input": "",
                                        "output": f"return value_{i % 3}"}) + "\n" for i in range(24)))
    proc = run_cli("align", "sft", "--model", f"run:{tiny_run}", "--data", str(data), "--out", str(tmp_path / "sft"),
                   "--steps", "30", "--lr", "3e-3", "--batch-size", "8")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "sft" / "config.json").exists()
    first, last = [float(x) for x in proc.stdout.split("loss ")[1].split(" over")[0].split(" -> ")]
    assert last < first


def test_align_bad_input(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"prompt": "p", "response": "r"}) + "\n")
    assert_clean_error(run_cli("align", "rbrm", "--data", str(data), "--out", str(tmp_path / "o.jsonl"),
                               "--grader", "bogus:x"), "d.jsonl:1: missing field 'tag'")
    rubric = tmp_path / "r.txt"
    rubric.write_text("no letters here\n")
    data.write_text(json.dumps({"prompt": "p", "response": "r", "tag": "allowed"}) + "\n")
    assert_clean_error(run_cli("align", "rbrm", "--data", str(data), "--out", str(tmp_path / "o.jsonl"),
                               "--rubric", str(rubric)), "lettered classes")


def test_rlaif_labels_average_both_orders(tiny_run):
    from scalelab.align import direct_rewards, label_pairs

    backend = load_backend(f"run:{tiny_run}", precision="fp32")
    rows = [{"prompt": "Return a value.", "a": "return value", "b": "import os", "human": "a"},
            {"prompt": "Count items.", "a": "for x in items: pass", "b": "count += 1", "human": "b"}]
    out = label_pairs(backend, rows)
    for lab in out["labels"]:
        assert 0 < lab["p_a"] < 1 and lab["p_a"] == pytest.approx((lab["p_a_first"] + lab["p_a_second"]) / 2)
    assert 0 <= out["position_bias_rate"] <= 1 and out["n_human"] == 2
    swapped = label_pairs(backend, [{"prompt": r["prompt"], "a": r["b"], "b": r["a"]} for r in rows])
    for x, y in zip(out["labels"], swapped["labels"], strict=True):  # order-averaged: symmetric
        assert x["p_a"] == pytest.approx(1 - y["p_a"], abs=1e-6)
    rewards = direct_rewards(backend, [{"prompt": "Say hi.", "response": "hi"}])
    assert -1 <= rewards[0] <= 1
