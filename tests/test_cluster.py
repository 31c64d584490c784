"""Beyond one machine, against the real engines here: a sweep and a ladder on a local Ray cluster with a
worker killed mid-run, on a one-node Slurm cluster (slurmctld + slurmd + munge on 127.0.0.1) with a job
requeued mid-run, through submitit's local executor, two torchrun "nodes", TensorBoard and W&B offline."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import assert_clean_error, run_cli

GRID = ["--grid", "lr=1e-3,3e-3"]


def _settings(corpus_dir, **extra) -> list[str]:
    base = dict(corpus=str(corpus_dir), vocab_size=300, heldout_fraction=0.1, precision="fp32", eval_tokens=2048,
                steps=1200, checkpoint_every=20, batch_size=8, seq_len=64, d_model=64, head_dim=16, threads=1)
    return sum((["--set", f"{k}={v}"] for k, v in {**base, **extra}.items()), [])


def _losses(folder: Path) -> list[float]:
    return [r["final_eval_loss"] for r in json.loads((folder / "sweep.json").read_text())["runs"]]


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory, corpus_dir):
    out = tmp_path_factory.mktemp("sweep") / "local"
    proc = run_cli("sweep", "tiny", *GRID, *_settings(corpus_dir), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def _kill_when_checkpointed(run_dir: Path, at_step: int, kill) -> int:
    """Wait until the run has a checkpoint at `at_step` or later, then `kill(pid)`; the pid killed."""
    from scalelab.train.checkpoint import load_checkpoint

    deadline = time.time() + 240
    while time.time() < deadline:
        if (run_dir / "checkpoint.pt").exists() and (run_dir / "worker.pid").exists():
            state = load_checkpoint(run_dir)
            if state is not None and state["step"] >= at_step:
                pid = int((run_dir / "worker.pid").read_text())
                kill(pid)
                return pid
        time.sleep(0.2)
    raise AssertionError(f"{run_dir} never reached step {at_step}")


def test_ray_sweep_survives_a_killed_worker_with_the_local_results(tmp_path, corpus_dir, local_sweep):
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    proc = subprocess.Popen([sys.executable, "-m", "scalelab", "sweep", "tiny", *GRID, *_settings(corpus_dir),
                             "--executor", "ray", "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    first = out / "runs" / "lr=0.001"
    killed = _kill_when_checkpointed(first, 40, lambda pid: os.kill(pid, signal.SIGKILL))
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    assert int((first / "worker.pid").read_text()) != killed  # Ray ran the task again, in a new worker
    rows = [json.loads(x) for x in (first / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "train_loss" in r] == sorted({r["step"] for r in rows if "train_loss" in r})
    assert _losses(out) == pytest.approx(_losses(local_sweep), abs=1e-6)  # resumed, and the executor changes nothing


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SLURM_CONF = """ClusterName=scalelab
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root}/munge.socket
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobRequeue=1
KillWait=2
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SlurmctldPort={ctld}
SlurmdPort={slurmd}
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A one-node Slurm cluster on 127.0.0.1: munged, slurmctld and slurmd from Debian's packages, every
    file in a temporary folder (`.ci/run` installs them). Skips, saying why, where one cannot start."""
    missing = [b for b in ("munged", "mungekey", "slurmctld", "slurmd", "sbatch") if not shutil.which(b)]
    if missing:
        pytest.skip(f"Slurm is not installed here (no {', '.join(missing)}); `.ci/run` installs slurmctld, slurmd, "
                    "slurm-client and munge")
    if os.geteuid() != 0:
        pytest.skip("a test Slurm cluster runs its daemons as root, and these tests do not run as root")
    root = tmp_path_factory.mktemp("slurm")
    for d in ("state", "spool"):
        (root / d).mkdir()
    key = root / "munge.key"
    subprocess.run(["mungekey", "-c", "-k", str(key), "-b", "1024", "-f"], check=True, capture_output=True)
    key.chmod(0o600)
    subprocess.run(["munged", f"--key-file={key}", f"--socket={root}/munge.socket", f"--pid-file={root}/munged.pid",
                    f"--log-file={root}/munged.log", f"--seed-file={root}/munged.seed", "--force"], check=True,
                   capture_output=True)
    conf = root / "slurm.conf"
    conf.write_text(SLURM_CONF.format(root=root, ctld=_free_port(), slurmd=_free_port(), cpus=os.cpu_count()))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    subprocess.run(["slurmctld", "-i"], env=env, check=True, capture_output=True)
    subprocess.run(["slurmd", "-N", "localhost"], env=env, check=True, capture_output=True)
    for _ in range(60):
        state = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True).stdout.strip()
        if state == "idle":
            break
        time.sleep(0.5)
    else:
        pytest.skip(f"the test Slurm node never became idle (sinfo: {state!r}); see {root}/slurmd.log")
    yield env
    # every job ends before its daemons do: a job whose result is read may still be finishing its srun step,
    # and with slurmd gone first its slurmstepd and srun would outlive the test
    subprocess.run(["scancel", "--full", "--user", "root"], env=env, capture_output=True)
    for _ in range(60):
        if not subprocess.run(["squeue", "-h"], env=env, capture_output=True, text=True).stdout.strip():
            break
        time.sleep(0.5)
    for pid_file in ("slurmd.pid", "slurmctld.pid", "munged.pid"):
        try:
            os.kill(int((root / pid_file).read_text()), signal.SIGTERM)
        except (OSError, ValueError):
            pass


def test_slurm_sweep_survives_a_requeued_job(tmp_path, corpus_dir, local_sweep, slurm, monkeypatch):
    for k, v in slurm.items():
        monkeypatch.setenv(k, v)
    out = tmp_path / "slurm"
    proc = subprocess.Popen([sys.executable, "-m", "scalelab", "sweep", "tiny", *GRID, *_settings(corpus_dir),
                             "--executor", "slurm", "--slurm-partition", "debug", "--slurm-time", "20", "--out",
                             str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=slurm)
    first = out / "runs" / "lr=0.001"

    def requeue(pid: int) -> None:
        """`scontrol requeue` the first run's job, as a preemption would; then lift the two minutes Slurm makes
        a requeued job wait before it may start again."""
        jobs = subprocess.run(["squeue", "-h", "-o", "%i"], env=slurm, capture_output=True, text=True).stdout.split()
        job = next(j for j in jobs if j.endswith("_0"))
        subprocess.run(["scontrol", "requeue", job], env=slurm, check=True, capture_output=True)
        for _ in range(240):
            state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], env=slurm, capture_output=True,
                                   text=True).stdout.strip()
            if state == "PENDING":
                subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], env=slurm, capture_output=True)
                return
            time.sleep(0.25)
        raise AssertionError(f"job {job} was not requeued (state {state!r})")

    requeued = _kill_when_checkpointed(first, 40, requeue)
    stdout, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr[-3000:]
    assert int((first / "worker.pid").read_text()) != requeued  # the job ran again after the requeue
    assert _losses(out) == pytest.approx(_losses(local_sweep), abs=1e-6)


def test_submitit_local_executor_runs_the_same_submission_code(tmp_path, corpus_dir, local_sweep):
    """The slurm executor's code (submitit, Checkpointable) with submitit's local cluster in place of Slurm."""
    pytest.importorskip("submitit")
    from scalelab.train import build_config
    from scalelab.train.executors import ExecutorSettings
    from scalelab.train.sweep import parse_grid, run_sweep

    settings = [s for s in _settings(corpus_dir) if s != "--set"]
    base = build_config("tiny", overrides=settings)
    result = run_sweep(base, parse_grid(["lr=1e-3,3e-3"]), tmp_path / "sub",
                       ExecutorSettings(kind="slurm", slurm_cluster="local"))
    assert [r["final_eval_loss"] for r in result["runs"]] == pytest.approx(_losses(local_sweep), abs=1e-6)
    assert list((tmp_path / "sub" / "slurm").iterdir())  # submitit's job folders


def test_forecast_ladder_on_ray_equals_local(tmp_path, corpus_spec, token_data):
    ray = pytest.importorskip("ray")
    from scalelab.scaling.forecast import forecast_config, train_ladder
    from scalelab.scaling.ladder import plan_run
    from scalelab.train.executors import ExecutorSettings

    cfg = forecast_config("cpu-quick", corpus=corpus_spec.path, heldout_fraction=corpus_spec.heldout_fraction,
                          eval_tokens=2048, threads=1, recipe={"vocab_size": 300, "steps": 20})
    plans = [plan_run(cfg.recipe, flops, f"L{i}", seed=i) for i, flops in enumerate([2e9, 4e9])]
    local = train_ladder(cfg, plans, tmp_path / "local", token_data)
    try:
        ray_run = train_ladder(cfg, plans, tmp_path / "ray", None, ExecutorSettings(kind="ray"))
    finally:
        ray.shutdown()  # the local Ray instance started in this process: its workers would idle on to the end
    assert [e["final_eval_loss"] for e in ray_run] == pytest.approx([e["final_eval_loss"] for e in local], abs=1e-6)
    # the run folder is the source of truth: a local executor finishing the Ray folder retrains nothing
    stamps = {p: p.stat().st_mtime for p in (tmp_path / "ray").rglob("summary.json")}
    train_ladder(cfg, plans, tmp_path / "ray", token_data)
    assert {p: p.stat().st_mtime for p in (tmp_path / "ray").rglob("summary.json")} == stamps


def test_two_torchrun_nodes_match_one_process(tmp_path, corpus_dir):
    """`torchrun --nnodes 2 --nproc-per-node 1 --rdzv-backend c10d`, both nodes on 127.0.0.1."""
    from scalelab.train import build_config, train

    settings = [s for s in _settings(corpus_dir, steps=40) if s != "--set"]
    single = train(build_config("tiny", overrides=settings), tmp_path / "one", show_progress=False)
    port = _free_port()
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node",
                               "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id",
                               "scalelab-test", "-m", "scalelab", "train", "--preset", "tiny", "--out",
                               str(tmp_path / "two"), *_settings(corpus_dir, steps=40)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [n.communicate(timeout=300) for n in nodes]
    assert all(n.returncode == 0 for n in nodes), [o[1][-1500:] for o in outs]
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["world_size"] == 2
    assert abs(summary["final_eval_loss"] - single["final_eval_loss"]) < 2e-3


def test_tensorboard_events_and_wandb_offline(tmp_path, corpus_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    proc = run_cli("train", "--preset", "tiny", *_settings(corpus_dir, steps=30), "--out", str(out), "--wandb",
                   "scalelab-test", env={"WANDB_MODE": "offline", "WANDB_SILENT": "true"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    logged = {r["step"]: r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
              if "train_loss" in r}
    scalars = {e.step: e.value for e in events.Scalars("train_loss")}
    assert scalars.keys() == logged.keys()
    assert all(abs(scalars[s] - logged[s]["train_loss"]) < 1e-5 for s in scalars)
    assert "eval_loss" in events.Tags()["scalars"]
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].rglob("*.wandb"))


def test_executor_bad_input(tmp_path, corpus_dir):
    base = ["sweep", "tiny", *GRID, *_settings(corpus_dir), "--out", str(tmp_path / "s")]
    assert_clean_error(run_cli(*base, "--executor", "kubernetes"), "unknown executor 'kubernetes'")
    assert_clean_error(run_cli("sweep", "tiny", "--grid", "learning_rate=1,2", "--out", str(tmp_path / "s")),
                       "unknown setting 'learning_rate'")
    assert_clean_error(run_cli("sweep", "tiny", "--grid", "steps=", "--out", str(tmp_path / "s")), "no values")
    assert_clean_error(run_cli("sweep", "nosuch", *GRID, "--out", str(tmp_path / "s")), "neither a config file")
    assert_clean_error(run_cli(*base, "--executor", "ray", env={"RAY_ADDRESS": f"127.0.0.1:{_free_port()}"}),
                       "cannot reach Ray at 127.0.0.1")
    assert not (tmp_path / "s" / "sweep.json").exists()


def test_a_folder_the_workers_cannot_see_is_named(tmp_path):
    from scalelab.errors import UserError
    from scalelab.train.executors import _guarded

    (tmp_path / ".scalelab-shared").write_text("token-of-another-head")
    with pytest.raises(UserError, match="not on a filesystem this worker"):
        _guarded(str(tmp_path / ".scalelab-shared"), "mine", lambda: {})
    with pytest.raises(UserError, match="not on a filesystem this worker"):
        _guarded(str(tmp_path / "missing" / ".scalelab-shared"), "mine", lambda: {})
    assert _guarded(str(tmp_path / ".scalelab-shared"), "token-of-another-head", lambda: {"ok": 1}) == {"ok": 1}


def test_threads_are_the_same_under_every_executor(corpus_spec):
    from scalelab.scaling.forecast import forecast_config, ladder_threads

    cfg = forecast_config("cpu", corpus=corpus_spec.path)
    assert ladder_threads(cfg) == max(1, (os.cpu_count() or 1) // cfg.jobs)
    assert ladder_threads(cfg.model_copy(update={"threads": 3})) == 3


def test_a_distributed_job_under_srun_matches_one_process(tmp_path, corpus_dir, slurm, monkeypatch):
    """The forecast's target path: one Slurm job of 2 tasks that srun starts and torch.distributed joins."""
    from scalelab.train import build_config, train
    from scalelab.train.executors import ExecutorSettings, Job, run_jobs

    for k, v in slurm.items():
        monkeypatch.setenv(k, v)
    settings = [s for s in _settings(corpus_dir, steps=40) if s != "--set"]
    cfg = build_config("tiny", overrides=settings)
    single = train(cfg, tmp_path / "one", show_progress=False)
    (summary,) = run_jobs([Job("target", tmp_path / "two", train, (cfg, tmp_path / "two", False, False),
                               distributed=True)],
                          ExecutorSettings(kind="slurm", slurm_tasks_per_node=2), tmp_path, threads=1,
                          show_progress=False)
    assert summary["world_size"] == 2
    assert abs(summary["final_eval_loss"] - single["final_eval_loss"]) < 2e-3
