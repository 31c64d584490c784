import os
import random
import shutil
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


def write_corpus(root: Path) -> Path:
    """The tests' corpus: 60 synthetic modules, the same on every run."""
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    for i in range(60):
        (root / f"mod_{i:03d}.py").write_text(_synthetic_module(rng, 60))
    return root


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


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


def train_tiny_run(run: Path, corpus: Path) -> Path:
    """A small trained model (context 256) for the evaluation tests."""
    from scalelab.train import build_config, train

    settings = dict(corpus=str(corpus), vocab_size=300, heldout_fraction=0.1, precision="fp32", eval_tokens=4096,
                    seq_len=256, steps=60, batch_size=8)
    train(build_config("tiny", overrides=[f"{k}={v}" for k, v in settings.items()]), run, show_progress=False)
    return run


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, corpus_dir) -> Path:
    """`train_tiny_run`, or a copy of the one named by SCALELAB_TEST_TINY_RUN: bench/mutation_score.py trains it
    once, as each mutant's tests would otherwise retrain it (a minute of CPU, over the per-mutant time limit)."""
    run = tmp_path_factory.mktemp("evalmodel") / "run"
    prebuilt = os.environ.get("SCALELAB_TEST_TINY_RUN")
    if prebuilt:
        return Path(shutil.copytree(prebuilt, run))
    return train_tiny_run(run, corpus_dir)


def write_mmlu(root: Path, header: bool) -> Path:
    """Two subjects, dev (5 rows) and test (6 rows), in the original or the re-exported CSV layout."""
    import csv

    for split, n in (("dev", 5), ("test", 6)):
        (root / split).mkdir(parents=True, exist_ok=True)
        for subject in ("basic_math", "python_code"):
            with open(root / split / f"{subject}_{split}.csv", "w", newline="") as f:
                w = csv.writer(f)
                if header:
                    w.writerow(["question", "choice0", "choice1", "choice2", "choice3", "answer"])
                for i in range(n):
                    a = (i * 7 + len(subject)) % 4
                    choices = [f"{i + k} items" if subject == "basic_math" else f"f{k}(x)" for k in range(4)]
                    question = f"In {subject} question {i}, what is {i} + {a}?" if subject == "basic_math" \
                        else f"Which function returns its input, case {i}?"
                    w.writerow([question, *choices, a if header else "ABCD"[a]])
    return root


CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")


@pytest.fixture(scope="session")
def chat_model(tiny_run, tmp_path_factory) -> Path:
    """The tiny run as a Hugging Face folder with a chat template, so every chat-template branch runs."""
    from transformers import AutoTokenizer

    from scalelab.train.export import export_run

    folder = tmp_path_factory.mktemp("chat") / "hf"
    export_run(tiny_run, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)
    return folder


# A set-up known to fit on the test corpus (seed 0): the forecast test fails if the forecast refuses.
QUICK_FORECAST = ["--preset", "cpu-quick", "--target-flops", "4e11", "--max-fraction", "0.1", "--span", "1.0",
                  "--runs", "5"]


@pytest.fixture(scope="session")
def quick_forecast(tmp_path_factory, corpus_dir) -> tuple[Path, subprocess.CompletedProcess]:
    """A finished forecast folder made by the CLI (read it; copy it before changing anything)."""
    out = tmp_path_factory.mktemp("forecast") / "fc"
    proc = run_cli("forecast", "--out", str(out), "--corpus", str(corpus_dir), *QUICK_FORECAST, timeout=600)
    return out, proc
