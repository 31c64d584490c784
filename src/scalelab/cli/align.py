"""Commands of post-training: `scalelab align ...`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from scalelab.cli.app import align_app
from scalelab.cli.options import BatchSize, LearningRate, LocalModel, PairsFile, Steps, bounded
from scalelab.errors import UserError
from scalelab.io import check_output_dir, check_output_file


@align_app.command("sft")
def align_sft(
    model: LocalModel,
    data: Annotated[Path, typer.Option(help="Alpaca JSON/JSONL (instruction, input, output) or messages JSONL")],
    out: Annotated[Path, typer.Option(help="folder for the tuned Hugging Face model")],
    steps: Steps = 100,
    lr: LearningRate = 2e-5,
    batch_size: BatchSize = 4,
    lora: Annotated[bool, typer.Option(help="train LoRA adapters (peft), merged on save")] = False,
) -> None:
    """Instruction-tune a model on a stronger model's answers (loss on the responses only)."""
    from scalelab.align import SFTSettings, sft
    from scalelab.evals.backends import check_model_spec

    check_output_dir(out)
    check_model_spec(model, local=True)
    result = sft(model, data, out, SFTSettings(steps=steps, lr=lr, batch_size=batch_size, lora=lora))
    print(f"loss {result['first_loss']:.4f} -> {result['last_loss']:.4f} over {steps} steps -> {out}")


@align_app.command("rm")
def align_rm(
    model: LocalModel,
    data: PairsFile,
    out: Annotated[Path, typer.Option(help="folder for the reward model (Hugging Face)")],
    steps: Steps = 100,
    lr: LearningRate = 1e-5,
    batch_size: BatchSize = 4,
) -> None:
    """Train a reward model: Bradley-Terry on hard pairs, cross-entropy on soft AI labels."""
    from scalelab.align import RewardSettings, train_reward_model
    from scalelab.evals.backends import check_model_spec

    check_output_dir(out)
    check_model_spec(model, local=True)
    r = train_reward_model(model, data, out, RewardSettings(steps=steps, lr=lr, batch_size=batch_size))
    kind = "soft labels" if r["soft_labels"] else "pairs"
    print(f"{r['pairs']} {kind}: loss {r['first_loss']:.4f} -> {r['last_loss']:.4f}, train accuracy "
          f"{r['last_train_accuracy']:.3f} -> {out}")


@align_app.command("rm-eval")
def align_rm_eval(
    model: Annotated[Path, typer.Option(help="reward model folder (from `align rm`)")],
    data: Annotated[Path, typer.Option(help="held-out preference pairs")],
    json_out: Annotated[Path | None, typer.Option("--json", help="write the accuracy here")] = None,
) -> None:
    """Pairwise accuracy of a reward model on held-out preferences, with a bootstrap 95% CI."""
    from scalelab.align import RewardModel, pairwise_accuracy, read_preferences
    from scalelab.io import write_json

    if json_out is not None:
        check_output_file(json_out)
    pairs = read_preferences(data)
    if not (model / "config.json").exists():
        raise UserError(f"{model} is not a Hugging Face model folder (no config.json)")
    result = pairwise_accuracy(RewardModel(model), pairs)
    acc = result["accuracy"]
    print(f"pairwise accuracy {acc['value']:.3f} [{acc['ci95'][0]:.3f}, {acc['ci95'][1]:.3f}] on {result['n']} "
          f"pairs, mean margin {result['mean_margin']:+.3f}")
    if json_out:
        write_json(json_out, result)


