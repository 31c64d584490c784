"""Commands of predictable scaling: train, export, fit, forecast."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import typer

from scalelab.cli.app import app
from scalelab.cli.options import ExecutorKind, GpusPerRun, SlurmPartition, SlurmTime, bounded, executor_settings, fail
from scalelab.errors import UserError
from scalelab.io import check_output_dir, check_output_file


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", help="run folder")],
    preset: Annotated[str | None, typer.Option(help="named preset: tiny, small, gpu-medium; vlm-tiny, vlm-smollm2 "
                                                    "(a vision-language model on the embedded scenes)")] = None,
    config: Annotated[Path | None, typer.Option(help="JSON or TOML file of settings")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a setting: key=value")] = None,
    resume: Annotated[bool, typer.Option(help="continue the run in --out")] = False,
    wandb: Annotated[str | None, typer.Option(help="also log to this Weights & Biases project "
                                                   "(WANDB_MODE=offline without a network)")] = None,
) -> None:
    """Train one model into a run folder (summary.json, metrics.jsonl, tensorboard/, checkpoint.pt)."""
    from scalelab.train import TrainingDiverged, build_config
    from scalelab.train import train as run_training
    from scalelab.train.vlm_trainer import VLM_PRESETS, is_vlm_run

    if not resume and preset is None and config is None:
        raise UserError("give --preset NAME or --config FILE (or --resume)")
    check_output_dir(out)
    if preset in VLM_PRESETS or (resume and is_vlm_run(out)) or _is_vlm_file(config):
        _train_vlm(out, preset, config, set_, resume)
        return
    cfg = build_config(preset or ("tiny" if resume else None), config, set_)
    if wandb:
        cfg = cfg.model_copy(update={"wandb_project": wandb})
    try:
        summary = run_training(cfg, out, resume=resume)
    except TrainingDiverged as e:
        fail(str(e), 3)
    print(f"final held-out loss {summary['final_eval_loss']:.4f} after {summary['tokens']:,} tokens "
          f"({summary['flops']:.3g} FLOPs) in {summary['wall_seconds']:.1f}s -> {out / 'summary.json'}")


def _is_vlm_file(config: Path | None) -> bool:
    from scalelab.train.config import load_config_file

    return config is not None and load_config_file(config).get("kind") == "vlm"


def _train_vlm(out: Path, preset: str | None, config: Path | None, set_: list[str] | None, resume: bool) -> None:
    """`scalelab train` for a vision-language model: the same options, VLM settings."""
    from scalelab.train.config import load_config_file, parse_override
    from scalelab.train.vlm_trainer import VLM_PRESETS, train_vlm, validate_vlm_config

    values = dict(VLM_PRESETS.get(preset or "", {}))
    if config is not None:
        values.update(load_config_file(config))
    values.update(dict(parse_override(o) for o in set_ or []))
    cfg = validate_vlm_config(values, source=str(config or preset or "settings"))
    if cfg.text == "pretrained":
        from scalelab.evals.backends import check_model_spec, hf_folder

        if not Path(cfg.text_model).is_dir():
            check_model_spec(cfg.text_model, local=True)
            cfg = cfg.model_copy(update={"text_model": str(hf_folder(cfg.text_model))})
    s = train_vlm(cfg, out, resume=resume)
    types = ", ".join(f"{q} {v['accuracy']:.2f} (chance {v['chance']:.2f})" for q, v in s["by_type"].items())
    print(f"held-out answer loss {s['final_eval_loss']:.4f}; accuracy {s['accuracy']:.3f}: {types}; "
          f"{s['flops']:.3g} FLOPs in {s['wall_seconds']:.1f}s -> {out / 'summary.json'}")


def _vlm_forecast(out: Path, resume: bool, jobs: int | None, corpus: str | None, **overrides) -> None:
    from scalelab.report.forecast_report import write_vlm_forecast_report
    from scalelab.scaling.fit import FitUntrusted
    from scalelab.scaling.vlm_forecast import VLMForecastConfig, run_vlm_forecast

    if jobs is not None or corpus is not None:
        raise UserError("--preset vlm-cpu trains on the embedded scenes in one process: --jobs and --corpus do not "
                        "apply")
    cfg = VLMForecastConfig(**{k: v for k, v in overrides.items() if v is not None})
    try:
        result = run_vlm_forecast(cfg, out, resume=resume)
    except FitUntrusted as e:
        fail(f"no prediction: {e}", 3)
    write_vlm_forecast_report(result, out)
    lo, hi = result["interval_90"]
    print(f"answer loss predicted {result['predicted_loss']:.4f} [{lo:.4f}, {hi:.4f}]  actual "
          f"{result['actual_loss']:.4f}  error {100 * result['relative_error']:+.2f}%  -> {out / 'forecast.json'}")


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="a finished or checkpointed run folder")],
    out_dir: Annotated[Path, typer.Argument(help="Hugging Face folder to write")],
) -> None:
    """Write a Hugging Face folder: LlamaForCausalLM, or LlavaForConditionalGeneration with its processor."""
    from scalelab.train.export import export_run
    from scalelab.train.vlm_export import export_vlm
    from scalelab.train.vlm_trainer import is_vlm_run

    check_output_dir(out_dir)
    (export_vlm if is_vlm_run(run_dir) else export_run)(run_dir, out_dir)
    print(f"wrote {out_dir}")


CAPABILITY_FORMS = ("two-step", "direct", "passrate")


def _queries(predict_flops: list[float] | None, predict: list[str] | None) -> list[dict]:
    queries: list[dict] = [{"flops": c} for c in predict_flops or []]
    for item in predict or []:
        try:
            n, d = (float(x) for x in item.split(","))
        except ValueError:
            raise UserError(f"--predict expects N,D, got '{item}'") from None
        if not (np.isfinite([n, d]).all() and n > 0 and d > 0):
            raise UserError(f"--predict {item}: N and D must be positive numbers")
        queries.append({"params": n, "tokens": d})
    return queries


@app.command()
def fit(
    file: Annotated[Path, typer.Argument(help="CSV or JSONL: params, tokens, flops (two of them) and loss; or task, "
                                              "accuracy[, task_loss, chance]; or task, problem, passes, samples; "
                                              "or a CSV mapping lm-eval results files (results or model) to sizes")],
    form: Annotated[Literal["gpt4", "chinchilla", "two-step", "direct", "passrate"], typer.Option(
        help="loss: gpt4 L(C)=a·C^b+c, chinchilla L(N,D)=E+A/N^α+B/D^β; capabilities: two-step (task loss, "
             "then accuracy), direct (accuracy against compute), passrate (GPT-4's -E[log pass rate]=α·C^-k)",
    )] = "gpt4",
    predict_flops: Annotated[list[float] | None, typer.Option(help="predict at compute C",
                                                              callback=bounded(0, low_open=True))] = None,
    predict: Annotated[list[str] | None, typer.Option(help="chinchilla or two-step: predict at N,D")] = None,
    exclude_top_loss: Annotated[int, typer.Option(help="loss forms: drop the K highest-loss rows before fitting",
                                                  callback=bounded(0))] = 0,
    buckets: Annotated[int, typer.Option(help="passrate: difficulty buckets, one law each",
                                         callback=bounded(1))] = 1,
    bootstrap: Annotated[int, typer.Option(help="bootstrap resamples", callback=bounded(10))] = 1000,
    level: Annotated[float, typer.Option(help="interval level", callback=bounded(0, 1, low_open=True,
                                                                                 high_open=True))] = 0.9,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the fit here")] = None,
    plot: Annotated[Path | None, typer.Option(help="PNG figure; capability forms: a folder of TASK.png "
                                                   "(default: beside --json)")] = None,
    chance: Annotated[list[str] | None, typer.Option(
        help="TASK=P: a task's chance accuracy where its rows do not give it (lm-eval files without samples); "
             "repeatable")] = None,
    tasks: Annotated[str | None, typer.Option(help="capability forms: fit only these tasks (comma-separated); "
                                                   "the extrapolation term pools the backtests of the tasks fitted")
                     ] = None,
) -> None:
    """Fit a scaling law, or forecast capabilities, with bootstrap intervals and a leave-largest-out backtest."""
    queries = _queries(predict_flops, None if form == "gpt4" else predict)
    if form in CAPABILITY_FORMS:
        _fit_capabilities(file, form, queries, buckets, bootstrap, level, json_out, plot, _chances(chance), tasks)
        return
    from scalelab.report.fit_report import fit_table, plot_fit
    from scalelab.scaling import FitUntrusted, read_points
    from scalelab.scaling import fit as fit_law

    plot_path = plot or (json_out.with_suffix(".png") if json_out else None)
    for output in (json_out, plot_path):  # every output checked before anything is read or written
        if output is not None:
            check_output_file(output)
    queries = [q for q in queries if ("flops" in q) == (form == "gpt4")]
    points = read_points(file)
    if exclude_top_loss:
        if len(points) - exclude_top_loss < 4:
            raise UserError(f"--exclude-top-loss {exclude_top_loss} leaves {len(points) - exclude_top_loss} of "
                            f"{len(points)} rows; a fit needs at least 4")
        points = points.take(np.argsort(points.loss)[: len(points) - exclude_top_loss])
    try:
        result = fit_law(points, form, queries, n_bootstrap=bootstrap, level=level)
    except FitUntrusted as e:
        fail(f"{file}: {e}", 3)
    print(fit_table(result, points))
    if plot_path is not None:  # the figure first: a JSON beside it is the sign that both are done
        plot_fit(result, points, plot_path)
    if json_out is not None:
        from scalelab.io import write_json

        out = result.to_json()
        if form == "chinchilla":
            from scalelab.scaling import compute_optimal

            out["compute_optimal"] = {k: v.tolist() for k, v in compute_optimal(
                result.params, np.logspace(18, 26, 9)).items()} | {"flops": np.logspace(18, 26, 9).tolist()}
        write_json(json_out, out)


def _chances(items: list[str] | None) -> dict[str, float]:
    out = {}
    for item in items or []:
        task, sep, value = item.rpartition("=")
        try:
            p = float(value)
        except ValueError:
            p = math.nan
        if not sep or not task or not 0 <= p < 1:
            raise UserError(f"--chance expects TASK=P with P in [0, 1), got '{item}'")
        out[task] = p
    return out


def _fit_capabilities(file: Path, form: str, queries: list[dict], buckets: int, bootstrap: int, level: float,
                      json_out: Path | None, plot: Path | None, chances: dict[str, float], tasks: str | None) -> None:
    from scalelab.io import write_json
    from scalelab.report.capability_plots import capability_table, plot_capability
    from scalelab.scaling.capability import fit_capabilities, predictable
    from scalelab.scaling.capability_data import read_capabilities

    figures = plot or (json_out.with_name(json_out.stem + "-figures") if json_out else None)
    if json_out is not None:
        check_output_file(json_out)
    if figures is not None:
        check_output_dir(figures)
    kind, ladders = read_capabilities(file, chances)
    if tasks is not None:
        wanted = [t.strip() for t in tasks.split(",") if t.strip()]
        missing = [t for t in wanted if t not in ladders]
        if missing or not wanted:
            raise UserError(f"--tasks: {file} has no task '{missing[0] if missing else tasks}'")
        ladders = {t: ladders[t] for t in wanted}
    if (kind == "passrate") != (form == "passrate"):
        wanted = "per-problem rows (task, problem, passes, samples)" if form == "passrate" \
            else "per-model rows (task, accuracy)"
        raise UserError(f"{file}: --form {form} needs {wanted}")
    if form == "two-step":
        missing = [t for t, lad in ladders.items() if not lad.has_task_loss]
        if len(missing) == len(ladders):
            raise UserError(f"{file}: --form two-step needs 'task_loss' on every row of a task (none has it)")
    result = fit_capabilities(ladders, form, queries, n_bootstrap=bootstrap, level=level, n_buckets=buckets)
    print(capability_table(result))
    if figures is not None:
        figures.mkdir(parents=True, exist_ok=True)
        for task, entry in result["tasks"].items():
            plot_capability(figures / f"{_file_name(task)}.png", task, entry)
    if json_out is not None:
        write_json(json_out, result)
    if not predictable(result):
        fail(f"{file}: no task is predictable", 3)


def _file_name(task: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in task)


@app.command()
def forecast(
    out: Annotated[Path, typer.Option(help="forecast folder")] = Path("runs/forecast"),
    preset: Annotated[str, typer.Option(help="cpu (default, ~15 min on 2 cores), cpu-quick, gpu; vlm-cpu (a "
                                             "vision-language ladder on the embedded scenes)")] = "cpu",
    resume: Annotated[bool, typer.Option(help="continue the forecast in --out, skipping finished runs")] = False,
    target_flops: Annotated[float | None, typer.Option(help="compute of the target run",
                                                       callback=bounded(0, low_open=True))] = None,
    max_fraction: Annotated[float | None, typer.Option(help="largest ladder run / target compute",
                                                       callback=bounded(0, 0.5, low_open=True))] = None,
    runs: Annotated[int | None, typer.Option(help="ladder budgets (>= 5)", callback=bounded(5))] = None,
    span: Annotated[float | None, typer.Option(help="orders of magnitude the ladder spans",
                                               callback=bounded(0, low_open=True))] = None,
    jobs: Annotated[int | None, typer.Option(help="ladder runs trained in parallel processes",
                                             callback=bounded(1))] = None,
    seed: Annotated[int | None, typer.Option(help="seed of the whole forecast", callback=bounded(0))] = None,
    corpus: Annotated[str | None, typer.Option(help="training corpus (default: the stdlib sources)")] = None,
    precision: Annotated[Literal["auto", "fp32", "bf16"] | None, typer.Option(
        help="training precision of every run (default: the preset's; cpu: fp32)")] = None,
    executor: ExecutorKind = "local",
    slurm_partition: SlurmPartition = None,
    slurm_time: SlurmTime = 60,
    gpus_per_run: GpusPerRun = 0,
    slurm_nodes: Annotated[int, typer.Option(help="Slurm: nodes of the target run (DDP across them)",
                                             callback=bounded(1))] = 1,
    slurm_tasks_per_node: Annotated[int, typer.Option(help="Slurm: processes per node of the target run",
                                                      callback=bounded(1))] = 1,
    wandb: Annotated[str | None, typer.Option(help="log every run to this W&B project, grouped as one "
                                                   "experiment")] = None,
) -> None:
    """Train a ladder, pre-register a forecast of the target's loss, train the target, and check."""
    from scalelab.report.forecast_report import write_forecast_report
    from scalelab.scaling.fit import FitUntrusted
    from scalelab.scaling.forecast import forecast_config, run_forecast

    check_output_dir(out)
    where = executor_settings(executor, jobs or 1, gpus_per_run, slurm_partition, slurm_time)
    if preset == "vlm-cpu":
        if executor != "local" or precision is not None:
            raise UserError("--preset vlm-cpu trains in this process in fp32: --executor and --precision do not "
                            "apply")
        _vlm_forecast(out, resume, target_flops=target_flops, max_fraction=max_fraction, n_runs=runs,
                      span_decades=span, seed=seed, jobs=jobs, corpus=corpus)
        return
    cfg = forecast_config(preset, target_flops=target_flops, max_fraction=max_fraction, n_runs=runs,
                          span_decades=span, jobs=jobs, seed=seed, corpus=corpus, precision=precision)
    try:
        where = replace(where, jobs=cfg.jobs, slurm_nodes=slurm_nodes, slurm_tasks_per_node=slurm_tasks_per_node)
        result = run_forecast(cfg, out, resume=resume, executor=where, wandb_project=wandb)
    except FitUntrusted as e:
        fail(f"no prediction: {e}", 3)
    write_forecast_report(result, out)
    lo, hi = result["interval_90"]
    print(f"predicted {result['predicted_loss']:.4f} [{lo:.4f}, {hi:.4f}]  actual {result['actual_loss']:.4f}  "
          f"error {100 * result['relative_error']:+.2f}%  -> {out / 'forecast.json'}, {out / 'report.html'}")
    for task, c in (result.get("capabilities") or {}).items():
        if c["verdict"] == "ok":
            lo, hi = c["interval_90"]
            print(f"  {task} ({c['metric']}): predicted {c['predicted']:.4f} [{lo:.4f}, {hi:.4f}]  "
                  f"actual {c['actual']:.4f}  error {c['abs_error']:.4f}")
        else:
            print(f"  {task}: {c['verdict']}")


