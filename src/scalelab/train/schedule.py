"""Learning-rate schedule: linear warmup, then cosine decay ending exactly at the last step."""

import math


def lr_factor(step: int, total_steps: int, warmup_fraction: float, min_ratio: float) -> float:
    """Multiplier of the peak LR at `step` (0-based); the last step gets exactly `min_ratio`."""
    warmup = int(warmup_fraction * total_steps)
    if step < warmup:
        return (step + 1) / warmup
    decay_steps = total_steps - 1 - warmup
    if decay_steps <= 0:
        return min_ratio if step >= total_steps - 1 else 1.0
    progress = min(1.0, (step - warmup) / decay_steps)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