@align_app.command("rbrm")
def align_rbrm(
    data: Annotated[Path, typer.Option(help="JSONL rows: prompt, response, tag (allowed or disallowed)")],
    out: Annotated[Path, typer.Option(help="JSONL of per-item classes and rewards")],
    grader: Annotated[str, typer.Option(help="grading model spec (smollm2, hf:, gguf:, run:, openai:) or "
                                             "trained:DIR")] = "smollm2",
    rubric: Annotated[Path | None, typer.Option(help="rubric file of lettered classes (default: GPT-4 style)")] = None,
) -> None:
    """Grade responses with a rule-based reward model: class probabilities and rewards per item."""
    from scalelab.align import Rubric, grade
    from scalelab.align.rbrm import check_grader_spec, load_grader
    from scalelab.evals.runner import write_samples
    from scalelab.evals.tasks.base import field_of
    from scalelab.io import read_jsonl

    check_output_file(out)
    check_grader_spec(grader)
    parsed = Rubric.load(rubric)
    items = []
    for line_no, row in read_jsonl(data):
        where = f"{data}:{line_no}"
        tag = field_of(row, "tag", where)
        if tag not in ("allowed", "disallowed"):
            raise UserError(f"{where}: tag must be 'allowed' or 'disallowed', not '{tag}'")
        items.append({"prompt": str(field_of(row, "prompt", where)), "response": str(field_of(row, "response", where)),
                      "tag": tag})
    graded = grade(load_grader(grader), parsed, items)
    write_samples(out, graded)
    valid = [g for g in graded if not g["invalid"]]
    mean = sum(g["reward"] for g in valid) / len(valid) if valid else float("nan")
    print(f"{len(valid)} graded, {len(graded) - len(valid)} invalid, mean reward {mean:+.3f} -> {out}")


@align_app.command("rlaif")
def align_rlaif(
    data: Annotated[Path, typer.Option(help="preference pairs: prompt/chosen/rejected JSONL or HH-RLHF")],
    out: Annotated[Path, typer.Option(help="JSONL of AI labels (P(chosen preferred)) per pair")],
    labeller: Annotated[str, typer.Option(help="labelling model spec (needs log-likelihoods)")] = "smollm2",
    cot: Annotated[bool, typer.Option(help="the labeller writes a rationale before each label")] = False,
) -> None:
    """AI preference labels with both orders averaged; position-bias rate and agreement with the human choice."""
    import random

    from scalelab.align import label_pairs, read_preferences
    from scalelab.evals import load_backend
    from scalelab.evals.backends import check_model_spec
    from scalelab.evals.runner import write_samples

    check_output_file(out)
    check_model_spec(labeller)
    rng = random.Random(0)  # which response is shown as "a" is random, so agreement is not position bias
    rows = []
    for p in read_preferences(data):
        flip = rng.random() < 0.5
        a, b = (p["rejected"], p["chosen"]) if flip else (p["chosen"], p["rejected"])
        rows.append({"prompt": p["prompt"], "a": a, "b": b, "human": "b" if flip else "a"})
    result = label_pairs(load_backend(labeller), rows, cot=cot)
    write_samples(out, result["labels"])
    print(f"{len(rows)} pairs: position-bias rate {result['position_bias_rate']:.3f}, agreement with the human "
          f"choice {result['human_agreement']:.3f} -> {out}")


