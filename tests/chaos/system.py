"""
One deployment of the example lifecycle on real servers, run day after day, faults armed per day.

:func:`start_servers` starts what both runs share (two PostgreSQL clusters: the data one for source,
warehouse and MLflow's store, which faults hit, and one for Airflow's metadata, which they do not;
moto's S3; secantusdb; Redis for the CeleryExecutor). :class:`System` is one fresh deployment on
them: its own databases, S3 prefix and Mongo database, the fault proxies (S3, the profile API, the
model server) and the PostgreSQL wire gate, the supervised model server, an Airflow of separate
components (tests/harness/celery.py), the example DAGs as they are (a cluster policy shortens
retry delays and bounds the schedules: :data:`LOCAL_SETTINGS`). :meth:`System.run_day` triggers the
day's ETL through the REST API and waits for the Asset-triggered monitor and training runs of the day.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import psycopg

from airflow_provider_mlops.demo.api import DEMO_TOKEN, ProfileApi, serve
from airflow_provider_mlops.demo.simulate import World
from tests.chaos import plan as P
from tests.chaos.wire import WireGate, terminate_client
from tests.harness import servers
from tests.harness.celery import AirflowCluster, start_cluster
from tests.harness.injectors import (
    Injection,
    SupervisedProcess,
    kill_on_request,
    mongo_write_match,
    restart_mongo,
    restart_postgres,
)
from tests.harness.proxy import Fault, Request, start_proxy

ROOT = Path(__file__).resolve().parents[2]
MODEL = "churn_model"

# The harness's cluster policy (AIRFLOW_HOME/config/airflow_local_settings.py of every component).
# The DAG files stay as they are: their retry counts hold, only the waits are shortened, and the
# DAGs' schedules end with the simulated days (the scheduler would otherwise start today's interval).
LOCAL_SETTINGS = """
import os
from datetime import datetime, timedelta, timezone

END = datetime.fromisoformat(os.environ["MLOPS_CHAOS_END_DATE"]).replace(tzinfo=timezone.utc)


def dag_policy(dag):
    dag.end_date = END


def task_policy(task):
    # The DAGs' own retry counts; seconds instead of their minutes between tries.
    task.retry_delay = timedelta(seconds=2)
    task.max_retry_delay = timedelta(seconds=10)
    if hasattr(task, "poke_interval"):
        task.poke_interval = 5
