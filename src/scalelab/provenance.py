"""Where a number came from: the machine (CPU model and the flags that decide precision, threads,
GPU) and the code (scalelab's version and git commit). Benchmarks and reports record both."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PRECISION_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def _cpuinfo() -> dict[str, str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    first = text.split("\n\n")[0]
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in first.splitlines())}


@functools.cache
def machine() -> dict[str, object]:
    """CPU model name, its precision-relevant flags, cores, torch's threads and version, the GPU if any."""
    import torch

    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": info.get("model name") or platform.processor() or platform.machine(),
            "cpu_flags": [f for f in PRECISION_FLAGS if f in flags], "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "gpu": gpu,
            "python": platform.python_version()}


@functools.cache
def code_version() -> dict[str, object]:
    """scalelab's version, and the git commit of the checkout it runs from (with a dirty mark)."""
    root = Path(__file__).resolve().parents[2]
    commit, dirty = None, None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
        if commit:
            dirty = bool(subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                        capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        version = metadata.version("scalelab")
    except metadata.PackageNotFoundError:
        version = None
    return {"version": version, "commit": commit, "dirty": dirty}


_command: list[str] | None = None


def set_command(argv: list[str]) -> None:
    """Record the command line this process runs (the CLI does, once, before any work)."""
    global _command
    _command = list(argv)


def stamp() -> dict[str, object]:
    """What every result file carries: the command that made it (when run from the CLI), the machine,
    the code, and when."""
    import shlex
    from datetime import UTC, datetime

    return {"command": "scalelab " + shlex.join(_command) if _command is not None else None, "machine": machine(),
            "code": code_version(), "created": datetime.now(UTC).isoformat(timespec="seconds")}