@align_app.command("rl")
def align_rl(
    model: LocalModel,
    prompts: Annotated[Path, typer.Option(help="JSONL/JSON/CSV: prompt text and tag (allowed/disallowed)")],
    out: Annotated[Path, typer.Option(help="folder for the tuned policy")],
    reward: Annotated[list[str], typer.Option(help="reward, repeatable: rbrm[:GRADER], drlaif[:LABELLER], rm:FOLDER, "
                                                   "py:FILE.py:FUNC")],
    weight: Annotated[list[float] | None, typer.Option(help="one weight per --reward, in order",
                                                       callback=bounded())] = None,
    algorithm: Annotated[Literal["grpo", "rloo"], typer.Option(help="grpo or rloo")] = "grpo",
    steps: Steps = 20,
    lr: LearningRate = 1e-6,
    beta: Annotated[float, typer.Option(help="KL weight to the reference model", callback=bounded(0))] = 0.04,
    generations: Annotated[int, typer.Option(help="completions per prompt", callback=bounded(2))] = 4,
    prompts_per_step: Annotated[int, typer.Option(help="prompts per step", callback=bounded(1))] = 2,
    max_tokens: Annotated[int, typer.Option(help="longest completion", callback=bounded(1))] = 64,
    tag: Annotated[str | None, typer.Option(help="tag for every prompt when the file has none")] = None,
    rubric: Annotated[Path | None, typer.Option(help="RBRM rubric file (default: GPT-4 style)")] = None,
) -> None:
    """RL on TRL's GRPO or RLOO with weighted rewards from RBRM, d-RLAIF, reward models and your functions."""
    from scalelab.align import Rubric
    from scalelab.align.data import read_prompts
    from scalelab.align.reward_functions import build_reward
    from scalelab.align.rl import RLSettings, rl
    from scalelab.evals.backends import check_model_spec

    check_output_dir(out)
    check_model_spec(model, local=True)
    if weight and len(weight) != len(reward):
        raise UserError(f"--weight given {len(weight)} times for {len(reward)} --reward; give one per reward")
    rows = read_prompts(prompts, tag)
    parsed = Rubric.load(rubric)
    graders: dict = {}
    funcs = [build_reward(spec, parsed, graders) for spec in reward]
    result = rl(model, rows, funcs, weight or None, out,
                RLSettings(algorithm=algorithm, steps=steps, lr=lr, beta=beta, generations=generations,
                           prompts_per_step=prompts_per_step, max_completion_length=max_tokens))
    r = result["reward"]
    invalid = sum(result["invalid"].values())
    print(f"{algorithm}: mean reward {r[0]:+.3f} (first step) -> {r[-1]:+.3f} (last), {invalid} invalid gradings "
          f"-> {out}")


@align_app.command("dpo")
def align_dpo(
    model: LocalModel,
    data: PairsFile,
    out: Annotated[Path, typer.Option(help="folder for the tuned policy")],
    steps: Steps = 50,
    lr: LearningRate = 1e-6,
    beta: Annotated[float, typer.Option(help="DPO beta", callback=bounded(0, low_open=True))] = 0.1,
    batch_size: BatchSize = 4,
    min_confidence: Annotated[float, typer.Option(help="AI labels: skip pairs with |p_a - 0.5| at most this",
                                                  callback=bounded(0, 0.5, high_open=True))] = 0.0,
) -> None:
    """DPO through TRL on preference pairs; AI-labelled pairs are oriented by their label."""
    from scalelab.align import read_preferences
    from scalelab.align.rl import DPOSettings, ai_preferred, dpo
    from scalelab.evals.backends import check_model_spec

    check_output_dir(out)
    check_model_spec(model, local=True)
    rows = read_preferences(data)
    soft = [{"prompt": r["prompt"], "a": r["chosen"], "b": r["rejected"], "p_a": r["label"]} for r in rows
            if "label" in r]
    pairs = [r for r in rows if "label" not in r] + ai_preferred(soft, min_confidence)
    result = dpo(model, pairs, out, DPOSettings(steps=steps, lr=lr, beta=beta, batch_size=batch_size))
    print(f"{result['pairs']} pairs: loss {result['first_loss']:.4f} -> {result['last_loss']:.4f}, reward accuracy "
          f"{result['last_reward_accuracy']:.3f} -> {out}")


