"""Where many independent runs go: local processes, a Ray cluster, or Slurm through submitit.

One module for every multi-run command (the forecast's ladder and target, `scalelab sweep`). A job
is a module-level function and its arguments; it trains into its own run folder and resumes from
that folder's checkpoint when it runs again, so the run folder is the single source of truth:
any executor can finish what another started, a finished run is read, never retrained, and a run
killed on a worker (Ray worker lost, Slurm job preempted) resumes when retried (Ray retries a task
whose worker died; submitit requeues a preempted or timed-out job through `checkpoint()`).

Results do not depend on the executor: every run gets the same threads (the caller's `threads`:
by default the head's cores divided by the local job count), which Ray and Slurm also reserve as
the run's CPUs. Before any job runs, the head writes a marker file into the output folder and
every job reads it first: a folder the workers cannot see fails at once, naming the folder.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

from scalelab.errors import UserError
from scalelab.progress import progress

EXECUTORS = ("local", "ray", "slurm")
RAY_RETRIES = 3  # a run whose Ray worker dies is started again this many times (it resumes)


@dataclass(frozen=True)
class ExecutorSettings:
    kind: Literal["local", "ray", "slurm"] = "local"
    jobs: int = 1  # local: runs at once, in separate processes
    gpus_per_run: int = 0
    ray_address: str | None = None  # default: $RAY_ADDRESS, else a Ray instance started here
    slurm_partition: str | None = None
    slurm_time_min: int = 60
    slurm_array_parallelism: int = 64
    slurm_cluster: str | None = None  # submitit's cluster: None picks Slurm; "local" runs the same code here
    slurm_nodes: int = 1  # a distributed job's nodes (the forecast's target) ...
    slurm_tasks_per_node: int = 1  # ... and processes per node, started by srun, joined by torch.distributed

    def check(self) -> None:
        if self.kind not in EXECUTORS:
            raise UserError(f"unknown executor '{self.kind}'; use one of {', '.join(EXECUTORS)}")


@dataclass(frozen=True)
class Job:
    """One run: `fn(*args)` trains (or finishes, or reads) the run in `run_dir` and returns its summary."""

    name: str
    run_dir: Path
    fn: Callable[..., dict]
    args: tuple
    cost: float = 1.0  # for ordering: the longest first
    distributed: bool = False  # on Slurm: one process per task of slurm_nodes x slurm_tasks_per_node, as DDP ranks


def _guarded(marker: str, token: str, fn: Callable[..., dict], *args: Any) -> dict:
    """A job as a worker runs it: first the shared-folder check, then the run."""
    try:
        seen = Path(marker).read_text().strip()
    except OSError:
        seen = None
    if seen != token:
        raise UserError(f"the run folder {Path(marker).parent} is not on a filesystem this worker "
                        f"({os.uname().nodename}) can see: put --out on a shared filesystem")
    return fn(*args)


def _pid_then(pid_file: str, fn: Callable[..., dict], *args: Any) -> dict:
    """Record the worker's process id in the run folder (where a run is, and what to stop), then run."""
    Path(pid_file).parent.mkdir(parents=True, exist_ok=True)
    Path(pid_file).write_text(str(os.getpid()))
    return fn(*args)


def run_jobs(jobs: list[Job], settings: ExecutorSettings, out: Path, threads: int, label: str = "runs",
             show_progress: bool = True) -> list[dict]:
    """Every job's summary, in the order given, run where `settings` says."""
    settings.check()
    if not jobs:
        return []
    out.mkdir(parents=True, exist_ok=True)
    marker = out / ".scalelab-shared"
    token = secrets.token_hex(8)
    marker.write_text(token)
    wrapped = [(j, (str(marker), token, _pid_then, str(j.run_dir / "worker.pid"), j.fn, *j.args)) for j in jobs]
    run = {"local": _local, "ray": _ray, "slurm": _slurm}[settings.kind]
    with progress(disable=not show_progress) as bar:
        task = bar.add_task(f"{label} ({settings.kind})", total=len(jobs))
        results = run(wrapped, settings, out, threads, lambda: bar.advance(task))
    return [results[j.name] for j in jobs]


def _local(wrapped, settings: ExecutorSettings, out: Path, threads: int, done) -> dict[str, dict]:
    results = {}
    if settings.jobs == 1:
        for job, args in wrapped:
            results[job.name] = _guarded(*args)
            done()
        return results
    with ProcessPoolExecutor(settings.jobs, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(_guarded, *args): job for job, args in sorted(wrapped, key=lambda w: -w[0].cost)}
        for fut in futures:
            results[futures[fut].name] = fut.result()
            done()
    return results


