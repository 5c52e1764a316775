"""
Airflow with the CeleryExecutor on 127.0.0.1, as separate processes: api-server, scheduler,
dag-processor and N ``airflow celery worker`` processes, each worker with its own AIRFLOW_HOME, log
server port and hostname. Broker: Debian's redis-server; metadata DB and Celery results: PostgreSQL.

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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests

from airflow_provider_mlops.utils.processes import stop_process_group
from tests.harness.scheduler import AirflowServer
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
class CeleryCluster(AirflowServer):
    workers: dict[str, Path] = field(default_factory=dict)  # worker name -> its log file
    pids: dict[str, int] = field(default_factory=dict)  # process name -> pid (= its process group)

    def worker_log(self, name: str) -> str:
        return self.workers[name].read_text(errors="replace")

    def kill(self, name: str) -> None:
        """SIGKILL one process's group (a worker and its task subprocesses), as a crash would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pids[name], signal.SIGKILL)


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
) -> Iterator[CeleryCluster]:
    """Migrate the metadata DB, start every component in its own process group; stop them all."""
    port = free_port()
    db = f"postgresql+psycopg2://{metadata.user}:{metadata.password}@{metadata.host}:{metadata.port}/{metadata.database}"
    pythonpath = base / "pythonpath"
    pythonpath.mkdir(parents=True, exist_ok=True)
    (pythonpath / "mlops_worker_name.py").write_text(_HOSTNAME_MODULE)
    common = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join([str(pythonpath), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db,
        "AIRFLOW__CELERY__BROKER_URL": broker.url,
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{db}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(concurrency),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        # 64 bytes: the HS512 minimum (shorter keys work but warn on every request).
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
        **env,
    }
    homes = {"control": base / "control", **{name: base / name for name in workers}}
    for home in homes.values():
        home.mkdir(parents=True, exist_ok=True)
    for name in workers:
        (homes[name] / "home").mkdir(exist_ok=True)
        (homes[name] / "tmp").mkdir(exist_ok=True)
    control_env = {**common, "AIRFLOW_HOME": str(homes["control"])}
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], env=control_env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")

    procs: dict[str, subprocess.Popen] = {}
    handles = []
    logs: dict[str, Path] = {}

    def spawn(name: str, args: list[str], proc_env: dict[str, str]) -> None:
        logs[name] = (homes.get(name) or homes["control"]) / f"{name}.log"
        handle = open(logs[name], "wb")  # noqa: SIM115 - closed below
        handles.append(handle)
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args],
            env=proc_env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped (or killed) with its children
        )

    try:
        spawn("api-server", ["api-server"], control_env)
        spawn("scheduler", ["scheduler"], control_env)
        spawn("dag-processor", ["dag-processor"], control_env)
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
            spawn(name, ["celery", "worker", "--celery-hostname", f"{name}@%h"], worker_env)
        url = f"http://127.0.0.1:{port}"
        cluster = CeleryCluster(
            url,
            homes["control"],
            logs["scheduler"],
            workers={n: logs[n] for n in workers},
            pids={n: p.pid for n, p in procs.items()},
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if dead := [n for n, p in procs.items() if p.poll() is not None]:
                raise RuntimeError(f"{dead} exited:\n" + "\n".join(logs[n].read_text()[-3000:] for n in dead))
            with contextlib.suppress(requests.RequestException):
                healthy = requests.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200
                if healthy and all("ready." in cluster.worker_log(n) for n in workers):
                    break
            time.sleep(1)
        else:
            raise TimeoutError(
                "Celery cluster not ready after 180s:\n"
                + "\n".join(f"--- {n}\n{logs[n].read_text()[-1500:]}" for n in procs)
            )
        yield cluster
    finally:
        # Workers first (a warm shutdown lets nothing new start), then the control plane.
        for name in [*workers, "dag-processor", "scheduler", "api-server"]:
            if name in procs:
                stop_process_group(procs[name])
        for handle in handles:
            handle.close()
