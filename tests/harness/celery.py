"""
Airflow on 127.0.0.1 as separate, restartable processes (:func:`start_cluster`): api-server,
scheduler, dag-processor, triggerer and, with the CeleryExecutor, N ``airflow celery worker``
processes, each worker with its own AIRFLOW_HOME, log server port and hostname (with the
LocalExecutor the scheduler runs the tasks). Broker: Debian's redis-server; metadata DB and Celery
results: PostgreSQL. :class:`AirflowCluster` restarts the scheduler and SIGKILLs / restarts a worker
as a crash and its supervisor would.

The traps of running this on one host (docs/deployment-runtimes.rst):

* SQLAlchemy 2.1 maps ``postgresql://`` to psycopg 3, which Celery's database result backend cannot
  use: the backend is ``db+postgresql+psycopg2://`` (a bare one fails behind a misleading "only
  available in Airflow versions >= 2.8.0" from the CLI);
* two workers on one host need distinct ``worker_log_server_port`` or the second one dies;
* every process needs the same JWT secret (the scheduler signs task tokens, the api-server checks
  them) and the execution API URL of the one api-server;
* every worker reports the same machine name, so each gets its own ``hostname_callable`` (the task
  instances' ``hostname`` then says which worker ran them).

Each worker also gets its own ``HOME`` and ``TMPDIR`` (under its AIRFLOW_HOME), as on separate machines.
:class:`TcpGate` (tests/harness/tcp.py, re-exported here) holds one chosen database write in flight,
so that a test can SIGKILL the worker running it at a known moment.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from airflow_provider_mlops.utils.processes import stop_process_group
from tests.harness.scheduler import AirflowServer, airflow_env, wait_healthy
from tests.harness.servers import PostgresServer, RedisServer, free_port
from tests.harness.tcp import TcpGate as TcpGate  # re-exported: moved to tests/harness/tcp.py
from tests.harness.tcp import tcp_gate as tcp_gate

# A module on the workers' PYTHONPATH: hostname_callable = mlops_worker_name.get
_HOSTNAME_MODULE = """
import os


def get() -> str:
    return os.environ["MLOPS_WORKER_NAME"]
"""


@dataclass
class AirflowCluster(AirflowServer):
    """
    The running components. Each one leads its own process group (a task process started by the
    scheduler or a worker belongs to it), so :meth:`kill` takes a component with its tasks.
    """

    workers: dict[str, Path] = field(default_factory=dict)  # worker name -> its log file
    pids: dict[str, int] = field(default_factory=dict)  # process name -> pid (= its process group)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict, repr=False)
    logs: dict[str, Path] = field(default_factory=dict, repr=False)
    _spawn: Callable[[str], subprocess.Popen] | None = field(default=None, repr=False)
    restarts: dict[str, int] = field(default_factory=dict)

    def worker_log(self, name: str) -> str:
        return self.workers[name].read_text(errors="replace")

    def kill(self, name: str) -> None:
        """SIGKILL one process's group (a worker and its task subprocesses), as a crash would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pids[name], signal.SIGKILL)
        if name in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.procs[name].wait(timeout=10)

    def start(self, name: str) -> None:
        """(Re)start one component with its original command and environment (its log is appended to)."""
        assert self._spawn is not None
        self.procs[name] = self._spawn(name)
        self.pids[name] = self.procs[name].pid
        self.restarts[name] = self.restarts.get(name, -1) + 1

    def restart(self, name: str, *, grace: float = 20.0) -> None:
        """Stop a component as its service manager would (SIGTERM, SIGKILL after ``grace``), start it again."""
        stop_process_group(self.procs[name], grace=grace)
        self.start(name)

    def restart_scheduler(self, *, grace: float = 20.0) -> None:
        self.restart("scheduler", grace=grace)

    def kill_worker(self, name: str, *, restart: bool = True, wait_ready: float = 120.0) -> None:
        """SIGKILL a Celery worker with its tasks; restart it (a supervisor's job) and wait until it is ready."""
        before = len(self.worker_log(name))
        self.kill(name)
        if restart:
            self.start(name)
            deadline = time.monotonic() + wait_ready
            while "ready." not in self.worker_log(name)[before:]:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} not ready {wait_ready:.0f}s after its restart")
                time.sleep(0.5)

    def stop(self) -> None:
        # Workers first (a warm shutdown lets nothing new start), then the control plane.
        for name in [*self.workers, "triggerer", "dag-processor", "scheduler", "api-server"]:
            if name in self.procs:
                stop_process_group(self.procs[name])


CeleryCluster = AirflowCluster  # the name tests/integration/test_celery.py knows it by


