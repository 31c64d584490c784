"""What every TRL trainer here shares: output folder, precision, logging, checkpoints, tokenizer."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from scalelab.errors import UserError
from scalelab.progress import progress
from scalelab.train.hardware import pick_device, pick_precision


def use_bf16() -> bool:
    """bf16 where this machine runs it fast (CUDA, AMX CPUs); measured, see `pick_precision`."""
    return pick_precision(pick_device("auto"), "auto") == "bf16"


def common_args(out: Path, steps: int, lr: float, batch_size: int, seed: int) -> dict[str, Any]:
    """Arguments for any TRL config: checkpoints in `out/trainer` every quarter of the run (at least 10
    steps apart: a 135M-parameter checkpoint with its optimiser state takes ~5 s to write), so a killed
    run resumes from the last one when the same command runs again. No gradient checkpointing (TRL's
    default): the models trained here fit without it, and with it generation runs without a KV cache."""
    import torch

    # TensorBoard events in OUT/tensorboard (the checkpoints' folder goes once the model is saved); W&B too
    # when WANDB_PROJECT names a project (WANDB_MODE=offline without a network)
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(out / "tensorboard")
    report = ["tensorboard", *(["wandb"] if os.environ.get("WANDB_PROJECT") else [])]
    return {"output_dir": str(out / "trainer"), "max_steps": steps, "learning_rate": lr,
            "per_device_train_batch_size": batch_size, "logging_steps": 1, "save_strategy": "steps",
            "save_steps": max(10, steps // 4), "save_total_limit": 1, "report_to": report, "seed": seed,
            "use_cpu": not torch.cuda.is_available(), "bf16": use_bf16(), "disable_tqdm": True,
            "activation_checkpointing": False}


def last_checkpoint(out: Path) -> str | None:
    """The newest checkpoint a killed run left in `out/trainer`, if any."""
    from transformers.trainer_utils import get_last_checkpoint

    folder = out / "trainer"
    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


def load_tokenizer(folder: str | Path):
    """The model's tokenizer, with a pad token (its EOS when it has none)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def logged(trainer, key: str) -> list[float]:
    """Every value of `key` the trainer logged, in order."""
    values = [h[key] for h in trainer.state.log_history if key in h]
    if not values:
        raise UserError(f"training logged no '{key}'; give more --steps")
    return values


def save_final(model, tokenizer, out: Path) -> None:
    """The trained model and tokenizer as a Hugging Face folder; the resume checkpoints go.

    Written beside `out`'s files first and moved in with config.json last, so a folder with a
    config.json holds a whole model even if the process dies while saving.
    """
    staging = Path(tempfile.mkdtemp(prefix=".saving-", dir=out))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        for file in sorted(staging.iterdir(), key=lambda f: f.name == "config.json"):
            os.replace(file, out / file.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(out / "trainer", ignore_errors=True)


def run_trainer(trainer, out: Path, label: str) -> Any:
    """Train with scalelab's progress bar on stderr (loss or reward as it goes) in place of the
    Trainer's printed logs, resuming from the last checkpoint a killed run left in `out`."""
    from rich.progress import TextColumn
    from transformers import PrinterCallback, TrainerCallback

    with progress(TextColumn("{task.fields[metric]}")) as bar:
        task = bar.add_task(label, total=trainer.args.max_steps, metric="")

        class RichProgress(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                bar.update(task, completed=state.global_step)

            def on_log(self, args, state, control, logs=None, **kwargs):
                shown = [f"{k} {logs[k]:.4g}" for k in ("loss", "reward", "accuracy") if k in (logs or {})]
                bar.update(task, completed=state.global_step, metric="  ".join(shown))

        trainer.remove_callback(PrinterCallback)
        trainer.add_callback(RichProgress())
        return trainer.train(resume_from_checkpoint=last_checkpoint(out))
