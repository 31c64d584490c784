"""Checkpoints written atomically: a kill at any instant leaves the last good one loadable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from scalelab.io import atomic_path

CHECKPOINT = "checkpoint.pt"


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    with atomic_path(run_dir / CHECKPOINT) as tmp:
        torch.save(state, tmp)


def load_checkpoint(run_dir: Path, map_location: str = "cpu") -> dict[str, Any] | None:
    path = run_dir / CHECKPOINT
    if not path.exists():
        return None
    return torch.load(path, map_location=map_location, weights_only=False)
