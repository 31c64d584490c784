"""Run untrusted generated code: a separate process with limits, no network, a throw-away folder.

Two modes, reported in results as `sandbox` (`SCALELAB_SANDBOX=bubblewrap|rlimits` picks one;
unset, bubblewrap where it runs, else rlimits):
- `bubblewrap`: Linux namespaces through `bwrap` (no network, own PID space, only the system's
  read-only /usr and the interpreter visible, a fresh /tmp, no environment variables), plus the
  rlimits below;
- `rlimits`: CPU, memory, process-count and file limits, a clean environment, a temporary
  working folder, and a seccomp filter (libseccomp) that refuses every socket, so no code,
  raw `_socket`, ctypes or a child program, reaches a network. Weaker: the machine's files
  stay readable, so install bubblewrap for real isolation.

Slots: sandboxes run side by side (`parallel`, default the core count), and one slot's fork bomb,
memory bomb or endless loop must not change another's outcome. As root each run gets an
unprivileged UID of its own from a reserved range (claimed with a lock file, so concurrent
scalelab processes never share one): its process limit is its own, and every process it left is
killed by UID afterwards. Without root, runs share the caller's UID and its process limit
(`isolation()["slots"] == "shared-user"`, recorded in results.json).
"""

from __future__ import annotations

import errno
import fcntl
import functools
import os
import pwd
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from scalelab.errors import UserError

UID_BASE = 62000  # the reserved range: UID_BASE .. UID_BASE + UID_COUNT - 1, unused by any account
UID_COUNT = 256
_LOCKS = Path(tempfile.gettempdir()) / "scalelab-sandbox-uids"


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


def _as_root() -> bool:
    return os.geteuid() == 0


@functools.cache
def interpreter() -> str:
    """A Python an unprivileged UID can run (a root-owned pyenv under /root is not readable)."""
    candidates = [sys.executable, shutil.which("python3") or "", "/usr/bin/python3"]
    for exe in dict.fromkeys(c for c in candidates if c):
        if not _as_root() or _runs_unprivileged([exe, "-c", "pass"]):
            return exe
    return sys.executable


def _runs_unprivileged(cmd: list[str]) -> bool:
    with tempfile.TemporaryDirectory() as work, _slot_uid() as uid:
        os.chmod(work, 0o777)
        try:
            return subprocess.run(cmd, cwd=work, env={}, capture_output=True, timeout=30,
                                  preexec_fn=_preexec(Limits(), uid, network_filter=None)).returncode == 0
        except (OSError, subprocess.SubprocessError):
            return False


@functools.cache
def mode() -> str:
    """'bubblewrap' or 'rlimits': the one SCALELAB_SANDBOX names, else the strongest that runs."""
    wanted = os.environ.get("SCALELAB_SANDBOX", "")
    if wanted not in ("", "bubblewrap", "rlimits"):
        raise UserError(f"SCALELAB_SANDBOX={wanted}: use bubblewrap or rlimits")
    if wanted != "rlimits":
        reason = bubblewrap_unavailable()
        if reason is None:
            return "bubblewrap"
        if wanted == "bubblewrap":
            raise UserError(f"SCALELAB_SANDBOX=bubblewrap: {reason}")
    reason = seccomp_unavailable()
    if reason is not None:
        raise UserError(f"no sandbox can cut the network here: bubblewrap ({bubblewrap_unavailable()}) "
                        f"and the rlimits mode's seccomp filter ({reason}) are both unavailable")
    return "rlimits"


@functools.cache
def bubblewrap_unavailable() -> str | None:
    """Why the bubblewrap mode cannot run here, or None when it can."""
    if not shutil.which("bwrap"):
        return "bwrap is not installed (apt-get install bubblewrap)"
    with tempfile.TemporaryDirectory() as work:
        os.chmod(work, 0o777)
        Path(work, "program.py").write_text("pass\n")
        with _slot_uid() as uid:
            try:
                done = subprocess.run(_command(interpreter(), Path(work), bwrap=True), cwd=work, env={},
                                      capture_output=True, timeout=30,
                                      preexec_fn=_preexec(Limits(), uid, network_filter=None))
            except (OSError, subprocess.SubprocessError) as e:
                return f"bwrap failed to start ({e})"
    if done.returncode != 0:
        return f"bwrap cannot make namespaces here ({done.stderr.decode(errors='replace').strip()[:200]})"
    return None


@functools.cache
def seccomp_unavailable() -> str | None:
    """Why the rlimits mode's seccomp filter cannot be built here, or None when it can."""
    try:
        _network_filter()
    except (ImportError, OSError, RuntimeError) as e:
        return f"libseccomp is not usable ({e})"
    return None


def _network_filter():
    """A seccomp filter that refuses socket creation (and io_uring, which can open sockets too)."""
    import pyseccomp as seccomp

    f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for call in ("socket", "io_uring_setup"):
        f.add_rule(seccomp.ERRNO(errno.EACCES), call)
    return f


def isolation(parallel: int | None = None) -> dict[str, object]:
    """How this machine's sandboxes are isolated, for results.json."""
    return {"mode": mode(), "network": "namespace" if mode() == "bubblewrap" else "seccomp",
            "slots": "uid" if _as_root() else "shared-user", "parallel": parallel or default_parallel()}


