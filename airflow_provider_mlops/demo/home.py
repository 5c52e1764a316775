"""
The demo's Airflow home as a person finds it afterwards (issue #27, Deliver 1).

- :func:`write_config` writes ``airflow.cfg`` with everything the demo runs on (DAG folder, no
  Airflow examples, the metadata DB, the staging URI, the log folder, loopback API without login),
  so ``AIRFLOW_HOME=.demo airflow ...`` and ``./dev ui`` see the same Airflow the demo ran.
- :func:`store_connections` puts the demo's connections into the metadata DB (the Connections page
  lists them).
- :class:`RunRecords` makes each day's ``dag.test()`` run leave the records a scheduler would: the
  run type and reason (the simulated day's schedule; an Asset event, with the events it consumed),
  the real start time, and one log file per task attempt in Airflow's log layout, which the UI reads.
  The tasks still run in the demo's process (``dag.test()``: ~4 s a day instead of ~30 s with one
  process per task), and each run's note says so.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import secrets
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

#: Where ``./dev ui`` serves the Airflow UI and the MLflow UI (loopback only).
AIRFLOW_PORT = 8080
MLFLOW_PORT = 5000


def write_config(home: Path, dags_folder: Path, *, port: int = AIRFLOW_PORT) -> Path:
    """
    Write ``home/airflow.cfg`` (before anything imports Airflow): the demo's settings live in the
    file, not in the demo process's environment, so every later ``airflow`` command reads them.
    """
    cfg = home / "airflow.cfg"
    home.mkdir(parents=True, exist_ok=True)
    storage = (home / "storage").as_uri()
    cfg.write_text(
        f"""\
# The Airflow home of the demo, written by `python -m airflow_provider_mlops.demo` (docs/demo.rst).
# Open its UI with `./dev ui` (or: AIRFLOW_HOME={home} airflow standalone).

[core]
dags_folder = {dags_folder}
load_examples = False
executor = LocalExecutor
parallelism = 4
fernet_key = {_fernet_key()}
# Local demo only: the UI and the REST API need no login and listen on 127.0.0.1 alone.
simple_auth_manager_all_admins = True

[database]
sql_alchemy_conn = sqlite:///{home / "airflow.db"}

[logging]
base_log_folder = {home / "logs"}

[api]
host = 127.0.0.1
port = {port}
base_url = http://127.0.0.1:{port}
# The provider's report pages (/mlops/reports/...) build their links from this address.

[api_auth]
# Shared by the API server and the scheduler's task processes (tokens of the execution API).
jwt_secret = {secrets.token_urlsafe(32)}

[dag_processor]
refresh_interval = 30