@align_app.command("eval")
def align_eval(
    policy: Annotated[str, typer.Option(help="policy model spec")],
    prompts: Annotated[Path, typer.Option(help="prompts with tags or XSTest labels (safe/unsafe)")],
    out: Annotated[Path, typer.Option(help="folder for align_eval.json and the graded replies")],
    baseline: Annotated[str | None, typer.Option(help="baseline spec: adds the policy's win rate against it")] = None,
    grader: Annotated[str, typer.Option(help="RBRM grader spec (a model, or trained:DIR)")] = "smollm2",
    judge: Annotated[str | None, typer.Option(help="win-rate judge spec (default: the grader)")] = None,
    rubric: Annotated[Path | None, typer.Option(help="RBRM rubric file")] = None,
    tag: Annotated[str | None, typer.Option(help="tag for every prompt when the file has none")] = None,
    max_tokens: Annotated[int, typer.Option(help="longest reply", callback=bounded(1))] = 96,
) -> None:
    """Refusal on disallowed prompts, over-refusal on safe ones, reward, and win rate, each with a 95% CI."""
    from scalelab.align import Rubric
    from scalelab.align.data import read_prompts
    from scalelab.align.evaluate import refusal_eval, respond, win_rate
    from scalelab.align.rbrm import check_grader_spec, load_grader
    from scalelab.evals import load_backend
    from scalelab.evals.backends import check_model_spec
    from scalelab.evals.runner import write_samples
    from scalelab.io import write_json
    from scalelab.provenance import stamp

    out = check_output_dir(out)
    for spec in (policy, baseline, judge):
        if spec is not None:
            check_model_spec(spec)
    check_grader_spec(grader)
    if baseline and judge is None and grader.startswith("trained:"):
        raise UserError("--baseline: a trained classifier cannot judge win rates; give --judge MODEL")
    rows = read_prompts(prompts, tag)
    parsed = Rubric.load(rubric)
    grading = load_grader(grader)
    texts = [r["prompt"] for r in rows]
    replies = respond(load_backend(policy), texts, max_tokens)
    result = refusal_eval(grading, parsed, rows, replies)
    write_samples(out / "graded.jsonl", result.pop("items"))
    if baseline:
        base_replies = respond(load_backend(baseline), texts, max_tokens)
        result["win_rate"] = win_rate(load_backend(judge) if judge else grading, texts, replies, base_replies)
    write_json(out / "align_eval.json", {"policy": policy, "baseline": baseline, "grader": grader, **result,
                                         "provenance": stamp()})
    for name in ("refusal_rate", "over_refusal_rate", "refusal_rate_by_phrase", "over_refusal_rate_by_phrase",
                 "reward"):
        m = result[name]
        print(f"{name:28s} {m['value']:.3f} [{m['ci95'][0]:.3f}, {m['ci95'][1]:.3f}]")
    if baseline:
        m = result["win_rate"]["win_rate"]
        print(f"{'win_rate':28s} {m['value']:.3f} [{m['ci95'][0]:.3f}, {m['ci95'][1]:.3f}]")
    print(f"{result['n_invalid']} invalid gradings -> {out / 'align_eval.json'}")


@align_app.command("demo")
def align_demo(
    out: Annotated[Path, typer.Option(help="demo folder (rerun to resume)")] = Path("runs/align-demo"),
    rl_steps: Annotated[int, typer.Option(help="GRPO steps", callback=bounded(1))] = 10,
    sft_steps: Annotated[int, typer.Option(help="SFT steps", callback=bounded(1))] = 16,
) -> None:
    """SmolLM2 end to end: evals, short SFT, GRPO on RBRM + d-RLAIF rewards, evals again -> align_report.json."""
    from scalelab.align.demo import DemoSettings, demo

    check_output_dir(out)
    report = demo(out, DemoSettings(rl_steps=rl_steps, sft_steps=sft_steps))
    for name in report["change"]:
        b, a, c = report["before"][name], report["after"][name], report["change"][name]
        print(f"{name:28s} before {b['value']:+.3f}  after {a['value']:+.3f}  change {c['difference']:+.3f} "
              f"[{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]")
    check = report["grader_check"]
    print(f"RBRM grader: AUROC {check['auroc']:.3f} separating known refusals from answers (0.5 = chance)")
    w = report["win_rate_vs_base"]["win_rate"]
    print(f"win rate vs base {w['value']:.3f} [{w['ci95'][0]:.3f}, {w['ci95'][1]:.3f}] in "
          f"{report['seconds']['total']:.0f}s -> {out / 'align_report.json'}")


