import os
import socket
import threading

import pytest

from scalelab.evals import sandbox
from scalelab.evals.sandbox import Limits, run_program

LIMITS = Limits(wall_seconds=4, cpu_seconds=4, memory_mb=512, processes=16)


@pytest.fixture(params=["default", "rlimits"])
def mode(request, monkeypatch):
    if request.param == "rlimits":
        monkeypatch.setenv("SCALELAB_SANDBOX", "rlimits")
    sandbox.mode.cache_clear()
    yield sandbox.mode()
    sandbox.mode.cache_clear()


def test_good_and_failing_code(mode):
    assert run_program("assert sum([1, 2]) == 3\n", LIMITS).passed
    out = run_program("assert 1 == 2\n", LIMITS)
    assert not out.passed and out.error == "assertion"
    assert run_program("def f(:\n", LIMITS).error == "syntax"


@pytest.mark.parametrize("source, error", [
    ("while True:\n    pass\n", "timeout"),
    ("import time\ntime.sleep(60)\n", "timeout"),
    ("x = bytearray(8 * 1024 ** 3)\n", "memory"),
    ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n", "timeout"),
    ("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nimport time\ntime.sleep(60)\n", None),
])
def test_planted_attacks_fail_and_the_harness_survives(mode, source, error):
    out = run_program(source, LIMITS)
    assert not out.passed
    if error:
        assert out.error == error
    # the harness still works afterwards, and nothing of the attack is left counting against the limits
    assert run_program("import os\nassert os.getpid() > 0\n", LIMITS).passed


def test_no_network(mode):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(6)
    port = server.getsockname()[1]
    got = []

    def accept() -> None:
        try:
            got.append(server.accept())
        except OSError:  # closed at the end of the test: nobody connected
            pass

    threading.Thread(target=accept, daemon=True).start()
    out = run_program(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n", LIMITS)
    assert not out.passed and not got
    server.close()


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
