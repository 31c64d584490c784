"""Commands of adversarial testing: `scalelab redteam ...`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scalelab.cli.app import redteam_app
from scalelab.cli.options import BatchSize, LearningRate, LocalModel, Steps, bounded
from scalelab.errors import UserError
from scalelab.io import check_output_dir, check_output_file

JudgeSpec = Annotated[str, typer.Option("--judge", help="refusal, canary, rbrm[:GRADER], strongreject[:GRADER], "
                                                       "harmbench[:GRADER] or trained:DIR")]
LabelsFile = Annotated[Path, typer.Option("--labels", help="human labels: XSTest completions (final_label) or "
                                                          "prompt,completion,label (refusal/partial_refusal/"
                                                          "compliance), CSV or JSONL")]


def _interval(m: dict) -> str:
    if m.get("value") is None:
        return "n/a"
    return f"{m['value']:.3f} [{m['ci95'][0]:.3f}, {m['ci95'][1]:.3f}]"


def _systems(items: list[str] | None, prompt_files: list[Path]) -> dict[str, str]:
    """`--system FILE` (every set) or `--system SET=FILE` -> {set path or '': system prompt text}."""
    from scalelab.io import read_text

    out: dict[str, str] = {}
    known = {str(p) for p in prompt_files}
    for item in items or []:
        target, sep, path = item.rpartition("=")
        if sep and target not in known:
            raise UserError(f"--system '{item}': {target} is not one of the --prompts files")
        if not Path(path).is_file():
            raise UserError(f"--system: system prompt file {path} not found")
        out[target] = read_text(path).strip()
    return out


@redteam_app.command("attacks")
def attacks_list() -> None:
    """List the attacks (compose them with '+', e.g. few_shot+cot) and the judges' wrappers."""
    from scalelab.redteam import ATTACKS, WRAPPERS
    from scalelab.redteam.attacks import TRANSLATE_HELP

    for a in ATTACKS.values():
        print(f"{a.name:22s} {a.description}")
    print(f"{'translate:LANG':22s} {TRANSLATE_HELP.partition(': ')[2]}")
    print("\njudge-attack wrappers:")
    for w in WRAPPERS.values():
        print(f"{w.name:22s} {w.description}")


@redteam_app.command("run")
def redteam_run(
    target: Annotated[str, typer.Option(help="model under test: smollm2, hf:PATH, gguf:PATH, run:DIR, "
                                             "openai:MODEL@URL")],
    prompts: Annotated[list[Path], typer.Option(help="prompt set, repeatable: AdvBench, HarmBench, StrongREJECT, "
                                                     "JailbreakBench, XSTest, or JSONL/CSV with prompt and tag")],
    out: Annotated[Path, typer.Option(help="folder for redteam.json, samples.jsonl, heatmap.png, report.html")],
    attacks: Annotated[str, typer.Option(help="comma-separated attacks, parts joined by '+' "
                                              "(see `scalelab redteam attacks`)")] = "direct",
    judge: Annotated[list[str] | None, typer.Option(help="judge spec, repeatable; the first is the run's")] = None,
    limit: Annotated[int | None, typer.Option(help="first N rows of each prompt file", callback=bounded(1))] = None,
    seed: Annotated[int, typer.Option(help="seed of every attack's random choices")] = 0,
    max_tokens: Annotated[int, typer.Option(help="longest reply", callback=bounded(1))] = 128,
    pair_rounds: Annotated[int, typer.Option(help="PAIR rounds", callback=bounded(1))] = 3,
    attacker: Annotated[str | None, typer.Option(help="PAIR's attacker model (default: the target)")] = None,
    translator: Annotated[str | None, typer.Option(help="model for translate:LANG (default: the target)")] = None,
    system: Annotated[list[str] | None, typer.Option(help="system prompt file for every set, or SET=FILE for "
                                                          "one; a row's own `system` wins")] = None,
    tag: Annotated[str | None, typer.Option(help="harmful/safe tag for rows that carry none "
                                                 "(disallowed|allowed|unsafe|safe)")] = None,
    judge_calibration: Annotated[Path | None, typer.Option(help="judge.json of the run's judge: adds ASR "
                                                                "corrected for its measured error")] = None,
    cache: Annotated[Path | None, typer.Option(help="SQLite response cache (default under $SCALELAB_CACHE)")] = None,
) -> None:
    """Attack a model with every attack on every harmful prompt; over-refusal from the safe ones."""
    from scalelab.io import read_json_object
    from scalelab.redteam import RedteamSettings, load_behaviours, run_redteam
    from scalelab.redteam.run import check_run
    from scalelab.report.redteam_report import write_redteam_report

    check_output_dir(out)
    if cache is not None:
        check_output_file(cache)
    settings = RedteamSettings(attacks=[a.strip() for a in attacks.split(",") if a.strip()],
                               judges=judge or ["refusal"], seed=seed, max_tokens=max_tokens, pair_rounds=pair_rounds,
                               attacker=attacker, translator=translator, cache=cache)
    calibration = read_json_object(judge_calibration) if judge_calibration else None
    check_run(target, settings, calibration)
    systems = _systems(system, prompts)
    behaviours = [b for p in prompts for b in load_behaviours(p, systems.get(str(p), systems.get("", "")), tag, limit)]
    result = run_redteam(target, behaviours, out, settings, calibration)
    write_redteam_report(result, out)
    for name, a in result["attacks"].items():
        corrected = f"  corrected {_interval(a['asr_corrected'])}" if "asr_corrected" in a else ""
        print(f"{name:28s} ASR {_interval(a['asr'])}  n {a['n']}  unscored {a['n_unscored']}{corrected}")
    if result["over_refusal"]:
        print(f"{'over-refusal':28s} {_interval(result['over_refusal'])}  n {result['over_refusal']['n']}")
    if result["hit_at_k"]:
        h = result["hit_at_k"]
        label = f"hit@{h['k']}"
        print(f"{label:28s} {_interval(h)}")
    print(f"-> {out / 'redteam.json'}, {out / 'report.html'}")


