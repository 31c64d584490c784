import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from scalelab.data import CorpusSpec, prepare


def _synthetic_module(rng: random.Random, n_funcs: int) -> str:
    """Python-like text with real structure (names reused, nesting), so a small LM can learn it."""
    names = ["value", "count", "items", "result", "index", "total", "name", "data"]
    lines = ["import os", "import sys", ""]
    for i in range(n_funcs):
        a, b = rng.sample(names, 2)
        lines += [f"def compute_{i}({a}, {b}=None):", f'    """Return the {a} of {b}."""',
                  f"    if {b} is None:", f"        {b} = {rng.randint(0, 9)}",
                  f"    for {names[i % 8]} in range({a}):", f"        {b} += {names[i % 8]} * {rng.randint(1, 5)}",
                  f"    return {a} + {b}", ""]
    return "\n".join(lines)


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    rng = random.Random(0)
    for i in range(60):
        (root / f"mod_{i:03d}.py").write_text(_synthetic_module(rng, 60))
    return root


@pytest.fixture(scope="session", autouse=True)
def scalelab_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    os.environ["SCALELAB_CACHE"] = str(cache)
    return cache


@pytest.fixture(scope="session")
def corpus_spec(corpus_dir) -> CorpusSpec:
    return CorpusSpec(str(corpus_dir), heldout_fraction=0.1)


@pytest.fixture(scope="session")
def token_data(corpus_spec):
    return prepare(corpus_spec, 300)


def run_cli(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scalelab", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def assert_clean_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit 2, one line on stderr naming the problem, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