[mlops]
# Where tasks stage their outputs and write their reports (staging://... paths).
staging_uri = {storage}
# The MLflow tracking store and artifacts of the default MLflow connection (`./dev ui` serves its UI).
mlflow_tracking_uri = sqlite:///{home / "mlflow.db"}
mlflow_artifact_location = {(home / "mlflow-artifacts").as_uri()}
"""
    )
    return cfg


def _fernet_key() -> str:
    """Connection passwords are stored encrypted in the metadata DB with this key."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def store_connections(connections: dict[str, dict[str, Any]]) -> None:
    """Create or replace each connection in the metadata DB (after ``airflow db migrate``)."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        for conn_id, fields in connections.items():
            session.query(Connection).filter(Connection.conn_id == conn_id).delete()
            extra = fields.get("extra")
            session.add(
                Connection(
                    conn_id=conn_id,
                    conn_type=fields["conn_type"],
                    host=fields.get("host"),
                    password=fields.get("password"),
                    extra=json.dumps(extra) if extra is not None else None,
                    description=fields.get("description"),
                )
            )


@dataclass
class _Planned:
    run_type: str
    note: str
    consume_from: tuple[str, str] | None = None  # (dag_id, run_id) whose Asset events caused the run


@dataclass
class RunRecords:
    """
    Installed for the whole demo (:meth:`installed`); :meth:`plan` says why the next ``dag.test()``
    runs (``scheduled`` or ``asset_triggered`` and a note for the UI).
    """

    log_folder: Path
    _next: _Planned | None = None
    _file: Any = None
    _patches: list[tuple[Any, str, Any]] = field(default_factory=list)

    def plan(self, run_type: str, note: str, *, consume_from: tuple[str, str] | None = None) -> None:
        self._next = _Planned(run_type, note, consume_from)

    @contextlib.contextmanager
    def installed(self) -> Iterator[RunRecords]:
        import airflow.models.dagrun as dagrun_module
        import airflow.sdk.execution_time.supervisor as supervisor_module

        self._patch(dagrun_module, "get_or_create_dagrun", self._get_or_create_dagrun)
        self._patch(supervisor_module, "run_task_in_process", self._run_task_in_process)
        remove = _install_log_routing(self)
        try:
            yield self
        finally:
            remove()
            for owner, name, original in reversed(self._patches):
                setattr(owner, name, original)
            self._patches.clear()

    def _patch(self, owner: Any, name: str, replacement: Any) -> None:
        original = getattr(owner, name)
        self._patches.append((owner, name, original))
        setattr(owner, name, _bound(replacement, original))

    # -- the run --------------------------------------------------------------------------------
    def _get_or_create_dagrun(self, original: Any, **kwargs: Any) -> Any:
        """``dag.test()``'s run, created with the planned type, the real start time and a note."""
        from airflow.models.asset import AssetDagRunQueue, AssetEvent
        from airflow.models.dagrun import DagRun
        from airflow.utils.state import DagRunState
        from airflow.utils.types import DagRunTriggeredByType, DagRunType
        from sqlalchemy import select

        planned, self._next = self._next, None
        if planned is None:
            return original(**kwargs)
        dag, session = kwargs["dag"], kwargs["session"]
        logical = kwargs["logical_date"]
        old = session.scalar(
            select(DagRun).where(DagRun.dag_id == dag.dag_id, DagRun.logical_date == logical)
        )
        if old is not None:
            session.delete(old)
            session.commit()
        run_type = DagRunType(planned.run_type)
        triggered_by = (
            DagRunTriggeredByType.ASSET
            if run_type == DagRunType.ASSET_TRIGGERED
            else DagRunTriggeredByType.TIMETABLE
        )
        now = dt.datetime.now(dt.UTC)
        run = dag.create_dagrun(
            run_id=run_type.generate_run_id(suffix=(logical or now).isoformat()),
            logical_date=logical,
            data_interval=kwargs["data_interval"],
            run_after=now,
            conf=kwargs.get("conf"),
            run_type=run_type,
            state=DagRunState.RUNNING,
            triggered_by=triggered_by,
            triggering_user_name=None,
            start_date=now,
            note=planned.note,
            session=session,
        )
        if planned.consume_from:
            # The Asset events that caused this run (the UI's "Source" of an asset-triggered run):
            # those the upstream run emitted for an Asset this DAG is scheduled on; any queue entries
            # for this DAG are consumed as the scheduler consumes them.
            from airflow.models.asset import DagScheduleAssetReference

            scheduled_on = select(DagScheduleAssetReference.asset_id).where(
                DagScheduleAssetReference.dag_id == dag.dag_id
            )
            source_dag, source_run = planned.consume_from
            events = session.scalars(
                select(AssetEvent)
                .where(AssetEvent.asset_id.in_(scheduled_on))
                .where(AssetEvent.source_dag_id == source_dag, AssetEvent.source_run_id == source_run)
                .order_by(AssetEvent.id)
            ).all()
            run.consumed_asset_events.extend(events)
            run.note = _with_sources(planned.note, list(events))
            for entry in session.scalars(
                select(AssetDagRunQueue).where(AssetDagRunQueue.target_dag_id == dag.dag_id)
            ).all():
                session.delete(entry)
            session.commit()
        return run

    # -- the task logs --------------------------------------------------------------------------
    def _run_task_in_process(self, original: Any, ti: Any, task: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one task with its log lines written to the file the Airflow UI reads for it."""
        parts = [f"dag_id={ti.dag_id}", f"run_id={ti.run_id}", f"task_id={ti.task_id}"]
        if ti.map_index is not None and ti.map_index >= 0:
            parts.append(f"map_index={ti.map_index}")
        path = self.log_folder.joinpath(*parts, f"attempt={ti.try_number}.log")
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            self._file = handle
            try:
                return original(ti, task, *args, **kwargs)
            finally:
                self._file = None

    def write(self, event: dict[str, Any]) -> bool:
        """Write one structured log line to the running task's file; False outside a task."""
        if self._file is None:
            return False
        self._file.write(json.dumps(event, default=str) + "\n")
        self._file.flush()
        return True


def _with_sources(note: str, events: list[Any]) -> str:
    """The note, then which task's Asset event caused the run and the reason it carries, if any."""
    lines = [note]
    for event in events:
        request = (event.extra or {}).get("retrain_request") or {}
        reason = request.get("reason") if isinstance(request, dict) else None
        lines.append(
            f"Asset event of {event.source_dag_id}.{event.source_task_id} ({event.source_run_id})"
            + (f": {reason}" if reason else "")
        )
    text = "\n".join(lines)
    return text if len(text) <= 1000 else text[:997] + "..."


def _bound(replacement: Any, original: Any) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        return replacement(original, *args, **kwargs)

    return call


_LEVELS = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "exception": 40, "critical": 50}


def _install_log_routing(records: RunRecords) -> Any:
    """
    Route every log line to the running task's file (JSON lines, as the task supervisor writes
    them) and keep the terminal to warnings and errors: the demo prints its own summary.
    Returns a function that undoes it.
    """
    import structlog

    def to_task_file(logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        level = str(event_dict.get("level") or method).lower()
        line = {k: v for k, v in event_dict.items() if not k.startswith("_") and k != "exc_info"}
        line.setdefault("timestamp", dt.datetime.now(dt.UTC).isoformat())
        line["level"] = level
        exc = event_dict.get("exc_info")
        if exc:
            info = exc if isinstance(exc, tuple) else None
            line["event"] = f"{line.get('event', '')}\n" + "".join(
                traceback.format_exception(*info) if info else traceback.format_exc()
            )
        written = records.write(line)
        if _LEVELS.get(level, 20) < logging.WARNING or (written and _LEVELS.get(level, 20) < logging.ERROR):
            raise structlog.DropEvent
        return event_dict

    processors = structlog.get_config()["processors"]
    processors.insert(len(processors) - 1, to_task_file)

    class TaskFileHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            line = {
                "timestamp": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
                "level": record.levelname.lower(),
                "logger": record.name,
                "event": record.getMessage(),
            }
            if record.exc_info:
                line["event"] += "\n" + "".join(traceback.format_exception(*record.exc_info))
            records.write(line)

    class Quiet(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return record.levelno >= (logging.ERROR if records._file is not None else logging.WARNING)

    root = logging.getLogger()
    file_handler, quiet = TaskFileHandler(level=logging.INFO), Quiet()
    existing = list(root.handlers)
    for handler in existing:
        handler.addFilter(quiet)
    root.addHandler(file_handler)

    def remove() -> None:
        with contextlib.suppress(ValueError):
            processors.remove(to_task_file)
        root.removeHandler(file_handler)
        for handler in existing:
            handler.removeFilter(quiet)

    return remove