@app.command()
def sweep(
    config: Annotated[str, typer.Argument(help="base settings: a JSON/TOML config file or a preset name")],
    grid: Annotated[list[str], typer.Option(help="a setting and its values, repeatable: key=v1,v2")],
    out: Annotated[Path, typer.Option(help="sweep folder: runs/<settings>/ and sweep.json")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a base setting: key=value")] = None,
    executor: ExecutorKind = "local",
    jobs: Annotated[int, typer.Option(help="local runs at once", callback=bounded(1))] = 1,
    slurm_partition: SlurmPartition = None,
    slurm_time: SlurmTime = 60,
    gpus_per_run: GpusPerRun = 0,
    wandb: Annotated[str | None, typer.Option(help="log every run to this W&B project, grouped as one "
                                                   "experiment")] = None,
) -> None:
    """Train a grid of runs (an IsoFLOP profile, an LR sweep) on a local, Ray or Slurm executor; rerun resumes."""
    from scalelab.train import build_config
    from scalelab.train.config import PRESETS
    from scalelab.train.sweep import parse_grid, run_sweep

    check_output_dir(out)
    where = executor_settings(executor, jobs, gpus_per_run, slurm_partition, slurm_time)
    is_file = Path(config).is_file()
    if not is_file and config not in PRESETS:
        raise UserError(f"{config} is neither a config file nor a preset ({', '.join(PRESETS)})")
    base = build_config(None if is_file else config, Path(config) if is_file else None, set_)
    if wandb:
        base = base.model_copy(update={"wandb_project": wandb, "wandb_group": f"sweep-{out.resolve().name}"})
    result = run_sweep(base, parse_grid(grid), out, where)
    for r in result["runs"]:
        settings = ", ".join(f"{k}={v}" for k, v in r["settings"].items())
        print(f"{settings:40s} held-out loss {r['final_eval_loss']:.4f}  {r['flops']:.3g} FLOPs")
    print(f"{len(result['runs'])} runs -> {out / 'sweep.json'}")
