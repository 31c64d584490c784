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


@functools.lru_cache
def pick_precision(device: torch.device, requested: str) -> str:
    """'bf16' where bf16 matmuls are fast (CUDA, CPUs with AMX/AVX512-BF16), else 'fp32'.

    Measured, not guessed: CPUs without bf16 units run bf16 matmuls ~100x slower than fp32.
    """
    if requested != "auto":
        return requested
    if device.type == "cuda":
        return "bf16"
    bf16 = _matmul_seconds(device, torch.bfloat16, 256, 3)
    fp32 = _matmul_seconds(device, torch.float32, 256, 3)
    return "bf16" if bf16 <= fp32 else "fp32"


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
