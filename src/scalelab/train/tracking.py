"""Experiment tracking beside metrics.jsonl: TensorBoard event files in every run folder
(`RUN/tensorboard`, `torch.utils.tensorboard` with the `tensorboard` package) and, with a project
named, Weights & Biases (`wandb`; WANDB_MODE=offline writes the run under RUN/wandb without a
network, to `wandb sync` later). Runs of one forecast or sweep share a W&B group, so they appear as
one experiment. A resumed run drops the events logged after its checkpoint (`purge_step`), as
metrics.jsonl does, and continues the same W&B run.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any


class Tracker:
    def __init__(self, run_dir: Path, config: dict[str, Any], resumed_step: int = 0, wandb_project: str | None = None,
                 wandb_group: str | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(str(run_dir / "tensorboard"), purge_step=resumed_step or None)
        self.wb = None
        if wandb_project:
            import wandb

            run_id = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:16]  # the same run on resume
            self.wb = wandb.init(project=wandb_project, group=wandb_group, name=run_dir.name, id=run_id,
                                 resume="allow", dir=str(run_dir), config=config, reinit="create_new")

    def log(self, row: dict[str, Any]) -> None:
        step = row["step"]
        values = {k: float(v) for k, v in row.items() if k != "step" and isinstance(v, int | float)}
        for key, value in values.items():
            self.tb.add_scalar(key, value, step)
        if self.wb is not None:
            self.wb.log(values, step=step)

    def close(self, summary: dict[str, Any] | None = None) -> None:
        self.tb.close()
        if self.wb is not None:
            if summary:
                self.wb.summary.update({k: v for k, v in summary.items() if isinstance(v, int | float | str)})
            self.wb.finish()
