import os
import socket
import subprocess
import threading

import pytest

from scalelab.evals import sandbox
from scalelab.evals.sandbox import Limits, run_program, run_programs

LIMITS = Limits(wall_seconds=4, cpu_seconds=4, memory_mb=512, processes=16)


@pytest.fixture(params=["bubblewrap", "rlimits"])
def mode(request, monkeypatch):
    """Each mode by name; one that cannot run here is skipped with its reason, never replaced."""
    reason = sandbox.bubblewrap_unavailable() if request.param == "bubblewrap" else sandbox.seccomp_unavailable()
    if reason is not None:
        pytest.skip(f"{request.param} sandbox unavailable: {reason}")
    monkeypatch.setenv("SCALELAB_SANDBOX", request.param)
    sandbox.mode.cache_clear()
    assert sandbox.mode() == request.param
    yield request.param
    sandbox.mode.cache_clear()


@pytest.fixture
def listener():
    """A loopback listener that records every connection it accepts."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    got = []

    def accept() -> None:
        while True:
            try:
                got.append(server.accept())
            except OSError:  # closed at the end of the test
                return

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1], got
    server.close()


def network_attacks(port: int) -> dict[str, str]:
    """Programs that pass only if they reach the listener."""
    return {
        "socket module": f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n",
        "raw _socket": f"import _socket\ns = _socket.socket()\ns.settimeout(2)\ns.connect(('127.0.0.1', {port}))\n",
        "ctypes libc": "import ctypes, struct\nlibc = ctypes.CDLL(None)\nfd = libc.socket(2, 1, 0)\nassert fd >= 0\n"
                       f"addr = struct.pack('=H', 2) + struct.pack('!H', {port}) + bytes([127, 0, 0, 1]) + bytes(8)\n"
                       "assert libc.connect(fd, addr, 16) == 0\n",
        "child program": "import subprocess, sys\nassert subprocess.run([sys.executable, '-c', 'import socket; "
                         f"socket.create_connection((\"127.0.0.1\", {port}), timeout=2)']).returncode == 0\n",
        "shell /dev/tcp": "import subprocess\nassert subprocess.run(['bash', '-c', "
                          f"'echo x > /dev/tcp/127.0.0.1/{port}']).returncode == 0\n",
    }


def test_good_and_failing_code(mode):
    assert run_program("assert sum([1, 2]) == 3\n", LIMITS).passed
    out = run_program("assert 1 == 2\n", LIMITS)
    assert not out.passed and out.error == "assertion"
    assert run_program("def f(:\n", LIMITS).error == "syntax"


def test_the_cpu_time_limit_is_a_timeout_in_every_mode(mode):
    # CPU time runs out long before the wall limit; through bwrap the signal comes back as 128 + SIGXCPU
    out = run_program("while True:\n    pass\n", Limits(wall_seconds=60, cpu_seconds=1, memory_mb=512, processes=16))
    assert not out.passed and out.error == "timeout" and out.detail == "signal 24"


@pytest.mark.parametrize("source, error", [
    ("while True:\n    pass\n", "timeout"),
    ("import time\ntime.sleep(60)\n", "timeout"),
    ("x = bytearray(8 * 1024 ** 3)\n", "memory"),
    ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n", "timeout"),
    ("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nimport time\ntime.sleep(60)\n", "killed"),
])
def test_planted_attacks_fail_and_the_harness_survives(mode, source, error):
    out = run_program(source, LIMITS)
    assert not out.passed and out.error == error
    # the harness still works afterwards, and nothing of the attack is left counting against the limits
    assert run_program("import os\nassert os.getpid() > 0\n", LIMITS).passed


def test_no_network_by_any_route(mode, listener):
    port, got = listener
    # the same programs reach the listener outside the sandbox: the attacks are real
    outside = network_attacks(port)["raw _socket"]
    assert subprocess.run(["python3", "-c", outside], timeout=10).returncode == 0
    before = len(got)
    for name, source in network_attacks(port).items():
        out = run_program(source, LIMITS)
        assert not out.passed, name
    assert len(got) == before


def test_user_files_and_environment_are_out_of_reach(mode, tmp_path, monkeypatch):
    if mode == "rlimits" and os.geteuid() != 0:
        pytest.skip("without namespaces or a separate user, the user's own files stay writable (documented)")
    secret = tmp_path / "keep.txt"
    secret.write_text("precious")
    monkeypatch.setenv("SCALELAB_TEST_SECRET", "hunter2")
    out = run_program(f"import os\nos.remove({str(secret)!r})\n", LIMITS)
    assert not out.passed and secret.read_text() == "precious"
    assert run_program("import os\nassert 'SCALELAB_TEST_SECRET' not in os.environ\n", LIMITS).passed
    assert run_program("import os\nopen('scratch.txt', 'w').write('ok')\nassert os.path.exists('scratch.txt')\n",
                       LIMITS).passed


def test_hostile_neighbours_never_change_an_honest_outcome(mode, listener, tmp_path, monkeypatch):
    """Hostile and honest completions interleaved across 2 parallel sandboxes: every honest one passes,
    every endless loop times out, nothing outside changes and nothing reaches the network."""
    if mode == "rlimits" and os.geteuid() != 0:
        pytest.skip("without root, slots share one UID and its process limit (documented)")
    port, got = listener
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("precious")
    monkeypatch.setenv("SCALELAB_TEST_SECRET", "hunter2")
    honest = "def f():\n    return 1\n\nassert f() == 1\n"
    hostile = {
        "write outside": f"open({str(outside / 'new.txt')!r}, 'w').write('x')\n",
        "delete outside": f"import os\nos.remove({str(outside / 'keep.txt')!r})\n",
        "read the secret": "import os\nassert os.environ['SCALELAB_TEST_SECRET'] == 'hunter2'\n",
        "connect": network_attacks(port)["raw _socket"],
        "fork bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
        "memory bomb": "x = bytearray(8 * 1024 ** 3)\n",
        "endless loop": "while True:\n    pass\n",
        "kill the parent": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nimport time\ntime.sleep(60)\n",
        "escape the group": "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n"
                            "assert False\n",
    }
    names, sources = [], []
    for name, source in hostile.items():  # each hostile program runs beside an honest one
        names += [name, "honest"]
        sources += [source, honest]
    outcomes = run_programs(sources, LIMITS, parallel=2)
    by_name = dict(zip(names, outcomes, strict=True))
    assert all(o.passed for n, o in zip(names, outcomes, strict=True) if n == "honest"), outcomes
    assert by_name["endless loop"].error == "timeout" and by_name["fork bomb"].error == "timeout"
    assert not any(by_name[n].passed for n in hostile if n != "escape the group")
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"] and (outside / "keep.txt").read_text() == \
        "precious"
    assert not got
    leftovers = [uid for uid in range(sandbox.UID_BASE, sandbox.UID_BASE + sandbox.UID_COUNT)
                 if sandbox._processes_of(uid, zombies=False)]
    assert leftovers == [] or os.geteuid() != 0  # what escaped the process group was killed by UID