"""
# Seconds instead of the defaults' minutes: how a dead worker's task is noticed and retried.
FAST_RECOVERY = {
    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
}


@dataclass
class Servers:
    data: servers.PostgresServer
    meta: servers.PostgresServer
    s3: servers.S3Server
    mongo: servers.MongoServer
    redis: servers.RedisServer | None
    base: Path


@contextlib.contextmanager
def start_servers(base: Path, executor: str) -> Iterator[Servers]:
    with contextlib.ExitStack() as stack:
        data = stack.enter_context(servers.start_postgres())
        meta = stack.enter_context(servers.start_postgres())
        s3 = stack.enter_context(servers.start_s3())
        mongo = stack.enter_context(servers.start_mongo())
        redis = stack.enter_context(servers.start_redis()) if executor == "celery" else None
        yield Servers(data, meta, s3, mongo, redis, base)


def _pg_conn(pg: servers.PostgresServer, port: int, database: str) -> dict[str, Any]:
    return {
        "conn_type": "mlops-postgres",
        "host": pg.host,
        "port": port,
        "login": pg.user,
        "password": pg.password,
        "schema": database,
    }


class HttpFaults:
    """The proxy rule of one fault proxy: the armed one-shot rules, first match wins."""

    def __init__(self) -> None:
        self.rules: list[tuple[Injection, Any]] = []
        self.lock = threading.Lock()

    def arm_fault(
        self, injection: Injection, method: str, fragment: str, fault: Fault, without: str | None = None
    ) -> None:
        def rule(request: Request) -> Fault | None:
            path = unquote(request.path)
            if request.method == method and fragment in path and (without is None or without not in path):
                injection.at = time.time()
                injection.detail = f"{request.method} {path[:120]}"
                return fault
            return None

        self.arm(injection, rule)

    def arm(self, injection: Injection, rule: Any) -> None:
        with self.lock:
            self.rules.append((injection, rule))

    def disarm(self) -> None:
        with self.lock:
            self.rules.clear()

    def __call__(self, request: Request) -> Fault | None:
        with self.lock:
            for injection, rule in list(self.rules):
                fault = rule(request)
                if injection.fired:
                    self.rules.remove((injection, rule))
                if fault is not None:
                    return fault
        return None


@dataclass
class DayResult:
    index: int
    day: str
    runs: dict[str, str] = field(default_factory=dict)  # dag_id -> run_id
    states: dict[str, str] = field(default_factory=dict)  # dag_id -> run state
    verdict: dict[str, Any] = field(default_factory=dict)  # the monitor's XCom, compared fields
    decision: dict[str, Any] = field(default_factory=dict)  # training / promotion
    tries: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""


class System:
    """One fresh deployment (name: ``chaos`` or ``clean``); use as a context manager."""

    def __init__(self, srv: Servers, name: str, world: World, days: int, executor: str) -> None:
        self.srv, self.name, self.world, self.days, self.executor = srv, name, world, days, executor
        self.base = srv.base / name
        suffix = f"{name}_{secrets.token_hex(3)}"
        self.db = {k: f"{k}_{suffix}" for k in ("airflow", "source", "warehouse", "mlflow")}
        self.prefix = f"s3://{srv.s3.bucket}/{suffix}"
        self.mongo_db = f"chaos_{suffix}"
        self.cluster: AirflowCluster | None = None
        self.s3_faults, self.api_faults, self.server_faults = HttpFaults(), HttpFaults(), HttpFaults()
        self.gate = WireGate(srv.data.port)
        self.mongo_gate = WireGate(srv.mongo.port)
        self.watchers: list[P.Planned] = []
        self.model_server: SupervisedProcess | None = None
        self.model_server_url = ""
        self._stack = contextlib.ExitStack()

    # ------------------------------------------------------------------ setup
    def dsn(self, key: str) -> str:
        pg = self.srv.data
        return f"host={pg.host} port={pg.port} user={pg.user} password={pg.password} dbname={self.db[key]}"

    def mlflow_uri(self, port: int | None = None) -> str:
        pg = self.srv.data
        return (
            f"postgresql+psycopg2://{pg.user}:{pg.password}@{pg.host}:{port or pg.port}/{self.db['mlflow']}"
        )

    def __enter__(self) -> System:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _start(self) -> None:
        srv, stack = self.srv, self._stack
        self.base.mkdir(parents=True, exist_ok=True)
        for key, pg in (
            ("airflow", srv.meta),
            ("source", srv.data),
            ("warehouse", srv.data),
            ("mlflow", srv.data),
        ):
            with psycopg.connect(
                host=pg.host,
                port=pg.port,
                user=pg.user,
                password=pg.password,
                dbname="postgres",
                autocommit=True,
            ) as conn:
                conn.execute(f"CREATE DATABASE {self.db[key]}")
        _demo_source().load_activity(self.dsn("source"), self.world, self.days)
        # MLflow's schema is created once here: two first tasks migrating it at once would race.
        import mlflow

        mlflow.MlflowClient(tracking_uri=self.mlflow_uri()).search_experiments()

        for gate in (self.gate, self.mongo_gate):
            gate.start()
            stack.callback(gate.stop)
        api, api_url = serve(ProfileApi(self.world))
        stack.callback(api.shutdown)
        api_proxy = stack.enter_context(start_proxy(api_url.rsplit("/api/v1", 1)[0], self.api_faults))
        s3_proxy = stack.enter_context(start_proxy(srv.s3.endpoint_url, self.s3_faults))
        s3_conn = {
            "conn_type": "mlops-s3",
            "login": srv.s3.access_key,
            "password": srv.s3.secret_key,
            "extra": {"endpoint_url": s3_proxy.endpoint_url, "region_name": srv.s3.region},
        }
        s3_env = {
            "AWS_ACCESS_KEY_ID": srv.s3.access_key,
            "AWS_SECRET_ACCESS_KEY": srv.s3.secret_key,
            "AWS_DEFAULT_REGION": srv.s3.region,
            "MLFLOW_S3_ENDPOINT_URL": s3_proxy.endpoint_url,
        }
        # The model server, supervised (restarted when killed, as Kubernetes would), before any model.
        token = secrets.token_urlsafe(24)
        port = servers.free_port()
        self.model_server_url = f"http://127.0.0.1:{port}"
        self.model_server = SupervisedProcess(
            [
                sys.executable,
                "-m",
                "airflow_provider_mlops.serve",
                "--model-name",
                MODEL,
                "--tracking-uri",
                self.mlflow_uri(),
                "--storage-conn-id",
                "mlops_s3",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            {
                **os.environ,
                **s3_env,
                "MLOPS_SERVE_TOKEN": token,
                "MLFLOW_DISABLE_TELEMETRY": "true",
                "AIRFLOW_CONN_MLOPS_S3": json.dumps(s3_conn),
            },
            self.base / "model_server.log",
            ready_url=f"{self.model_server_url}/health",  # liveness: 503 on /ping until a model
        )
        self.model_server.start()
        stack.callback(self.model_server.stop)
        server_proxy = stack.enter_context(start_proxy(self.model_server_url, self.server_faults))

        mongo = srv.mongo
        connections = {
            "mlops_api": {
                "conn_type": "mlops-http",
                "host": f"{api_proxy.endpoint_url}/api/v1",
                "password": DEMO_TOKEN,
                "extra": {"timeout": 30},
            },
            "mlops_alerts": {"conn_type": "mlops-http", "host": f"{api_url}/alerts"},
            "mlops_source_db": _pg_conn(srv.data, self.gate.port, self.db["source"]),
            "mlops_warehouse": _pg_conn(srv.data, self.gate.port, self.db["warehouse"]),
            "mlops_s3": s3_conn,
            "mlops_mongo": {
                "conn_type": "mlops-mongo",
                "host": mongo.host,
                "port": self.mongo_gate.port,
                "login": mongo.user,
                "password": mongo.password,
                "schema": self.mongo_db,
                "extra": {
                    "directConnection": "true",
                    "authSource": "admin",
                    "authMechanism": "SCRAM-SHA-256",
                    "serverSelectionTimeoutMS": "5000",
                },
            },
            "mlops_model_server": {
                "conn_type": "mlops-http",
                "host": server_proxy.endpoint_url,
                "password": token,
                "extra": {"timeout": 60},
            },
        }
        env = {f"AIRFLOW_CONN_{k.upper()}": json.dumps(v) for k, v in connections.items()}
        env |= {
            "AIRFLOW__MLOPS__STAGING_URI": f"{self.prefix}/staging",
            "AIRFLOW__MLOPS__STORAGE_CONN_ID": "mlops_s3",
            "MLOPS_LAKE_URI": f"{self.prefix}/lake",
            "MLOPS_ETL_MONGO_CONN_ID": "mlops_mongo",
            "MLOPS_MODEL_SERVER_CONN_ID": "mlops_model_server",
            "AIRFLOW__MLOPS__MLFLOW_TRACKING_URI": self.mlflow_uri(self.gate.port),
            "AIRFLOW__MLOPS__MLFLOW_ARTIFACT_LOCATION": f"{self.prefix}/mlflow",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "MLOPS_CHAOS_END_DATE": self.world.day(self.days + 2).isoformat(),
            **s3_env,
            **FAST_RECOVERY,
        }
        metadata = servers.PostgresServer(
            srv.meta.host, srv.meta.port, srv.meta.user, srv.meta.password, self.db["airflow"]
        )
        self.cluster = stack.enter_context(
            start_cluster(
                self.base / "airflow",
                ROOT / "example_dags",
                env,
                metadata=metadata,
                executor=self.executor,
                broker=srv.redis,
                local_settings=LOCAL_SETTINGS,
            )
        )
        for dag_id in (P.ETL, P.MONITOR, P.TRAIN):
            self.cluster.wait_for_dag(dag_id)

    # ------------------------------------------------------------------ faults
    def arm(self, planned: P.Planned) -> None:
        """Arm one planned fault for the day that starts now."""
        kind = planned.kind
        planned.injection = Injection(kind, planned.moment)
        if kind in ("pg_terminate", "pg_restart"):
            _dag, match = P.PG_MOMENTS[planned.moment]
            pg = self.srv.data
            if kind == "pg_terminate":
                action = lambda port: terminate_client(pg, port)  # noqa: E731
            else:

                def action(port: int) -> str:
                    return restart_postgres(pg).detail

            self.gate.arm(match, action, planned.injection)
        elif kind.startswith("s3_"):
            _dag, method, fragment, *without = P.S3_MOMENTS[planned.moment]
            fault = {"s3_5xx": Fault.fail(503), "s3_reset": Fault.reset(), "s3_slow": Fault.delay(5.0)}[kind]
            self.s3_faults.arm_fault(
                planned.injection,
                method,
                f"/{self.prefix.split('/', 3)[3]}{fragment}",
                fault,
                without[0] if without else None,
            )
        elif kind.startswith("http_"):
            fault = {"http_5xx": Fault.fail(503), "http_429": Fault.fail(429), "http_cut": Fault.cut(200)}[
                kind
            ]
            self.api_faults.arm_fault(planned.injection, "GET", "/api/v1/customers", fault)
        elif kind == "mongo_kill":
            # SIGKILL while the write is in flight, back 0.5 s later on the same data
            mongo = self.srv.mongo
            self.mongo_gate.arm(
                mongo_write_match("customers"),
                lambda port: restart_mongo(mongo, 0.5).detail,
                planned.injection,
            )
        elif kind == "model_server_kill":
            assert self.model_server is not None
            planned.injection, rule = kill_on_request(self.model_server, "POST", "/reload")
            self.server_faults.arm(planned.injection, rule)
        else:  # worker_kill, scheduler_restart: when a task runs
            self.watchers.append(planned)

    def disarm(self) -> None:
        self.gate.disarm()
        self.mongo_gate.disarm()
        for faults in (self.s3_faults, self.api_faults, self.server_faults):
            faults.disarm()
        self.watchers.clear()

    def _watch(self, runs: dict[str, str], stop: threading.Event) -> None:
        """Fire the task-moment faults: a worker kill, a scheduler restart."""
        assert self.cluster is not None
        cluster = self.cluster
        while not stop.is_set():
            pending = [p for p in self.watchers if not p.fired and not p.extra.get("firing")]
            if pending:
                for dag_id, run_id in list(runs.items()):
                    items = cluster.get_json(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances").get(
                        "task_instances", []
                    )
                    for ti in items:
                        for planned in pending:
                            if self._due(planned, dag_id, ti):
                                planned.extra["firing"] = True
                                threading.Thread(target=self._fire, args=(planned, ti), daemon=True).start()
            stop.wait(0.3)

    @staticmethod
    def _due(planned: P.Planned, dag_id: str, ti: dict[str, Any]) -> bool:
        if planned.extra.get("firing") or ti.get("state") != "running" or not ti.get("start_date"):
            return False
        want_dag, task = P.TASK_MOMENTS[planned.moment]
        if want_dag != dag_id:
            return False
        if ti["task_id"] != task:
            return False
        started = dt.datetime.fromisoformat(ti["start_date"].replace("Z", "+00:00")).timestamp()
        return time.time() - started >= planned.seconds and (
            planned.kind != "worker_kill" or bool(ti.get("pid"))
        )

    def _fire(self, planned: P.Planned, ti: dict[str, Any]) -> None:
        assert self.cluster is not None
        injection = planned.injection
        where = f"{ti['task_id']} try {ti.get('try_number')}"
        if planned.kind == "worker_kill":
            if self.executor == "celery":
                killed_at = time.time()
                self.cluster.kill_worker(str(ti.get("hostname")))
                # fired only once the kill happened (an unknown worker raises before)
                injection.detail = f"worker {ti.get('hostname')} running {where}"
                injection.at = killed_at
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(ti["pid"]), signal.SIGKILL)
                    injection.at = time.time()
                    injection.detail = f"task process {ti['pid']} ({where})"
        elif planned.kind == "scheduler_restart":
            injection.at = time.time()
            injection.detail = f"while {where} ran"
            self.cluster.restart_scheduler()

    # ------------------------------------------------------------------ days
    def run_day(self, index: int, planned: list[P.Planned]) -> DayResult:
        assert self.cluster is not None
        cluster = self.cluster
        started = time.monotonic()
        day = self.world.day(index)
        result = DayResult(index, day.isoformat())
        for p in planned:
            self.arm(p)
        known = {dag: self._run_ids(dag) for dag in (P.MONITOR, P.TRAIN)}
        stop = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(result.runs, stop), daemon=True)
        watcher.start()
        try:
            logical = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=dt.UTC)
            result.runs[P.ETL] = cluster.trigger(P.ETL, logical.isoformat())
            result.states[P.ETL] = cluster.wait_for_run(P.ETL, result.runs[P.ETL], timeout=900)
            if result.states[P.ETL] != "success":
                raise RuntimeError(f"the ETL run ended {result.states[P.ETL]}")
            run = self._new_run(P.MONITOR, known[P.MONITOR], result)
            verdict = self._xcom(P.MONITOR, run, "check_drift_and_accuracy")
            result.verdict = {
                k: verdict.get(k)
                for k in ("drift", "dataset_drift", "drifted_features", "retrain_requested", "rows")
            }
            accuracy = verdict.get("accuracy") or {}
            result.verdict["decayed"] = accuracy.get("decayed")
            requested = cluster.task_states(P.MONITOR, run).get("request_retrain")
            result.decision["retrain_requested"] = requested
            if requested == "success":
                train = self._new_run(P.TRAIN, known[P.TRAIN], result)
                states = cluster.task_states(P.TRAIN, train)
                result.decision["deploy_if_better"] = states.get("deploy_if_better")
            result.decision["champion"] = champion(self.mlflow_uri())
        except Exception as err:  # the day did not succeed: reported, the run stops here
            result.error = f"{type(err).__name__}: {err}"
        finally:
            stop.set()
            watcher.join(timeout=10)
            time.sleep(1)  # a fault firing right at the end finishes recording
            self.disarm()
            result.tries = self._tries(result.runs)
            result.seconds = time.monotonic() - started
        return result

    def _run_ids(self, dag_id: str) -> set[str]:
        assert self.cluster is not None
        runs = self.cluster.get_json(f"/dags/{dag_id}/dagRuns").get("dag_runs", [])
        return {str(r["dag_run_id"]) for r in runs}

    def _new_run(self, dag_id: str, known: set[str], result: DayResult, timeout: float = 900) -> str:
        """The Asset-triggered run of the day (the one not known before the day), once finished."""
        assert self.cluster is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.cluster.get_json(f"/dags/{dag_id}/dagRuns").get("dag_runs", [])
            new = [r for r in runs if str(r["dag_run_id"]) not in known]
            if new:
                result.runs[dag_id] = run_id = str(new[0]["dag_run_id"])
                if new[0].get("run_type") != "asset_triggered":
                    raise RuntimeError(f"{dag_id} started a {new[0].get('run_type')} run {run_id}")
                state = self.cluster.wait_for_run(dag_id, run_id, timeout=max(deadline - time.monotonic(), 1))
                result.states[dag_id] = state
                if state != "success":
                    raise RuntimeError(f"{dag_id} run {run_id} ended {state}")
                return run_id
            time.sleep(1)
        raise TimeoutError(f"no {dag_id} run after {timeout:.0f} s")

    def _xcom(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        assert self.cluster is not None
        found = self.cluster.get_json(
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
            params={"deserialize": "true", "stringify": "false"},
        )
        value = found.get("value")
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        return value if isinstance(value, dict) else {}

    def _tries(self, runs: dict[str, str]) -> list[dict[str, Any]]:
        """Every try of every task instance of the day's runs (the REST API's view)."""
        assert self.cluster is not None
        out = []
        for dag_id, run_id in runs.items():
            items = self.cluster.get_json(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances").get(
                "task_instances", []
            )
            for ti in items:
                tries = [ti]
                if int(ti.get("try_number") or 0) > 1:
                    tries = self.cluster.get_json(
                        f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/tries"
                    ).get("task_instances", [ti])
                for t in tries:
                    out.append(
                        {
                            "dag_id": dag_id,
                            "task_id": ti["task_id"],
                            "try_number": t.get("try_number"),
                            "state": t.get("state"),
                            "start": _ts(t.get("start_date")),
                            "end": _ts(t.get("end_date")),
                            "hostname": t.get("hostname"),
                            "final_state": ti.get("state"),
                        }
                    )
        return out


def _ts(value: str | None) -> float | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def champion(tracking_uri: str) -> str | None:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    try:
        return str(client.get_model_version_by_alias(MODEL, "champion").version)
    except Exception:
        return None


def _demo_source() -> Any:
    """The source-database writer of the compose stacks (scaffold template), as test_celery uses it."""
    import importlib.util

    from airflow_provider_mlops.scaffold import _templates

    path = _templates() / "common" / "include" / "demo_source.py"
    spec = importlib.util.spec_from_file_location("demo_source", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