def default_parallel() -> int:
    return os.cpu_count() or 1


def _command(exe: str, work: Path, bwrap: bool) -> list[str]:
    # `sh` stays as the program's parent (no exec: a command follows), so code that kills its
    # parent kills the shell, not the harness.
    run = ["/bin/sh", "-c", '"$0" "$@"; exit $?', exe, "-I", "-S", "-B", "program.py"]
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


def _processes_of(uid: int, zombies: bool = True) -> int:
    """Processes owned by `uid`; zombies (dead, not yet reaped) count against its process limit."""
    n = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.stat(f"/proc/{pid}").st_uid != uid:
                    continue
                n += zombies or Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
            except OSError:
                pass
    return n


@contextmanager
def _slot_uid() -> Iterator[int | None]:
    """As root: a UID of the reserved range that no other run holds and no process uses; else None."""
    if not _as_root():
        yield None
        return
    _LOCKS.mkdir(mode=0o700, exist_ok=True)
    for uid in range(UID_BASE, UID_BASE + UID_COUNT):
        try:
            pwd.getpwuid(uid)
            continue  # an account owns it
        except KeyError:
            pass
        lock = open(_LOCKS / str(uid), "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        try:
            if _processes_of(uid) == 0:  # unreaped leftovers of an earlier run make a UID unusable
                yield uid
                return
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()
    raise RuntimeError(f"no free sandbox UID in {UID_BASE}..{UID_BASE + UID_COUNT - 1}")


def _preexec(limits: Limits, uid: int | None, network_filter):
    # RLIMIT_NPROC counts every process of the UID: a slot's own UID holds only its own; the
    # caller's UID must leave room for the processes the user already runs.
    nproc = limits.processes + (0 if uid is not None else _processes_of(os.getuid()))

    def apply() -> None:
        mb = 1 << 20
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * mb, limits.memory_mb * mb))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mb * mb, limits.file_mb * mb))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        if network_filter is not None:
            network_filter.load()

    return apply


def run_program(source: str, limits: Limits = Limits()) -> Outcome:
    """Run `source` as a Python program; passed means exit status 0 within the limits."""
    bwrap = mode() == "bubblewrap"
    network_filter = None if bwrap else _network_filter()
    with tempfile.TemporaryDirectory(prefix="scalelab-sandbox-") as work, _slot_uid() as uid, \
            tempfile.TemporaryFile() as err:
        work_path = Path(work)
        os.chmod(work_path, 0o777)
        (work_path / "program.py").write_text(source)
        # stderr goes to a file, not a pipe: a process the program leaves behind must not hold the
        # outcome open; the outcome is the program's own exit
        proc = subprocess.Popen(_command(interpreter(), work_path, bwrap), cwd=work_path, env={},
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True, preexec_fn=_preexec(limits, uid, network_filter))
        try:
            proc.wait(timeout=limits.wall_seconds)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            _kill_all(proc, uid)
        if timed_out:
            return Outcome(False, "timeout", f"over {limits.wall_seconds:g}s wall time")
        err.seek(max(0, os.fstat(err.fileno()).st_size - 65536))
        return _classify(proc.returncode, err.read().decode(errors="replace"))


def run_programs(sources: list[str], limits: Limits = Limits(), parallel: int | None = None) -> list[Outcome]:
    """`run_program` for each source, `parallel` at a time (default: the core count), in order."""
    with ThreadPoolExecutor(max(1, parallel or default_parallel())) as pool:
        return list(pool.map(lambda source: run_program(source, limits), sources))


def _kill_all(proc: subprocess.Popen, uid: int | None) -> None:
    """Kill what the program started until it is gone: its process group, and with a slot UID
    every process of that UID (code can leave its group with setsid; a fork bomb forks while it
    dies). Reaps the direct child."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.poll()
        if uid is None:
            if proc.returncode is not None:
                try:
                    os.killpg(proc.pid, 0)
                except (ProcessLookupError, PermissionError):
                    return
        else:
            subprocess.run(["/bin/true"], preexec_fn=functools.partial(_kill_uid, uid))
            if proc.returncode is not None and _processes_of(uid, zombies=False) == 0:
                return
        time.sleep(0.01)
    proc.kill()
    proc.wait()


def _kill_uid(uid: int) -> None:
    """In a fresh child: become `uid` and SIGKILL every other process of it (kill(-1) as that UID).
    The child keeps the harness's process limit, so a slot at its own limit can still be killed."""
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _classify(code: int, stderr: str) -> Outcome:
    tail = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    if code == 0:
        return Outcome(True, None, "")
    # a signal: the program's own status, or 128 + the signal from a shell or bwrap in between
    sig = -code if code < 0 else code - 128 if code > 128 else None
    if sig == signal.SIGXCPU:  # over the CPU-time limit: a timeout in either mode, as past the wall limit
        return Outcome(False, "timeout", f"signal {sig}")
    if sig is not None:
        return Outcome(False, "killed", f"signal {sig}")
    if "MemoryError" in stderr:
        return Outcome(False, "memory", tail)
    if "AssertionError" in tail or tail == "AssertionError":
        return Outcome(False, "assertion", tail)
    if "SyntaxError" in tail or "IndentationError" in tail:
        return Outcome(False, "syntax", tail)
    return Outcome(False, "exception", tail)
