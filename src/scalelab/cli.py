"""The `scalelab` command: a thin layer over the library. Bad input exits 2 with one line."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import typer

from scalelab.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Predictable scaling, evaluation and post-training of language models.")


def _fail(message: str, code: int) -> None:
    print(f"scalelab: {message}", file=sys.stderr)
    raise typer.Exit(code)


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", help="run folder")],
    preset: Annotated[str | None, typer.Option(help="named preset: tiny, small, gpu-medium")] = None,
    config: Annotated[Path | None, typer.Option(help="JSON or TOML file of settings")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a setting: key=value")] = None,
    resume: Annotated[bool, typer.Option(help="continue the run in --out")] = False,
) -> None:
    """Train one model into a run folder (summary.json, metrics.jsonl, checkpoint.pt)."""
    from scalelab.train import TrainingDiverged, build_config
    from scalelab.train import train as run_training

    if not resume and preset is None and config is None:
        _fail("give --preset NAME or --config FILE (or --resume)", 2)
    cfg = build_config(preset or ("tiny" if resume else None), config, set_)
    try:
        summary = run_training(cfg, out, resume=resume)
    except TrainingDiverged as e:
        _fail(str(e), 3)
    print(f"final held-out loss {summary['final_eval_loss']:.4f} after {summary['tokens']:,} tokens "
          f"({summary['flops']:.3g} FLOPs) in {summary['wall_seconds']:.1f}s -> {out / 'summary.json'}")


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="a finished or checkpointed run folder")],
    out_dir: Annotated[Path, typer.Argument(help="Hugging Face folder to write")],
) -> None:
    """Write a Hugging Face LlamaForCausalLM folder (safetensors, config.json, tokenizer)."""
    from scalelab.train.export import export_run

    export_run(run_dir, out_dir)
    print(f"wrote {out_dir}")


@app.command()
def fit(
    file: Annotated[Path, typer.Argument(help="CSV or JSONL with params, tokens, flops, loss (two of N, D, C)")],
    form: Annotated[str, typer.Option(help="gpt4: L(C)=a·C^b+c; chinchilla: L(N,D)=E+A/N^α+B/D^β")] = "gpt4",
    predict_flops: Annotated[list[float] | None, typer.Option(help="predict the loss at compute C")] = None,
    predict: Annotated[list[str] | None, typer.Option(help="chinchilla: predict at N,D")] = None,
    exclude_top_loss: Annotated[int, typer.Option(help="drop the K highest-loss rows before fitting")] = 0,
    bootstrap: Annotated[int, typer.Option(help="bootstrap resamples")] = 1000,
    level: Annotated[float, typer.Option(help="interval level")] = 0.9,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the fit here")] = None,
    plot: Annotated[Path | None, typer.Option(help="PNG figure (default: beside --json)")] = None,
) -> None:
    """Fit a scaling law with bootstrap intervals and a leave-largest-out backtest."""
    from scalelab.report.fit_report import fit_table, plot_fit
    from scalelab.scaling import FitUntrusted, read_points
    from scalelab.scaling import fit as fit_law

    if form not in ("gpt4", "chinchilla"):
        _fail(f"unknown --form '{form}'; choose gpt4 or chinchilla", 2)
    points = read_points(file)
    if exclude_top_loss:
        points = points.take(np.argsort(points.loss)[: len(points) - exclude_top_loss])
    queries = [{"flops": c} for c in predict_flops or []] if form == "gpt4" else []
    if form == "chinchilla":
        for item in predict or []:
            try:
                n, d = (float(x) for x in item.split(","))
            except ValueError:
                _fail(f"--predict expects N,D, got '{item}'", 2)
            queries.append({"params": n, "tokens": d})
    try:
        result = fit_law(points, form, queries, n_bootstrap=bootstrap, level=level)
    except FitUntrusted as e:
        _fail(f"{file}: {e}", 3)
    print(fit_table(result, points))
    if json_out is not None:
        from scalelab.io import write_json

        out = result.to_json()
        if form == "chinchilla":
            from scalelab.scaling import compute_optimal

            out["compute_optimal"] = {k: v.tolist() for k, v in compute_optimal(
                result.params, np.logspace(18, 26, 9)).items()} | {"flops": np.logspace(18, 26, 9).tolist()}
        write_json(json_out, out)
    plot_path = plot or (json_out.with_suffix(".png") if json_out else None)
    if plot_path is not None:
        plot_fit(result, points, plot_path)


@app.command()
def forecast(
    out: Annotated[Path, typer.Option(help="forecast folder")] = Path("runs/forecast"),
    preset: Annotated[str, typer.Option(help="cpu (default, ~15 min on 2 cores), cpu-quick, gpu")] = "cpu",
    resume: Annotated[bool, typer.Option(help="continue the forecast in --out, skipping finished runs")] = False,
    target_flops: Annotated[float | None, typer.Option(help="compute of the target run")] = None,
    max_fraction: Annotated[float | None, typer.Option(help="largest ladder run / target compute")] = None,
    runs: Annotated[int | None, typer.Option(help="ladder budgets (>= 5)")] = None,
    span: Annotated[float | None, typer.Option(help="orders of magnitude the ladder spans")] = None,
    jobs: Annotated[int | None, typer.Option(help="ladder runs trained in parallel processes")] = None,
    seed: Annotated[int | None, typer.Option(help="seed of the whole forecast")] = None,
    corpus: Annotated[str | None, typer.Option(help="training corpus (default: the stdlib sources)")] = None,
) -> None:
    """Train a ladder, pre-register a forecast of the target's loss, train the target, and check."""
    from scalelab.report.forecast_report import write_forecast_report
    from scalelab.scaling.fit import FitUntrusted
    from scalelab.scaling.forecast import forecast_config, run_forecast

    cfg = forecast_config(preset, target_flops=target_flops, max_fraction=max_fraction, n_runs=runs,
                          span_decades=span, jobs=jobs, seed=seed, corpus=corpus)
    try:
        result = run_forecast(cfg, out, resume=resume)
    except FitUntrusted as e:
        _fail(f"no prediction: {e}", 3)
    write_forecast_report(result, out)
    lo, hi = result["interval_90"]
    print(f"predicted {result['predicted_loss']:.4f} [{lo:.4f}, {hi:.4f}]  actual {result['actual_loss']:.4f}  "
          f"error {100 * result['relative_error']:+.2f}%  -> {out / 'forecast.json'}, {out / 'report.html'}")


