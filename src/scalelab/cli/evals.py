"""Commands of evaluation: eval, contamination, serve, compare."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from scalelab.cli.app import app
from scalelab.cli.options import Precision, bounded, data_map
from scalelab.errors import UserError
from scalelab.io import check_output_dir, check_output_file


@app.command("eval")
def eval_(
    out: Annotated[Path, typer.Option(help="results folder: results.json and samples_<task>.jsonl")],
    tasks: Annotated[str, typer.Option(help="comma-separated: mmlu, mmlu_<lang>, truthfulqa_mc, humaneval, nlvr, "
                                            "scenes, or .yaml/.jsonl task specs (rows with images too)")],
    model: Annotated[str | None, typer.Option(help="smollm2, hf:PATH, gguf:PATH, run:RUN_DIR, "
                                                   "openai:MODEL@BASE_URL")] = None,
    data: Annotated[list[str] | None, typer.Option(help="TASK=PATH, once per task")] = None,
    limit: Annotated[int | None, typer.Option(help="first N items of each task", callback=bounded(1))] = None,
    shots: Annotated[int, typer.Option(help="MMLU examples from dev", callback=bounded(0))] = 5,
    samples: Annotated[Path | None, typer.Option(help="score given HumanEval completions "
                                                      "({task_id, completion} JSONL)")] = None,
    n: Annotated[int, typer.Option(help="HumanEval samples per task", callback=bounded(1))] = 1,
    temperature: Annotated[float, typer.Option(help="HumanEval sampling temperature (0: greedy)",
                                               callback=bounded(0))] = 0.0,
    sandboxes: Annotated[int | None, typer.Option(help="HumanEval programs run at once (default: the cores)",
                                                  callback=bounded(1))] = None,
    grader: Annotated[str | None, typer.Option(help="model spec grading model-graded tasks "
                                                    "(default: the model)")] = None,
    api_key: Annotated[str | None, typer.Option(help="key for openai: specs (default $OPENAI_API_KEY)")] = None,
    cache: Annotated[Path | None, typer.Option(help="SQLite response cache (default under $SCALELAB_CACHE)")] = None,
    contamination_corpus: Annotated[list[str] | None, typer.Option(
        help="also report every metric on the clean and contaminated items (GPT-4's substring check)")] = None,
    precision: Precision = "auto",
    image_dir: Annotated[Path | None, typer.Option(help="where NLVR's images are (default: beside its JSON)")] = None,
) -> None:
    """Evaluate a model on tasks: metrics with standard errors and bootstrap CIs, per-item samples."""
    from scalelab.evals import evaluate, load_backend, load_task, read_completions

    check_output_dir(out)
    if cache is not None:
        check_output_file(cache)
    if model is None and samples is None:
        raise UserError("give --model SPEC (or --samples FILE to score given HumanEval completions)")
    if contamination_corpus:
        from scalelab.contamination import check_corpora

        check_corpora(contamination_corpus)
    given = read_completions(samples) if samples is not None else None
    grader_backend = load_backend(grader, precision=precision, api_key=api_key) if grader else None
    settings = dict(n=n, temperature=temperature, given=given, parallel=sandboxes)
    loaded = [load_task(t.strip(), data_map(data), shots=shots, limit=limit, grader=grader_backend,
                        humaneval=settings, image_dir=str(image_dir) if image_dir else None)
              for t in tasks.split(",") if t.strip()]
    if model and not model.startswith("openai:") and any(s.images for t in loaded for s in t.samples):
        from scalelab.evals.backends import hf_folder, is_vision_folder

        if not is_vision_folder(hf_folder(model)):
            raise UserError(f"model {model} is a text-only model and takes no images; the tasks hold image items")
    backend = load_backend(model, precision=precision, api_key=api_key) if model else None
    results = evaluate(backend, loaded, out, model_name=model or f"samples:{samples}", cache_path=cache)
    if contamination_corpus:
        from scalelab.contamination import add_clean_scores

        results = add_clean_scores(out, loaded, contamination_corpus)
    from scalelab.report.technical_report import build_report

    build_report([out], out, title=f"scalelab eval: {model or samples}", pdf=False)  # the same page as every report
    for task, res in results["tasks"].items():
        for metric, m in res["metrics"].items():
            lo, hi = m["ci95"]
            print(f"{task:20s} {metric:10s} {m['value']:.4f} ± {m['stderr']:.4f}  95% CI [{lo:.4f}, {hi:.4f}]  "
                  f"n={res['n']}")
    print(f"-> {out / 'results.json'}, {out / 'report.html'}")


@app.command()
def contamination(
    out: Annotated[Path, typer.Option(help="folder for contamination.json")],
    corpus: Annotated[list[str], typer.Option(help="training corpus: file (.gz/.zst too), folder, JSONL, "
                                                   "parquet, datasets folder, or 'stdlib'; repeatable")],
    data: Annotated[list[str], typer.Option(help="TASK=PATH of the evaluation data, repeatable")],
    method: Annotated[Literal["gpt4", "ngram"], typer.Option(
        help="gpt4 (3 random 50-char substrings) or ngram (13-grams)")] = "gpt4",
    seed: Annotated[int, typer.Option(help="seed of the substring choice", callback=bounded(0))] = 0,
    threshold: Annotated[float, typer.Option(help="ngram: overlap share that marks an example",
                                             callback=bounded(0, 1))] = 0.0,
    text_field: Annotated[str, typer.Option(help="JSONL/parquet field holding the text")] = "text",
    results: Annotated[Path | None, typer.Option(help="an eval output folder: add clean vs contaminated "
                                                      "scores to its results.json")] = None,
    jobs: Annotated[int | None, typer.Option(help="processes scanning (default: 2 or the cores)",
                                             callback=bounded(1))] = None,
) -> None:
    """Find evaluation examples in training corpora (GPT-4's substring method or 13-gram overlap)."""
    from scalelab.contamination import attach_clean_scores, check, check_corpora, examples_of
    from scalelab.evals import load_task
    from scalelab.evals.runner import read_results
    from scalelab.io import write_json
    from scalelab.provenance import stamp

    check_output_dir(out)
    if results is not None:  # the eval folder is read and its results.json checked before any scan
        read_results(results)
        check_output_file(results / "results.json")
    check_corpora(corpus)
    paths = data_map(data)
    tasks = [load_task(name, paths, shots=0) for name in paths]
    report = check(examples_of(tasks), corpus, method=method, seed=seed, threshold=threshold, jobs=jobs,
                   text_field=text_field)
    write_json(out / "contamination.json", report | {"provenance": stamp()})
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
    port: Annotated[int, typer.Option(help="port", callback=bounded(1, 65535))] = 8000,
    name: Annotated[str | None, typer.Option(help="model name served (default: the spec)")] = None,
    precision: Precision = "auto",
) -> None:
    """Serve a model over an OpenAI-compatible HTTP API (/v1/models, /v1/completions, /v1/chat/completions)."""
    from scalelab.evals.backends import HFBackend, HFVisionBackend, load_backend
    from scalelab.evals.server import listen
    from scalelab.evals.server import serve as run_server

    if model.startswith("openai:"):
        raise UserError("serve takes a local model: smollm2, hf:PATH, gguf:PATH or run:RUN_DIR")
    listening = listen(host, port)  # before the model loads: a port in use fails at once
    backend = load_backend(model, precision=precision)
    assert isinstance(backend, HFBackend | HFVisionBackend)
    print(f"serving {name or model} on http://{host}:{port}/v1", file=sys.stderr, flush=True)
    run_server(backend, name or model, listening)


@app.command()
def compare(
    a: Annotated[Path, typer.Argument(help="eval output folder A")],
    b: Annotated[Path, typer.Argument(help="eval output folder B")],
    json_out: Annotated[Path | None, typer.Option("--json", help="write the comparison here")] = None,
) -> None:
    """A vs B on the items both scored: paired bootstrap CI of the difference, McNemar for 0/1 metrics."""
    from scalelab.evals.compare import compare as compare_results
    from scalelab.io import write_json

    if json_out is not None:
        check_output_file(json_out)
    result = compare_results(a, b)
    for task, res in result["tasks"].items():
        for metric, m in res["metrics"].items():
            lo, hi = m["ci95"]
            p = m["mcnemar"]["p_value"] if "mcnemar" in m else m["p_bootstrap"]
            print(f"{task:20s} {metric:10s} A {m['a']:.4f}  B {m['b']:.4f}  A-B {m['difference']:+.4f} "
                  f"[{lo:+.4f}, {hi:+.4f}]  p={p:.4g}  n={m['n']}")
    if json_out:
        write_json(json_out, result)


