"""What the commands share: option types, one validation of numeric options, one way to fail."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from scalelab.errors import UserError


def fail(message: str, code: int) -> None:
    """One line on stderr and exit `code` (2: bad input, 3: an untrustworthy result)."""
    print(f"scalelab: {message}", file=sys.stderr)
    raise typer.Exit(code)


def bounded(low: float | None = None, high: float | None = None, *, low_open: bool = False,
            high_open: bool = False):
    """A typer callback that rejects a number (or any number of a list) outside the bounds, and NaN.

    The usage error names the option; the CLI prints it as one line and exits 2.
    """
    def describe() -> str:
        parts = []
        if low is not None:
            parts.append(f"{'>' if low_open else '>='} {low:g}")
        if high is not None:
            parts.append(f"{'<' if high_open else '<='} {high:g}")
        return " and ".join(parts)

    def check(value):
        for v in value if isinstance(value, list | tuple) else [value]:
            if v is None:
                continue
            bad = (isinstance(v, float) and not math.isfinite(v)) \
                or (low is not None and (v <= low if low_open else v < low)) \
                or (high is not None and (v >= high if high_open else v > high))
            if bad:
                raise typer.BadParameter(f"{v:g} is out of range: must be {describe()}")
        return value

    return check


def data_map(items: list[str] | None) -> dict[str, str]:
    """`--data TASK=PATH` items as a mapping."""
    out = {}
    for item in items or []:
        task, sep, path = item.partition("=")
        if not sep or not task or not path:
            raise UserError(f"--data '{item}': expected TASK=PATH")
        out[task] = path
    return out


ExecutorKind = Annotated[str, typer.Option("--executor", help="where runs train: local, ray (RAY_ADDRESS or a local "
                                                               "instance) or slurm (submitit)")]
SlurmPartition = Annotated[str | None, typer.Option(help="Slurm partition of the runs' jobs")]
SlurmTime = Annotated[int, typer.Option(help="Slurm time limit per job, minutes (a run past it is requeued and "
                                             "resumes)", callback=bounded(1))]
GpusPerRun = Annotated[int, typer.Option(help="GPUs per run (Ray, Slurm)", callback=bounded(0))]


def executor_settings(kind: str, jobs: int, gpus: int = 0, partition: str | None = None, time_min: int = 60):
    """The executor a command's options name (an unknown one is a usage error, exit 2)."""
    from scalelab.train.executors import ExecutorSettings

    settings = ExecutorSettings(kind=kind, jobs=jobs, gpus_per_run=gpus, slurm_partition=partition,  # type: ignore[arg-type]
                                slurm_time_min=time_min)
    settings.check()
    return settings


Precision = Annotated[Literal["auto", "fp32", "bf16"], typer.Option(
    help="scoring precision; auto = fp32 on every machine, so scores do not depend on the CPU or the path")]
LocalModel = Annotated[str, typer.Option("--model", help="model to tune: smollm2, hf:PATH, gguf:PATH or run:RUN_DIR")]
PairsFile = Annotated[Path, typer.Option("--data", help="pairs: prompt/chosen/rejected, HH-RLHF, or AI labels "
                                                       "(prompt/a/b/p_a)")]
Steps = Annotated[int, typer.Option("--steps", help="optimiser steps", callback=bounded(1))]
LearningRate = Annotated[float, typer.Option("--lr", help="learning rate", callback=bounded(0, low_open=True))]
BatchSize = Annotated[int, typer.Option("--batch-size", help="examples per step", callback=bounded(1))]