@contextlib.contextmanager
def start_cluster(
    base: Path,
    dags_folder: Path,
    env: Mapping[str, str],
    *,
    metadata: PostgresServer,
    executor: str = "celery",
    broker: RedisServer | None = None,
    workers: tuple[str, ...] = ("worker1", "worker2"),
    concurrency: int = 1,
    triggerer: bool = True,
    local_settings: str | None = None,
) -> Iterator[AirflowCluster]:
    """
    Migrate the metadata DB, start every component in its own process group; stop them all.

    :param executor: ``celery`` (``broker`` and ``workers`` needed) or ``local`` (the scheduler runs tasks).
    :param local_settings: the text of an ``airflow_local_settings.py`` (cluster policies) written to
        every home's ``config`` folder, where each component imports it from.
    """
    if executor not in ("celery", "local"):
        raise ValueError(f"executor must be 'celery' or 'local', got {executor!r}")
    if executor == "local":
        workers = ()
    elif broker is None:
        raise ValueError("the CeleryExecutor needs a broker")
    port = free_port()
    db = f"postgresql+psycopg2://{metadata.user}:{metadata.password}@{metadata.host}:{metadata.port}/{metadata.database}"
    pythonpath = base / "pythonpath"
    pythonpath.mkdir(parents=True, exist_ok=True)
    (pythonpath / "mlops_worker_name.py").write_text(_HOSTNAME_MODULE)
    homes = {"control": base / "control", **{name: base / name for name in workers}}
    common = airflow_env(
        homes["control"],
        dags_folder,
        port,
        db,
        {
            "PYTHONPATH": os.pathsep.join([str(pythonpath), os.environ.get("PYTHONPATH", "")]).rstrip(
                os.pathsep
            ),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor" if executor == "celery" else "LocalExecutor",
            # 64 bytes: the HS512 minimum (shorter keys work but warn on every request).
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            **env,
        },
    )
    if broker is not None:
        common |= {
            "AIRFLOW__CELERY__BROKER_URL": broker.url,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{db}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(concurrency),
        }
    for home in homes.values():
        (home / "config").mkdir(parents=True, exist_ok=True)
        if local_settings is not None:
            (home / "config" / "airflow_local_settings.py").write_text(local_settings)
    for name in workers:
        (homes[name] / "home").mkdir(exist_ok=True)
        (homes[name] / "tmp").mkdir(exist_ok=True)
    control_env = common
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], env=control_env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")

    commands: dict[str, tuple[list[str], dict[str, str]]] = {
        "api-server": (["api-server"], control_env),
        "scheduler": (["scheduler"], control_env),
        "dag-processor": (["dag-processor"], control_env),
    }
    if triggerer:
        commands["triggerer"] = (["triggerer"], control_env)
    for name in workers:
        worker_env = {
            **common,
            "AIRFLOW_HOME": str(homes[name]),
            # Nothing local is shared: each worker has its own home and temporary folder.
            "HOME": str(homes[name] / "home"),
            "TMPDIR": str(homes[name] / "tmp"),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "mlops_worker_name.get",
            "MLOPS_WORKER_NAME": name,
        }
        commands[name] = (["celery", "worker", "--celery-hostname", f"{name}@%h"], worker_env)
    logs = {name: (homes.get(name) or homes["control"]) / f"{name}.log" for name in commands}
    handles = []

    def spawn(name: str) -> subprocess.Popen:
        args, proc_env = commands[name]
        handle = open(logs[name], "ab")  # noqa: SIM115 - closed below
        handles.append(handle)
        return subprocess.Popen(
            [sys.executable, "-m", "airflow", *args],
            env=proc_env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped (or killed) with its children
        )

    url = f"http://127.0.0.1:{port}"
    cluster = AirflowCluster(
        url,
        homes["control"],
        logs["scheduler"],
        workers={n: logs[n] for n in workers},
        logs=logs,
        _spawn=spawn,
    )
    try:
        for name in commands:
            cluster.start(name)
        wait_healthy(url, cluster.procs, logs)
        deadline = time.monotonic() + 180
        while not all("ready." in cluster.worker_log(n) for n in workers):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    "Celery workers not ready after 180s:\n"
                    + "\n".join(f"--- {n}\n{cluster.worker_log(n)[-1500:]}" for n in workers)
                )
            time.sleep(1)
        yield cluster
    finally:
        cluster.stop()
        for handle in handles:
            handle.close()


@contextlib.contextmanager
def start_celery_airflow(
    base: Path,
    dags_folder: Path,
    env: Mapping[str, str],
    *,
    metadata: PostgresServer,
    broker: RedisServer,
    workers: tuple[str, ...] = ("worker1", "worker2"),
    concurrency: int = 1,
) -> Iterator[AirflowCluster]:
    """The CeleryExecutor cluster of tests/integration/test_celery.py (no triggerer: no deferrable task there)."""
    with start_cluster(
        base,
        dags_folder,
        env,
        metadata=metadata,
        executor="celery",
        broker=broker,
        workers=workers,
        concurrency=concurrency,
        triggerer=False,
    ) as cluster:
        yield cluster