def _ray(wrapped, settings: ExecutorSettings, out: Path, threads: int, done) -> dict[str, dict]:
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs Ray: pip install 'scalelab[cluster]'") from None
    address = settings.ray_address or os.environ.get("RAY_ADDRESS")
    if address and address != "auto":
        _check_reachable(address)
    if not ray.is_initialized():
        try:
            ray.init(address=address or None, include_dashboard=False, log_to_driver=False,
                     **({} if address else {"num_cpus": os.cpu_count()}))
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise UserError(f"cannot reach Ray at {address or 'a local instance'}: {' '.join(str(e).split())[:200]}") \
                from None
    remote = ray.remote(num_cpus=threads, num_gpus=settings.gpus_per_run, max_retries=RAY_RETRIES)(_guarded)
    pending = {remote.remote(*args): job for job, args in sorted(wrapped, key=lambda w: -w[0].cost)}
    results = {}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        job = pending.pop(ready[0])
        try:
            results[job.name] = ray.get(ready[0])
        except ray.exceptions.RayError as e:
            cause = getattr(e, "cause", None)
            if isinstance(cause, UserError):
                raise cause from None
            raise UserError(f"run {job.name} failed on Ray after {RAY_RETRIES} retries: "
                            f"{' '.join(str(e).split())[:300]}") from None
        done()
    return results


def _check_reachable(address: str) -> None:
    """Fail at once, naming the address, when nothing listens where Ray's head should be (ray.init would
    keep retrying for minutes)."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=5):
            pass
    except (OSError, ValueError) as e:
        raise UserError(f"cannot reach Ray at {address}: {e.strerror if isinstance(e, OSError) else e}") from None


def _slurm(wrapped, settings: ExecutorSettings, out: Path, threads: int, done) -> dict[str, dict]:
    try:
        import submitit
    except ImportError:
        raise UserError("--executor slurm needs submitit: pip install 'scalelab[cluster]'") from None
    try:
        executor = submitit.AutoExecutor(folder=out / "slurm" / "%j", cluster=settings.slurm_cluster)
    except RuntimeError as e:  # no sbatch here and no cluster named
        raise UserError(f"cannot submit to Slurm: {' '.join(str(e).split())}") from None
    params: dict[str, Any] = {"timeout_min": settings.slurm_time_min, "cpus_per_task": threads,
                              "slurm_array_parallelism": settings.slurm_array_parallelism}
    if settings.slurm_partition:
        params["slurm_partition"] = settings.slurm_partition
    if settings.gpus_per_run:
        params["gpus_per_node"] = settings.gpus_per_run
    executor.update_parameters(**{k: v for k, v in params.items() if executor.cluster == "slurm" or not
                                  k.startswith("slurm_")})
    single = [(job, args) for job, args in wrapped if not job.distributed]
    submitted = []
    if single:
        with executor.batch():
            submitted = [(job, executor.submit(_requeueable(), *args)) for job, args in single]
    for job, args in wrapped:
        if job.distributed:  # srun starts every task; each joins torch.distributed through the env it exports
            executor.update_parameters(nodes=settings.slurm_nodes, tasks_per_node=settings.slurm_tasks_per_node)
            submitted.append((job, executor.submit(_requeueable(distributed=True), *args)))
    results = {}
    waiting = list(submitted)
    while waiting:
        for job, handle in list(waiting):
            if handle.done():
                try:
                    results[job.name] = handle.results()[0]  # a distributed job's rank 0
                except UserError:
                    raise
                except Exception as e:  # noqa: BLE001 (submitit re-raises the job's failure as it was)
                    raise UserError(f"run {job.name} failed in Slurm job {handle.job_id}: "
                                    f"{' '.join(str(e).split())[-300:]}") from None
                waiting.remove((job, handle))
                done()
        time.sleep(0.5)
    return results


def _requeueable(distributed: bool = False):
    """The job function as submitit's Checkpointable: on preemption or timeout, `checkpoint()` resubmits
    the same call, which resumes from the run folder's checkpoint. A distributed job's tasks first export
    RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT (submitit's TorchDistributedEnvironment): the trainer
    reads them as it does under torchrun."""
    import submitit

    class Requeueable(submitit.helpers.Checkpointable):
        def __call__(self, *args: Any) -> dict:
            if distributed:
                submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
            return _guarded(*args)

    return Requeueable()
