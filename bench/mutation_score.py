"""How many injected bugs the suite catches, per module: mutmut over the modules whose numbers users cite.

mutmut (PyPI, `pip install -c constraints.txt mutmut==3.8.1`) rewrites each function into mutants
(an operator flipped, a constant changed, a call dropped) and runs, for each mutant, the tests that
call that function; a mutant is killed when one of them fails (or times out). The work happens in
a copy of `src/` and `tests/` under `runs/mutation/<tag>/`, so a killed run resumes where it stopped
(mutmut remembers what it checked) and the checkout is never touched. `--commit COMMIT` takes both
from an earlier commit, to compare the suite before and after a change on the code of its time.

Tests that start `scalelab` in a subprocess run the unmutated package, so code reached only through
the CLI counts as untested here: the kill rate is a lower bound. `--max-stack-depth` counts a test
for a function only when it calls it within that many frames of project code (mutmut's own
setting; -1 is any depth), which keeps slow end-to-end tests from being rerun for every mutant.
Writes bench/results/mutation_score.json (or --out).
Run: .venv/bin/python bench/mutation_score.py [--modules ...] [--tests ...] [--commit COMMIT]
     [--mutants GLOB ...] [--work NAME] [--prebuilt-tiny-run]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from scalelab.evals.stats import proportion
from scalelab.provenance import code_version, machine

ROOT = Path(__file__).resolve().parent.parent
MODULES = ["scaling/fit.py", "evals/stats.py", "evals/cache.py", "train/schedule.py", "align/rlaif.py",
           "align/rbrm.py"]
TESTS = ["tests/test_scaling.py", "tests/test_evals.py", "tests/test_train.py", "tests/test_align.py"]
KILLED = {"killed", "timeout"}  # a segfault is the test process crashing, not a kill


def _copy_tree(work: Path, commit: str | None) -> None:
    """`src/` and `tests/` as they are in the working tree, or as they were at `commit`."""
    for part in ("src", "tests"):
        shutil.rmtree(work / part, ignore_errors=True)
        if commit is None:
            shutil.copytree(ROOT / part, work / part, ignore=shutil.ignore_patterns("__pycache__"))
    if commit is not None:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "src", "tests"], capture_output=True,
                                 check=True)
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(work, filter="data")


def _config(modules: list[str], tests: list[str], depth: int) -> str:
    only = ", ".join(f'"src/scalelab/{m}"' for m in modules)
    selection = ", ".join(f'"{t}"' for t in tests)
    return (f'[tool.mutmut]\nsource_paths = ["src/"]\nonly_mutate = [{only}]\n'
            f'pytest_add_cli_args_test_selection = [{selection}]\npytest_add_cli_args = ["-p", "no:cacheprovider"]\n'
            f"max_stack_depth = {depth}\nprocess_isolation = \"forkserver\"\n"
            # a mutant that hangs a test is stopped at 6x (the tests' measured time + 20 s) of CPU (mutmut's
            # default is 30x (time + 1 s)); the 20 s covers what a forked test spends before its measured part
            # (loading a model), which with 1 s turned fast tests into false timeouts
            "timeout_multiplier = 3.0\ntimeout_constant = 20.0\n")


def _prebuilt_tiny_run(work: Path) -> Path:
    """The tests' tiny_run, trained once by the copied tests' own helper on the copied source (unmutated)."""
    run = work / "fixtures" / "tiny_run"
    if not run.exists():
        building = work / "fixtures" / "building"
        shutil.rmtree(building, ignore_errors=True)
        code = ("import sys; from pathlib import Path; from tests.conftest import train_tiny_run, write_corpus; "
                "b = Path(sys.argv[1]); train_tiny_run(b / 'run', write_corpus(b.parent / 'corpus'))")
        subprocess.run([sys.executable, "-c", code, str(building)], cwd=work, check=True,
                       env={**os.environ, "PYTHONPATH": f"{work / 'src'}{os.pathsep}{work}",
                            "SCALELAB_CACHE": str(work / "fixtures" / "cache")})
        (building / "run").rename(run)
    return run


def _module_of(mutant: str, modules: list[str]) -> str:
    for m in modules:
        prefix = "scalelab." + m.removesuffix(".py").replace("/", ".") + "."
        if mutant.startswith(prefix):
            return m
    return "?"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--modules", nargs="+", default=MODULES, help="paths under src/scalelab")
    parser.add_argument("--tests", nargs="+", default=TESTS)
    parser.add_argument("--commit", help="a commit whose src/ and tests/ to use (default: the working tree)")
    parser.add_argument("--max-stack-depth", type=int, default=6)
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--time-limit", type=float, help="seconds; then stop and report what was checked "
                        "(rerun to go on)")
    parser.add_argument("--mutants", nargs="+", default=[], help="check only these mutants (mutmut's names or "
                        "globs, e.g. 'scalelab.scaling.fit.x_fit__mutmut_*'), rechecking them; the report covers all")
    parser.add_argument("--work", help="the folder under runs/mutation to run in and resume (default: named after "
                        "the commit), e.g. to recheck an earlier run's survivors against the tests as they are now")
    parser.add_argument("--prebuilt-tiny-run", action="store_true", help="train the tests' tiny_run model once, "
                        "before mutating: its fixture otherwise retrains it in every mutant's test session (a minute "
                        "of CPU, past the time limit: false timeouts); only for modules that do not build it")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "mutation_score.json")
    args = parser.parse_args()
    code = code_version()
    commit = args.commit and subprocess.run(["git", "-C", str(ROOT), "rev-parse", args.commit], capture_output=True,
                                            text=True, check=True).stdout.strip()
    work = ROOT / "runs" / "mutation" / (args.work or (commit or f"worktree-{code['commit']}")[:16])
    work.mkdir(parents=True, exist_ok=True)
    _copy_tree(work, commit)
    (work / "pyproject.toml").write_text(_config(args.modules, args.tests, args.max_stack_depth))
    env = dict(os.environ)
    if args.prebuilt_tiny_run:
        if any(m.startswith(("train/", "model/", "data/")) for m in args.modules):
            parser.error("--prebuilt-tiny-run: the prebuilt model would not carry the mutants of train/, model/, data/")
        env["SCALELAB_TEST_TINY_RUN"] = str(_prebuilt_tiny_run(work))
    mutmut = Path(sys.executable).with_name("mutmut")
    start = time.perf_counter()
    run = subprocess.Popen([str(mutmut), "run", "--max-children", str(args.max_children), *args.mutants], cwd=work,
                           stdout=subprocess.DEVNULL, start_new_session=True, env=env)
    try:
        finished = run.wait(args.time_limit) == 0
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGTERM)
        run.wait()
        finished = False
    seconds = time.perf_counter() - start
    listing = subprocess.run([str(mutmut), "results", "--all", "true"], cwd=work, capture_output=True, text=True,
                             check=True).stdout
    counts: dict[str, Counter] = defaultdict(Counter)
    survivors: dict[str, list[str]] = defaultdict(list)
    for line in listing.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if not name:
            continue
        module = _module_of(name, args.modules)
        counts[module][status] += 1
        if status in ("survived", "no tests"):
            survivors[module].append(name)
    modules = {}
    for m in args.modules:
        c = counts[m]
        checked = sum(n for s, n in c.items() if s not in ("not checked", "segfault"))
        killed = sum(c[s] for s in KILLED)
        modules[m] = {"mutants": sum(c.values()), "checked": checked, "killed": killed,
                      "kill_rate": killed / checked if checked else None,
                      # of the whole module's mutants, when the checked ones are a random sample (--mutants)
                      "kill_rate_ci95": proportion(killed, checked)["ci95"], "segfaults_not_counted": c["segfault"],
                      "statuses": dict(c), "survivors": survivors[m]}
        print(f"{m}: {killed}/{checked} killed ({modules[m]['kill_rate'] or 0:.0%}), "
              f"{c['segfault']} crashed (not counted)", flush=True)
    result = {"tool": "mutmut 3.8.1", "finished": finished, "tests": args.tests,
              "source_and_tests": commit or "working tree",
              "max_stack_depth": args.max_stack_depth, "seconds_this_session": seconds,
              "machine": machine(), "code": code, "modules": modules}
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
