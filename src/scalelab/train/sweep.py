"""`scalelab sweep`: a plain grid of training runs (an IsoFLOP profile, a learning-rate sweep) on any
executor. Every combination of the grid's values over a base config is one run folder under
`out/runs/`, named by its settings; finished runs are read, not retrained, so a sweep resumes.
`sweep.json` lists each run's settings and results.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

from scalelab.errors import UserError
from scalelab.io import check_output_dir, write_json
from scalelab.train.config import TrainConfig, parse_override, validate_config
from scalelab.train.executors import ExecutorSettings, Job, run_jobs
from scalelab.train.trainer import train


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """`--grid key=v1,v2` items -> {key: [values]} (values read as JSON where they parse); keys checked."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, raw = parse_override(item)
        if key not in TrainConfig.model_fields:
            raise UserError(f"--grid '{item}': unknown setting '{key}'; settings are "
                            f"{', '.join(TrainConfig.model_fields)}")
        if key in grid:
            raise UserError(f"--grid names '{key}' twice")
        values = [parse_override(f"{key}={v}")[1] for v in str(raw).split(",") if v != ""]
        if not values:
            raise UserError(f"--grid '{item}': no values")
        grid[key] = values
    if not grid:
        raise UserError("give at least one --grid key=v1,v2")
    return grid


def _run_name(settings: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in settings.items()).replace("/", "_")


def _train_one(base: dict, settings: dict, run_dir: Path, threads: int) -> dict:
    """One grid point: read it when finished, else train it (resuming a checkpoint)."""
    if (run_dir / "summary.json").exists():
        return json.loads((run_dir / "summary.json").read_text())
    cfg = validate_config(base | settings | {"threads": base.get("threads") or threads}, source=_run_name(settings))
    return train(cfg, run_dir, resume=(run_dir / "config.json").exists(), show_progress=False)


def run_sweep(base: TrainConfig, grid: dict[str, list[Any]], out: str | Path,
              executor: ExecutorSettings | None = None) -> dict[str, Any]:
    """Train every combination; writes and returns sweep.json's content."""
    out = check_output_dir(out)
    executor = executor or ExecutorSettings()
    points = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    base_values = base.model_dump()
    for settings in points:  # every combination is valid before anything trains
        validate_config(base_values | settings, source=f"--grid {_run_name(settings)}")
    threads = base.threads or max(1, (os.cpu_count() or 1) // executor.jobs)
    jobs = [Job(_run_name(s), out / "runs" / _run_name(s), _train_one,
                (base_values, s, out / "runs" / _run_name(s), threads)) for s in points]
    summaries = run_jobs(jobs, executor, out, threads, label="sweep")
    result = {"base": base_values, "grid": grid, "executor": executor.kind,
              "runs": [{"settings": s, "run_dir": str(j.run_dir), **{k: r[k] for k in (
                  "final_eval_loss", "final_train_loss", "flops", "params", "tokens", "wall_seconds")}}
                       for s, j, r in zip(points, jobs, summaries, strict=True)]}
    write_json(out / "sweep.json", result)
    return result
