"""``--cluster``: a study's workers, and a benchmark's studies, as tasks on a Dask cluster.

Dask is only the launcher. A study's worker task starts on a cluster's worker the process a
local run starts (:mod:`search.study.launch`), over the study's shared storage; a bench
study runs in the Dask worker's process as a ``--jobs`` process runs it
(:mod:`search.bench.job`). Storage, heartbeats, resume, leaderboards and fault
handling stay as they are; the client (this process) shows the progress, serves
keras-tuner's oracle (the chief) and scores the study when every task is done.

Where the files go: a task writes into the study's folder (TensorBoard curves, the journal
file, a bench study's every file), under the same absolute path as the client. Whether the
cluster's workers see the client's results root is not assumed but tested, before
anything is written (:func:`shared_folder`): the client leaves a probe there and every
Dask worker must read it back. Where they do not, a study needs ``--no-tensorboard`` and,
on Optuna, a storage server (PostgreSQL, MySQL, Redis); a benchmark cannot run.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import logging
import os
import signal
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from search.engines.base import Engine, past
from search.engines.records import TrialRecord, too_many_failures
from search.errors import EnvironmentFaultError, SearchError
from search.study.config import StudyConfig, to_json
from search.study.launch import client_env, run_child

LOCAL = "local"
ENV = "SEARCH_CLUSTER"
POLL_SECONDS = 1.0
CONNECT_SECONDS = 10.0
CLOSE_SECONDS = 3.0
WORKERS_SECONDS = 60.0  # how long a new cluster may take to get its first worker
EXTRA = "--cluster needs Dask's distributed package: pip install 'search[dask]'"
_CLIENTS: dict[str, Any] = {}  # one client (and LocalCluster) per address and process


def address_of(cluster: Any) -> str:
    """The scheduler address of ``cluster``: an address, ``local``, or a Dask ``Client`` or
    cluster object (``LocalCluster``, dask-jobqueue's ``SLURMCluster``, ...). Refuses the
    run where the ``dask`` extra is not installed, before anything else."""
    if importlib.util.find_spec("distributed") is None:
        raise SearchError(EXTRA)
    if isinstance(cluster, str):
        text = cluster.strip()
        host = text.split("://", 1)[-1]
        if text == LOCAL or (host.rpartition(":")[2].isdigit() and host.rpartition(":")[0]):
            return text
        raise SearchError(
            f"--cluster {cluster!r} is no Dask scheduler address: give tcp://HOST:PORT (or "
            f"HOST:PORT), or 'local' for a cluster of this machine's cores"
        )
    scheduler = getattr(cluster, "scheduler_address", None)  # a cluster object
    if scheduler is None:  # a Client
        scheduler = getattr(getattr(cluster, "scheduler", None), "address", None)
    if not isinstance(scheduler, str):
        raise SearchError(
            f"cluster must be a scheduler address, 'local', or a Dask Client or cluster; "
            f"got {cluster!r}"
        )
    return scheduler


def connect(address: str) -> Any:
    """A Dask client of ``address`` (``local``: a new LocalCluster of this machine's cores,
    one process each), kept for the process; refuses one that cannot be reached."""
    if address in _CLIENTS:
        return _CLIENTS[address]
    try:
        import distributed
    except ImportError:
        raise SearchError(EXTRA) from None
    _quiet_dask()
    try:
        if address == LOCAL:
            client = distributed.Client(_local_cluster())
        else:
            client = distributed.Client(address, timeout=CONNECT_SECONDS)
        client.wait_for_workers(1, timeout=WORKERS_SECONDS)
    except (OSError, TimeoutError) as error:
        raise SearchError(
            f"cannot use the Dask cluster at {address} ({str(error) or type(error).__name__}"
            "); start a scheduler and workers ('dask scheduler', 'dask worker ADDRESS') or "
            "pass --cluster local"
        ) from None
    _CLIENTS[address] = client
    return client


# What a LocalCluster here is started without, each for a dashboard it does not have:
# Dask's profiler samples the task's stack every 10 ms, in the process, on the core the study
# trains on (8% more CPU per study, measured); its system monitor reads the process's CPU,
# memory and I/O counters twice a second, in every worker and the scheduler.
_LOCAL_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.system-monitor.interval": "10s",
}


def _local_cluster() -> Any:
    """A LocalCluster of this machine's cores, one process each (see ``_LOCAL_CONFIG``),
    with no memory limit: its nannies would otherwise read each worker's memory ten times a
    second to pause or restart a worker that a study, not Dask, fills."""
    import dask
    import distributed

    with dask.config.set(_LOCAL_CONFIG):
        return distributed.LocalCluster(
            n_workers=os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            memory_limit=0,
            dashboard_address=None,
            silence_logs=logging.CRITICAL,
        )


def _quiet_dask() -> None:
    """Dask logs every lost connection and restarted worker, with tracebacks, on stderr
    (its loggers have levels and handlers of their own): the harness says what went wrong
    in one line of its own; --debug shows Dask's too."""
    if logging.getLogger("search").isEnabledFor(logging.DEBUG):
        return
    for name in ["distributed", *logging.root.manager.loggerDict]:
        if name == "distributed" or name.startswith("distributed."):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def disconnect(address: str) -> None:
    """Close this process's client of ``address`` (and its LocalCluster), if it has one."""
    client = _CLIENTS.pop(address, None)
    if client is None:
        return
    cluster = client.cluster
    if cluster is not None:
        _end_workers(client, cluster)
    # Briefly: a command that ends must not wait on a cluster that is slow to say goodbye.
    with contextlib.suppress(Exception):
        client.close(timeout=CLOSE_SECONDS)
    if cluster is not None:
        with contextlib.suppress(Exception):
            cluster.close(timeout=CLOSE_SECONDS)


def _end_workers(client: Any, cluster: Any) -> None:
    """End the worker processes of this process's own LocalCluster at once (every study
    they ran has written its files as it ended): asked to close, a worker that has loaded
    Keras took 15 s to exit, and the command waited for it."""
    with contextlib.suppress(Exception):
        pids = client.run(os.getpid, nanny=False)
        for nanny in cluster.workers.values():
            nanny.close_gracefully("search: the run is over")  # restart none of them
        for pid in pids.values():
            os.kill(int(pid), signal.SIGKILL)


def close_all() -> None:
    """Close every client of this process, and stop the LocalCluster it started, so that
    its processes end now rather than be torn down with the interpreter."""
    for address in list(_CLIENTS):
        disconnect(address)


def shared_folder(client: Any, out: Path) -> bool:
    """Whether every Dask worker sees ``out`` (or the folder it will be made in) at the same
    absolute path as this process: a probe left there must read back on each of them."""
    probe = out.resolve()
    while not probe.exists():
        probe = probe.parent
    token = uuid.uuid4().hex
    with tempfile.TemporaryDirectory(dir=probe, prefix=".search-probe-") as folder:
        path = Path(folder) / "probe"
        path.write_text(token)
        seen = client.run(_read, str(path))
    return bool(seen) and all(text == token for text in seen.values())


def _read(path: str) -> str:
    """On a Dask worker: the probe's text, or '' where it cannot be read."""
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def check_study(
    client: Any,
    address: str,
    out: Path,
    storage: str | None,
    tensorboard: bool,
    engine: str = "optuna",
) -> None:
    """Refuse a study whose workers could not write where they must: Optuna's journal file,
    and the TensorBoard curves, are in the study's folder on the client's filesystem
    (keras-tuner's study is in its chief, in the client, whatever the workers see)."""
    if shared_folder(client, out):
        return
    where = f"the workers of the Dask cluster at {address} do not see --out {out}"
    if engine == "optuna" and (storage is None or storage.startswith("sqlite")):
        raise SearchError(
            f"{where}, where the study's {'SQLite file' if storage else 'journal file'} is: "
            "pass --storage postgresql://... (or mysql://, redis://), or an --out that every "
            "worker mounts at the same path"
        )
    if tensorboard:
        raise SearchError(
            f"{where}, where each trial's TensorBoard run is written: pass --no-tensorboard, "
            "or an --out that every worker mounts at the same path"
        )


def check_bench(client: Any, address: str, out: Path) -> None:
    """Refuse a benchmark on a cluster whose workers cannot write its studies' files."""
    if not shared_folder(client, out):
        raise SearchError(
            f"the workers of the Dask cluster at {address} do not see --out {out}, where "
            "each study of the benchmark writes its files: pass an --out that every worker "
            "mounts at the same path"
        )


def portable(study: dict[str, Any]) -> dict[str, Any]:
    """A study's JSON form with its paths absolute: a Dask worker has its own directory."""
    moved = dict(study)
    moved["out"] = str(Path(study["out"]).resolve())
    source = study.get("space_source", "")
    if str(source).split(":")[0].endswith(".py"):
        path, colon, name = str(source).partition(".py")
        moved["space_source"] = str(Path(path + ".py").resolve()) + name
    options = dict(study.get("task_options") or {})
    if options.get("data"):
        options["data"] = str(Path(options["data"]).resolve())
    moved["task_options"] = options
    return moved


def run_on_cluster(
    config: StudyConfig, engine: Engine, on_trial: Callable[[list[TrialRecord]], None]
) -> str | None:
    """The study's ``config.workers`` workers as tasks on its cluster; this process shows
    the progress (and serves keras-tuner's oracle). Returns why the search stopped early."""
    assert config.cluster is not None
    client = connect(config.cluster)
    study = portable(to_json(config, secrets=True))
    with contextlib.ExitStack() as stack:
        chief = None
        envs: list[dict[str, str]] = [{}] * config.workers
        stopped: list[str] = []
        if config.engine == "keras-tuner":
            host = _reachable_host(client)
            chief = engine.chief(config.trials, f"{host}:0")
            assert chief is not None, "keras-tuner's engine serves its oracle"
            stack.callback(chief.close)
            # One tuner id per task: a task run again (its worker was killed) takes its
            # trial back from the chief, which runs it again.
            envs = [chief.worker_env(f"worker{i}", host) for i in range(config.workers)]

        def each_round() -> None:
            records = engine.records()
            on_trial(records)
            if chief is None:
                return
            # A worker of another host that stopped beating: its trial ends (as at home).
            chief.check_heartbeats()
            if past(config.deadline):  # a time budget: the running trials finish
                chief.stop_new_trials()
            reason = too_many_failures(records, config.failure_limit)
            if reason and not stopped:
                stopped.append(reason)
                chief.stop_new_trials()

        payloads = [json.dumps({"config": study, "env": env}) for env in envs]
        worker = functools.partial(run_child, "search.study.worker")
        tasks = Tasks(client, config.cluster, worker, config.study)
        try:
            results = tasks.run(payloads, each_round)
        except KeyboardInterrupt:
            if chief is not None:
                chief.mark_interrupted()
            raise
    reasons = [line for code, line, _ in results if code > 0 and line]
    return stopped[0] if stopped else (reasons[0] if reasons else None)


def _reachable_host(client: Any) -> str:
    """This machine's address as the scheduler's network sees it (the chief's)."""
    from distributed.utils import get_ip

    host = client.scheduler.address.split("://")[-1].rpartition(":")[0].strip("[]")
    if host in ("127.0.0.1", "localhost", "::1"):
        return "127.0.0.1"
    return str(get_ip(host))


class Tasks:
    """One run of harness processes as Dask tasks: placed one per Dask worker process,
    watched from this process, stopped on Ctrl-C."""

    def __init__(self, client: Any, address: str, function: Callable[..., Any], label: str) -> None:
        """``function(payload, env, shares, stop)`` runs on a Dask worker (see
        :func:`search.study.launch.run_child`)."""
        self.client, self.address, self.function = client, address, function
        self.label = f"search-{label}-{uuid.uuid4().hex[:8]}"
        self.stop = f"{self.label}-stop"

    def submit(self, payloads: list[str]) -> list[Any]:
        """Each payload as a task; Dask places them on its free worker threads. Each child
        gets its share of its host's cores: the cores over the Dask threads there."""
        workers = self.client.scheduler_info()["workers"]
        if not workers:
            raise EnvironmentFaultError(f"the Dask cluster at {self.address} has no workers")
        cores = self.client.run(os.cpu_count)
        threads: Counter[str] = Counter()
        host_cores: dict[str, int] = {}
        for address, info in workers.items():
            threads[info["host"]] += int(info["nthreads"])
            host_cores[info["host"]] = int(cores.get(address) or 1)
        shares = {host: max(1, host_cores[host] // threads[host]) for host in threads}
        env = client_env()
        # No worker restriction: a task whose Dask worker died must run again on any other
        # (a task held to a worker that is gone waits for it for ever).
        return [
            self.client.submit(
                self.function,
                payload,
                env,
                shares,
                self.stop,
                key=f"{self.label}-{index}",
                pure=False,
            )
            for index, payload in enumerate(payloads)
        ]

    def run(
        self,
        payloads: list[str],
        each_round: Callable[[], None],
        on_done: Callable[[int, tuple[int, str, str]], None] = lambda *_: None,
    ) -> list[tuple[int, str, str]]:
        """Run every payload; ``each_round`` is called every second, ``on_done`` with each
        task's index and (exit code, last line, where it ran) as it ends."""
        futures = self.submit(payloads)
        results: dict[int, tuple[int, str, str]] = {}
        try:
            while len(results) < len(futures):
                each_round()
                for index, future in enumerate(futures):
                    if index not in results and future.status in ("finished", "error"):
                        results[index] = self._result(future)
                        on_done(index, results[index])
                self._check_connected(futures)
                if len(results) < len(futures):
                    time.sleep(POLL_SECONDS)
            each_round()
        except BaseException:
            # Ctrl-C, or a task's error that ends the run: the others stop too.
            self._interrupt(futures)
            raise
        return [results[index] for index in range(len(futures))]

    def _result(self, future: Any) -> tuple[int, str, str]:
        if future.status == "error":
            error = future.exception()
            # A task that failed on every worker it was given (KilledWorker), or could not
            # start its process: one line, as a worker's own error is.
            message = str(error).strip().splitlines()
            return 1, f"{type(error).__name__}: {message[0] if message else ''}", ""
        code, line, where = future.result()
        return int(code), str(line), str(where)

    def _check_connected(self, futures: list[Any]) -> None:
        gone = self.client.status not in ("running", "newly-created") or any(
            future.status in ("cancelled", "lost") for future in futures
        )
        if gone:
            raise EnvironmentFaultError(
                f"lost the Dask scheduler at {self.address}: the finished trials are kept; "
                "run the same command again to resume"
            )

    def _interrupt(self, futures: list[Any], wait_seconds: float = 30.0) -> None:
        """Ctrl-C: every child ends its trials as interrupted (resumable), then the tasks
        that did not start are cancelled."""
        import distributed

        if self.client.status != "running":
            return  # the scheduler is gone: nothing can be asked of it
        with contextlib.suppress(Exception):
            distributed.Event(self.stop, client=self.client).set()
            distributed.wait(futures, timeout=wait_seconds)
        with contextlib.suppress(Exception):
            self.client.cancel(futures)
