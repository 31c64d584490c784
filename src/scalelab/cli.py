"""The `scalelab` command: a thin layer over the library. Bad input exits 2 with one line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from scalelab.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Predictable scaling of language models: train, fit, forecast, export.")


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


def main() -> None:
    try:
        app()
    except UserError as e:
        print(f"scalelab: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("scalelab: interrupted", file=sys.stderr)
        sys.exit(130)