Precision = Annotated[Literal["auto", "fp32", "bf16"], typer.Option(
                                        help="scoring precision; auto = fp32 on every machine, so scores "
                                             "do not depend on the CPU or the path")]


def _data_map(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        task, sep, path = item.partition("=")
        if not sep or not task or not path:
            raise UserError(f"--data '{item}': expected TASK=PATH")
        out[task] = path
    return out


@app.command("eval")
def eval_(
    out: Annotated[Path, typer.Option(help="results folder: results.json and samples_<task>.jsonl")],
    tasks: Annotated[str, typer.Option(help="comma-separated: mmlu, mmlu_<lang>, truthfulqa_mc, humaneval, "
                                            "or .yaml/.jsonl task specs")],
    model: Annotated[str | None, typer.Option(help="smollm2, hf:PATH, gguf:PATH, run:RUN_DIR, "
                                                   "openai:MODEL@BASE_URL")] = None,
    data: Annotated[list[str] | None, typer.Option(help="TASK=PATH, once per task")] = None,
    limit: Annotated[int | None, typer.Option(help="first N items of each task")] = None,
    shots: Annotated[int, typer.Option(help="MMLU examples from dev")] = 5,
    samples: Annotated[Path | None, typer.Option(help="score given HumanEval completions "
                                                      "({task_id, completion} JSONL)")] = None,
    n: Annotated[int, typer.Option(help="HumanEval samples per task")] = 1,
    temperature: Annotated[float, typer.Option(help="HumanEval sampling temperature (0: greedy)")] = 0.0,
    sandboxes: Annotated[int | None, typer.Option(help="HumanEval programs run at once (default: the cores)")] = None,
    grader: Annotated[str | None, typer.Option(help="model spec grading model-graded tasks "
                                                    "(default: the model)")] = None,
    api_key: Annotated[str | None, typer.Option(help="key for openai: specs (default $OPENAI_API_KEY)")] = None,
    cache: Annotated[Path | None, typer.Option(help="SQLite response cache (default under $SCALELAB_CACHE)")] = None,
    contamination_corpus: Annotated[list[str] | None, typer.Option(
        help="also report every metric on the clean and contaminated items (GPT-4's substring check)")] = None,
    precision: Precision = "auto",
) -> None:
    """Evaluate a model on tasks: metrics with standard errors and bootstrap CIs, per-item samples."""
    from scalelab.evals import evaluate, load_backend, load_task, read_completions
    from scalelab.io import check_writable

    check_writable(out)
    if model is None and samples is None:
        raise UserError("give --model SPEC (or --samples FILE to score given HumanEval completions)")
    given = read_completions(samples) if samples is not None else None
    grader_backend = load_backend(grader, precision=precision, api_key=api_key) if grader else None
    settings = dict(n=n, temperature=temperature, given=given, parallel=sandboxes)
    loaded = [load_task(t.strip(), _data_map(data), shots=shots, limit=limit, grader=grader_backend,
                        humaneval=settings) for t in tasks.split(",") if t.strip()]
    backend = load_backend(model, precision=precision, api_key=api_key) if model else None
    results = evaluate(backend, loaded, out, model_name=model or f"samples:{samples}", cache_path=cache)
    if contamination_corpus:
        from scalelab.contamination import add_clean_scores

        results = add_clean_scores(out, loaded, contamination_corpus)
    for task, res in results["tasks"].items():
        for metric, m in res["metrics"].items():
            lo, hi = m["ci95"]
            print(f"{task:20s} {metric:10s} {m['value']:.4f} ± {m['stderr']:.4f}  95% CI [{lo:.4f}, {hi:.4f}]  "
                  f"n={res['n']}")
    print(f"-> {out / 'results.json'}")


@app.command()
def contamination(
    out: Annotated[Path, typer.Option(help="folder for contamination.json")],
    corpus: Annotated[list[str], typer.Option(help="training corpus: file (.gz/.zst too), folder, JSONL, "
                                                   "parquet, datasets folder, or 'stdlib'; repeatable")],
    data: Annotated[list[str], typer.Option(help="TASK=PATH of the evaluation data, repeatable")],
    method: Annotated[str, typer.Option(help="gpt4 (3 random 50-char substrings) or ngram (13-grams)")] = "gpt4",
    seed: Annotated[int, typer.Option(help="seed of the substring choice")] = 0,
    threshold: Annotated[float, typer.Option(help="ngram: overlap share that marks an example")] = 0.0,
    text_field: Annotated[str, typer.Option(help="JSONL/parquet field holding the text")] = "text",
    results: Annotated[Path | None, typer.Option(help="an eval output folder: add clean vs contaminated "
                                                      "scores to its results.json")] = None,
    jobs: Annotated[int | None, typer.Option(help="processes scanning (default: 2 or the cores)")] = None,
) -> None:
    """Find evaluation examples in training corpora (GPT-4's substring method or 13-gram overlap)."""
    from scalelab.contamination import attach_clean_scores, check, examples_of
    from scalelab.evals import load_task
    from scalelab.io import check_writable, write_json

    check_writable(out)
    paths = _data_map(data)
    tasks = [load_task(name, paths, shots=0) for name in paths]
    if results is not None and not (results / "results.json").exists():
        raise UserError(f"--results {results}: no results.json there")
    report = check(examples_of(tasks), corpus, method=method, seed=seed, threshold=threshold, jobs=jobs,
                   text_field=text_field)
    write_json(out / "contamination.json", report)
    print(f"{'task':20s} {'n':>7s} {'contaminated':>13s} {'fraction':>9s}")
    for name, entry in report["tasks"].items():
        print(f"{name:20s} {entry['n']:7d} {entry['n_contaminated']:13d} {entry['fraction']:9.2%}")
    print(f"scanned {report['bytes_scanned'] / 1e6:,.1f} MB in {report['seconds']:.1f} s "
          f"-> {out / 'contamination.json'}")
    if results is not None:
        attach_clean_scores(results, report)
        print(f"clean vs contaminated scores -> {results / 'results.json'}")


@app.command()
def serve(
    model: Annotated[str, typer.Argument(help="smollm2, hf:PATH, gguf:PATH or run:RUN_DIR")],
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
    name: Annotated[str | None, typer.Option(help="model name served (default: the spec)")] = None,
    precision: Precision = "auto",
) -> None:
    """Serve a model over an OpenAI-compatible HTTP API (/v1/models, /v1/completions, /v1/chat/completions)."""
    from scalelab.evals.backends import HFBackend, load_backend
    from scalelab.evals.server import serve as run_server

    backend = load_backend(model, precision=precision)
    if not isinstance(backend, HFBackend):
        raise UserError("serve takes a local model: smollm2, hf:PATH, gguf:PATH or run:RUN_DIR")
    print(f"serving {name or model} on http://{host}:{port}/v1", file=sys.stderr, flush=True)
    run_server(backend, name or model, host, port)


@app.command()
def compare(
    a: Annotated[Path, typer.Argument(help="eval output folder A")],
    b: Annotated[Path, typer.Argument(help="eval output folder B")],
    json_out: Annotated[Path | None, typer.Option("--json", help="write the comparison here")] = None,
) -> None:
    """A vs B on the items both scored: paired bootstrap CI of the difference, McNemar for 0/1 metrics."""
    from scalelab.evals.compare import compare as compare_results
    from scalelab.io import write_json

    result = compare_results(a, b)
    for task, res in result["tasks"].items():
        for metric, m in res["metrics"].items():
            lo, hi = m["ci95"]
            p = m["mcnemar"]["p_value"] if "mcnemar" in m else m["p_bootstrap"]
            print(f"{task:20s} {metric:10s} A {m['a']:.4f}  B {m['b']:.4f}  A-B {m['difference']:+.4f} "
                  f"[{lo:+.4f}, {hi:+.4f}]  p={p:.4g}  n={m['n']}")
    if json_out:
        write_json(json_out, result)


LocalModel = Annotated[str, typer.Option("--model", help="model to tune: smollm2, hf:PATH, gguf:PATH or run:RUN_DIR")]
PairsFile = Annotated[Path, typer.Option("--data", help="pairs: prompt/chosen/rejected, HH-RLHF, or AI labels "
                                                        "(prompt/a/b/p_a)")]
Steps = Annotated[int, typer.Option("--steps", help="optimiser steps")]
LearningRate = Annotated[float, typer.Option("--lr", help="learning rate")]

align_app = typer.Typer(no_args_is_help=True, help="Post-training: SFT, reward models, RBRM, RLAIF, RL, DPO, evals.")
app.add_typer(align_app, name="align")


@align_app.command("sft")
def align_sft(
    model: LocalModel,
    data: Annotated[Path, typer.Option(help="Alpaca JSON/JSONL (instruction, input, output) or messages JSONL")],
    out: Annotated[Path, typer.Option(help="folder for the tuned Hugging Face model")],
    steps: Steps = 100,
    lr: LearningRate = 2e-5,
    batch_size: Annotated[int, typer.Option(help="examples per step")] = 4,
    lora: Annotated[bool, typer.Option(help="train LoRA adapters (peft), merged on save")] = False,
) -> None:
    """Instruction-tune a model on a stronger model's answers (loss on the responses only)."""
    from scalelab.align import SFTSettings, sft

    result = sft(model, data, out, SFTSettings(steps=steps, lr=lr, batch_size=batch_size, lora=lora))
    print(f"loss {result['first_loss']:.4f} -> {result['last_loss']:.4f} over {steps} steps -> {out}")


@align_app.command("rm")
def align_rm(
    model: LocalModel,
    data: PairsFile,
    out: Annotated[Path, typer.Option(help="folder for the reward model (Hugging Face)")],
    steps: Steps = 100,
    lr: LearningRate = 1e-5,
    batch_size: Annotated[int, typer.Option(help="pairs per step")] = 4,
) -> None:
    """Train a reward model: Bradley-Terry on hard pairs, cross-entropy on soft AI labels."""
    from scalelab.align import RewardSettings, train_reward_model

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
    grader: Annotated[str, typer.Option(help="grading model spec (smollm2, hf:, gguf:, run:, openai:)")] = "smollm2",
    rubric: Annotated[Path | None, typer.Option(help="rubric file of lettered classes (default: GPT-4 style)")] = None,
) -> None:
    """Grade responses with a rule-based reward model: class probabilities and rewards per item."""
    from scalelab.align import Rubric, grade
    from scalelab.evals import load_backend
    from scalelab.evals.runner import write_samples
    from scalelab.evals.tasks.base import field_of
    from scalelab.io import read_jsonl

    parsed = Rubric.load(rubric)
    items = []
    for line_no, row in read_jsonl(data):
        where = f"{data}:{line_no}"
        tag = field_of(row, "tag", where)
        if tag not in ("allowed", "disallowed"):
            raise UserError(f"{where}: tag must be 'allowed' or 'disallowed', not '{tag}'")
        items.append({"prompt": str(field_of(row, "prompt", where)), "response": str(field_of(row, "response", where)),
                      "tag": tag})
    graded = grade(load_backend(grader), parsed, items)
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
    from scalelab.evals.runner import write_samples

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
    weight: Annotated[list[float] | None, typer.Option(help="one weight per --reward, in order")] = None,
    algorithm: Annotated[str, typer.Option(help="grpo or rloo")] = "grpo",
    steps: Steps = 20,
    lr: LearningRate = 1e-6,
    beta: Annotated[float, typer.Option(help="KL weight to the reference model")] = 0.04,
    generations: Annotated[int, typer.Option(help="completions per prompt")] = 4,
    prompts_per_step: Annotated[int, typer.Option(help="prompts per step")] = 2,
    max_tokens: Annotated[int, typer.Option(help="longest completion")] = 64,
    tag: Annotated[str | None, typer.Option(help="tag for every prompt when the file has none")] = None,
    rubric: Annotated[Path | None, typer.Option(help="RBRM rubric file (default: GPT-4 style)")] = None,
) -> None:
    """RL on TRL's GRPO or RLOO with weighted rewards from RBRM, d-RLAIF, reward models and your functions."""
    from scalelab.align import Rubric
    from scalelab.align.data import read_prompts
    from scalelab.align.rewards import build_reward
    from scalelab.align.rl import RLSettings, rl

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
    beta: Annotated[float, typer.Option(help="DPO beta")] = 0.1,
    batch_size: Annotated[int, typer.Option(help="pairs per step")] = 4,
    min_confidence: Annotated[float, typer.Option(help="AI labels: skip pairs with |p_a - 0.5| at most this")] = 0.0,
) -> None:
    """DPO through TRL on preference pairs; AI-labelled pairs are oriented by their label."""
    from scalelab.align import read_preferences
    from scalelab.align.rl import DPOSettings, ai_preferred, dpo

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
    grader: Annotated[str, typer.Option(help="RBRM grader spec")] = "smollm2",
    judge: Annotated[str | None, typer.Option(help="win-rate judge spec (default: the grader)")] = None,
    rubric: Annotated[Path | None, typer.Option(help="RBRM rubric file")] = None,
    tag: Annotated[str | None, typer.Option(help="tag for every prompt when the file has none")] = None,
    max_tokens: Annotated[int, typer.Option(help="longest reply")] = 96,
) -> None:
    """Refusal on disallowed prompts, over-refusal on safe ones, reward, and win rate, each with a 95% CI."""
    from scalelab.align import Rubric
    from scalelab.align.data import read_prompts
    from scalelab.align.evaluate import refusal_eval, respond, win_rate
    from scalelab.evals import load_backend
    from scalelab.evals.runner import write_samples
    from scalelab.io import check_writable, write_json

    rows = read_prompts(prompts, tag)
    parsed = Rubric.load(rubric)
    out = check_writable(out)
    grading = load_backend(grader)
    texts = [r["prompt"] for r in rows]
    replies = respond(load_backend(policy), texts, max_tokens)
    result = refusal_eval(grading, parsed, rows, replies)
    write_samples(out / "graded.jsonl", result.pop("items"))
    if baseline:
        base_replies = respond(load_backend(baseline), texts, max_tokens)
        result["win_rate"] = win_rate(load_backend(judge) if judge else grading, texts, replies, base_replies)
    write_json(out / "align_eval.json", {"policy": policy, "baseline": baseline, "grader": grader, **result})
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
    rl_steps: Annotated[int, typer.Option(help="GRPO steps")] = 10,
    sft_steps: Annotated[int, typer.Option(help="SFT steps")] = 16,
) -> None:
    """SmolLM2 end to end: evals, short SFT, GRPO on RBRM + d-RLAIF rewards, evals again -> align_report.json."""
    from scalelab.align.demo import DemoSettings, demo

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


def main() -> None:
    # deprecation notices from the libraries underneath are for their callers' code, not for users
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        app()
    except UserError as e:
        print(f"scalelab: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("scalelab: interrupted", file=sys.stderr)
        sys.exit(130)
