"""What the machine can do: device, the faster matmul precision, and its measured peak."""

from __future__ import annotations

import functools
import time

import torch


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def _matmul_seconds(device: torch.device, dtype: torch.dtype, n: int, reps: int) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / reps


BF16_MARGIN = 1.5  # bf16 must beat fp32 by this factor, so timing noise cannot flip the choice


@functools.lru_cache
def pick_precision(device: torch.device, requested: str) -> str:
    """Training precision: 'bf16' where bf16 matmuls are clearly faster (CUDA, CPUs with AMX or
    AVX512-BF16), else 'fp32'.

    Measured, not guessed: CPUs without bf16 units run bf16 matmuls ~100x slower than fp32; with
    them, ~2-4x faster. Best of several 512x512 matmuls, and a margin, so the choice is stable.
    Training may pick by speed because the forecast measures the result; scoring may not (see
    `scoring_precision`).
    """
    if requested != "auto":
        return requested
    if device.type == "cuda":
        return "bf16"
    bf16 = min(_matmul_seconds(device, torch.bfloat16, 512, 1) for _ in range(5))
    fp32 = min(_matmul_seconds(device, torch.float32, 512, 1) for _ in range(5))
    return "bf16" if bf16 * BF16_MARGIN <= fp32 else "fp32"


def scoring_precision(requested: str) -> str:
    """Precision for evaluation, serving and grading: 'auto' is fp32 on every device.

    A reported score must not depend on the machine or the path: in bf16, the same item scored
    in-process, over HTTP, in another batch or with the prefix cache differs by up to ~0.2 nats
    (bench/precision_drift.py), enough to flip near-tied choices. fp32 paths agree within ~2e-5.
    bf16 stays available as an explicit, recorded choice.
    """
    if requested not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be auto, fp32 or bf16, not {requested!r}")
    return "fp32" if requested == "auto" else requested


@functools.lru_cache
def peak_flops(device: torch.device, precision: str, max_n: int = 2048, reps: int = 3,
               min_seconds: float = 0.1) -> float:
    """FLOP/s of a large square matmul in `precision`: the denominator of MFU.

    The size grows until one matmul takes `min_seconds` (or reaches `max_n`), so a slow precision
    (bf16 on a CPU without bf16 units) is measured in seconds, not minutes. The trainer's progress
    bar uses the quick default; bench/train_throughput.py measures with larger matmuls.
    """
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    if device.type == "cuda":
        return 2 * 8192**3 / _matmul_seconds(device, dtype, 8192, 20)
    n = 512
    while n < max_n and _matmul_seconds(device, dtype, n, 1) < min_seconds:
        n *= 2
    return 2 * n**3 / _matmul_seconds(device, dtype, n, reps)