@redteam_app.command("calibrate")
def redteam_calibrate(judge: JudgeSpec, labels: LabelsFile,
                      out: Annotated[Path, typer.Option(help="folder for judge.json and samples.jsonl")]) -> None:
    """Measure a judge against human labels: agreement, sensitivity, specificity (refusal positive), 95% CIs."""
    from scalelab.evals.cache import ResponseCache, default_cache_path
    from scalelab.evals.runner import write_samples
    from scalelab.io import write_json
    from scalelab.redteam import calibrate, make_judge, read_labels
    from scalelab.redteam.judges import cached_grader, check_judge_spec

    check_output_dir(out)
    check_judge_spec(judge)
    rows = read_labels(labels)
    result, samples = calibrate(make_judge(judge, cached_grader(ResponseCache(default_cache_path()))), rows)
    result["labels"] = str(labels)
    write_samples(out / "samples.jsonl", samples)
    write_json(out / "judge.json", result)
    print(f"{judge}: agreement {_interval(result['agreement'])}, sensitivity {_interval(result['sensitivity'])}, "
          f"specificity {_interval(result['specificity'])}; {result['n']} labelled, {result['n_unscored']} unscored "
          f"-> {out / 'judge.json'}")


@redteam_app.command("train-judge")
def redteam_train_judge(
    model: LocalModel,
    labels: LabelsFile,
    out: Annotated[Path, typer.Option(help="folder for the trained judge (use it as trained:DIR)")],
    steps: Steps = 60,
    lr: LearningRate = 5e-5,
    batch_size: BatchSize = 8,
    head_only: Annotated[bool, typer.Option(help="train only the new head on the frozen model (a linear probe)")] \
        = False,
) -> None:
    """Train a refusal classifier (a head on a local model) from human-labelled completions."""
    from scalelab.align.refusal_classifier import ClassifierSettings, train_refusal_classifier
    from scalelab.evals.backends import check_model_spec
    from scalelab.redteam import read_labels
    from scalelab.redteam.calibration import REFUSALS

    check_output_dir(out)
    check_model_spec(model, local=True)
    rows = [{"prompt": r["prompt"], "completion": r["completion"], "refusal": r["label"] in REFUSALS}
            for r in read_labels(labels)]
    r = train_refusal_classifier(model, rows, out, ClassifierSettings(steps=steps, lr=lr, batch_size=batch_size,
                                                                          head_only=head_only))
    print(f"{r['n']} labelled ({r['n_refusal']} refusals): loss {r['first_loss']:.4f} -> {r['last_loss']:.4f} "
          f"-> {out} (judge spec trained:{out})")


@redteam_app.command("judge-attack")
def redteam_judge_attack(
    judge: JudgeSpec,
    responses: Annotated[Path, typer.Option(help="labelled responses (as for calibrate); the compliance-labelled "
                                                 "ones are wrapped")],
    out: Annotated[Path, typer.Option(help="folder for judge_attack.json and samples.jsonl")],
    wrappers: Annotated[str | None, typer.Option(help="comma-separated wrappers (default: all)")] = None,
) -> None:
    """Attack the judge: how often each wrapper flips its verdict on harmful content, and the reward it gains."""
    from scalelab.evals.cache import ResponseCache, default_cache_path
    from scalelab.evals.runner import write_samples
    from scalelab.io import write_json
    from scalelab.redteam import attack_judge, make_judge, read_labels
    from scalelab.redteam.judge_attack import WRAPPERS
    from scalelab.redteam.judges import cached_grader, check_judge_spec

    check_output_dir(out)
    check_judge_spec(judge)
    chosen = [w.strip() for w in wrappers.split(",") if w.strip()] if wrappers else None
    unknown = [w for w in chosen or [] if w not in WRAPPERS]
    if unknown:
        raise UserError(f"--wrappers: unknown wrapper '{unknown[0]}'; use {', '.join(WRAPPERS)}")
    rows = read_labels(responses)
    if not any(r["label"] == "compliance" for r in rows):
        raise UserError(f"{responses}: no compliance-labelled rows, so no harmful content to wrap")
    result, samples = attack_judge(make_judge(judge, cached_grader(ResponseCache(default_cache_path()))), rows,
                                   chosen)
    write_samples(out / "samples.jsonl", samples)
    write_json(out / "judge_attack.json", result)
    print(f"{judge}: catches {_interval(result['baseline']['detected'])} of {result['n_harmful']} harmful responses")
    for name, w in result["wrappers"].items():
        gain = f"  reward gain {_interval(w['reward_gain'])}" if "reward_gain" in w else ""
        print(f"{name:20s} flips {_interval(w['flip_rate'])}{gain}")


@redteam_app.command("demo")
def redteam_demo(
    out: Annotated[Path, typer.Option(help="demo folder (rerun to resume)")] = Path("runs/redteam-demo"),
) -> None:
    """SmolLM2 attacked on embedded secret-keeping and house-policy prompts, judges checked against canaries."""
    from scalelab.io import read_json_object
    from scalelab.redteam.demo import demo
    from scalelab.report.redteam_report import write_redteam_report

    check_output_dir(out)
    summary = demo(out)
    for part in ("secrets", "policies"):
        write_redteam_report(read_json_object(out / part / "redteam.json"), out / part)
    for note in summary["notes"]:
        print(note)
    print(f"{summary['seconds']:.0f}s -> {out / 'demo.json'}, {out / 'secrets' / 'report.html'}")
