"""Run untrusted generated code: a separate process with limits, no network, a throw-away folder.

Two modes, reported in results as `sandbox`:
- `bubblewrap`: Linux namespaces through `bwrap` (no network, own PID space, only the system's
  read-only /usr and the interpreter visible, a fresh /tmp, no environment variables), plus the
  rlimits below;
- `rlimits` (where bwrap is missing or namespaces are off): CPU, memory, process-count and file
  limits, a clean environment, a temporary working folder, and sockets disabled in the
  interpreter. Weaker: the user's files stay readable, so install bubblewrap for real isolation.
In both, a root caller drops to `nobody` first, so the process limit binds and the caller's files
cannot be touched. A killed sandbox never takes the harness with it: the code runs below an
intermediate process in its own session, and the whole session is killed at the wall-time limit.
"""

from __future__ import annotations

import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

NOBODY = 65534

# Runs first inside the sandbox: cut the network at the socket layer (the rlimits mode has no
# network namespace), then run the program as __main__.
_PRELUDE = """
import socket, sys
def _no_network(*a, **k):
    raise OSError("network access is disabled in the sandbox")
socket.socket = socket.create_connection = socket.socketpair = socket.getaddrinfo = _no_network
sys.argv = ["program.py"]
import runpy; runpy.run_path("program.py", run_name="__main__")
"""


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 10.0
    cpu_seconds: int = 10
    memory_mb: int = 1024
    processes: int = 32
    file_mb: int = 16


@dataclass(frozen=True)
class Outcome:
    passed: bool
    error: str | None  # None, "assertion", "exception", "timeout", "memory", "killed", "syntax"
    detail: str


@functools.cache
def _drop_to_nobody() -> bool:
    return os.geteuid() == 0


@functools.cache
def interpreter() -> str:
    """A Python the sandbox user can run (a root-owned pyenv under /root is not readable by nobody)."""
    candidates = [sys.executable, shutil.which("python3") or "", "/usr/bin/python3"]
    for exe in dict.fromkeys(c for c in candidates if c):
        if not _drop_to_nobody() or _runs(["-c", "pass"], exe, bwrap=False):
            return exe
    return sys.executable


def _runs(args: list[str], exe: str, bwrap: bool) -> bool:
    with tempfile.TemporaryDirectory() as work:
        os.chmod(work, 0o777)
        cmd = _command(exe, Path(work), bwrap) if bwrap else [exe, *args]
        if bwrap:
            (Path(work) / "program.py").write_text("pass\n")
        try:
            return subprocess.run(cmd, cwd=work, env={}, capture_output=True, timeout=30,
                                  preexec_fn=_limits_preexec(Limits())).returncode == 0
        except (OSError, subprocess.SubprocessError):
            return False


@functools.cache
def mode() -> str:
    """'bubblewrap' where bwrap exists and can make namespaces here, else 'rlimits'."""
    if os.environ.get("SCALELAB_SANDBOX") == "rlimits":
        return "rlimits"
    if shutil.which("bwrap") and _runs([], interpreter(), bwrap=True):
        return "bubblewrap"
    return "rlimits"


def _command(exe: str, work: Path, bwrap: bool) -> list[str]:
    # `sh` stays as the program's parent (no exec: a command follows), so code that kills its
    # parent kills the shell, not the harness.
    run = ["/bin/sh", "-c", '"$0" "$@"; exit $?', exe, "-I", "-S", "-B", "-c", _PRELUDE]
    if not bwrap:
        return run
    prefix = Path(exe).resolve().parent.parent
    binds = ["--ro-bind", "/usr", "/usr"]
    for link in ("bin", "lib", "lib64", "sbin"):
        target = Path("/") / link
        if target.is_symlink():
            binds += ["--symlink", os.readlink(target), f"/{link}"]
        elif target.is_dir():
            binds += ["--ro-bind", str(target), f"/{link}"]
    if not str(prefix).startswith("/usr"):
        binds += ["--ro-bind", str(prefix), str(prefix)]
    return ["bwrap", *binds, "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
            "--bind", str(work), "/sandbox", "--chdir", "/sandbox", "--unshare-all", "--die-with-parent",
            "--new-session", "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/sandbox",
            "--", *run]


def _count_own_processes() -> int:
    uid, n = os.getuid(), 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                n += os.stat(f"/proc/{pid}").st_uid == uid
            except OSError:
                pass
    return n


def _limits_preexec(limits: Limits):
    # RLIMIT_NPROC counts every process of the user: as nobody that is the sandbox's own; as an
    # ordinary user it must leave room for the processes the user already runs.
    nproc = limits.processes + (0 if _drop_to_nobody() else _count_own_processes())

    def apply() -> None:
        mb = 1 << 20
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * mb, limits.memory_mb * mb))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mb * mb, limits.file_mb * mb))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if _drop_to_nobody():
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))

    return apply


def run_program(source: str, limits: Limits = Limits()) -> Outcome:
    """Run `source` as a Python program; passed means exit status 0 within the limits."""
    with tempfile.TemporaryDirectory(prefix="scalelab-sandbox-") as work:
        work_path = Path(work)
        os.chmod(work_path, 0o777)
        (work_path / "program.py").write_text(source)
        bwrap = mode() == "bubblewrap"
        proc = subprocess.Popen(_command(interpreter(), work_path, bwrap), cwd=work_path, env={},
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True, preexec_fn=_limits_preexec(limits))
        try:
            _, err = proc.communicate(timeout=limits.wall_seconds)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            _kill_session(proc)
        if timed_out:
            return Outcome(False, "timeout", f"over {limits.wall_seconds:g}s wall time")
        return _classify(proc.returncode, err.decode(errors="replace"))


def _kill_session(proc: subprocess.Popen) -> None:
    """Kill the program's process group until it is gone: a fork bomb forks while it dies, and
    killed orphans count against the process limit until init has reaped them."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        proc.poll()
        time.sleep(0.01)


def _classify(code: int, stderr: str) -> Outcome:
    tail = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    if code == 0:
        return Outcome(True, None, "")
    if code in (-signal.SIGXCPU, -signal.SIGKILL) and "MemoryError" not in stderr:
        return Outcome(False, "timeout" if code == -signal.SIGXCPU else "killed", f"signal {-code}")
    if code < 0 or code > 128:  # a signal; a shell or bwrap in between reports it as 128 + signal
        return Outcome(False, "killed", f"signal {-code if code < 0 else code - 128}")
    if "MemoryError" in stderr:
        return Outcome(False, "memory", tail)
    if "AssertionError" in tail or tail == "AssertionError":
        return Outcome(False, "assertion", tail)
    if "SyntaxError" in tail or "IndentationError" in tail:
        return Outcome(False, "syntax", tail)
    return Outcome(False, "exception", tail)
