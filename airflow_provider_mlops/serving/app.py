"""
The model server: a FastAPI app serving one registered model, loaded through the trusted loader.

Endpoints (routes in :mod:`.http`): ``GET /ping``, ``GET /version``, ``POST /invocations`` (MLflow's
scoring protocol, see :mod:`.protocol`), ``POST /reload`` (bearer token), ``GET /metrics``
(Prometheus text).

The server may start before there is anything to serve: when the registered model has no version
under the alias yet (no champion: the first deployment has not run), it starts empty, answers 503
(``TEMPORARILY_UNAVAILABLE``, MLflow's error shape) on ``/ping`` and ``/invocations``, reports
``"version": null`` on ``/version``, and serves the first version a ``POST /reload`` brings (what the
``local_server`` deployment target does). Anything else that stops a model from loading (a digest
mismatch, a configured version that does not exist) still exits: nothing unverified is served.

The served model is one immutable :class:`Served` object behind a single reference. A request takes
that reference once and uses it to the end, so a reload (load + verify in a worker thread, then one
assignment) never changes the model under a request in flight; a failed load leaves the reference
alone. Nothing here imports FastAPI or uvicorn: only the server process imports :mod:`.http`.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.serving.metrics import Metrics
from airflow_provider_mlops.serving.protocol import InputSchema, RequestError, parse_table, predictions_body

if TYPE_CHECKING:
    from airflow_provider_mlops.ml.serialization import LoadPolicy, VerifiedModel
    from airflow_provider_mlops.serving.compiled import CompiledPipeline
    from airflow_provider_mlops.serving.protocol import RequestTable

log = logging.getLogger("airflow_provider_mlops.serve")


@dataclass
class ServeConfig:
    """
    What to serve and how.

    :param model_name: the registered model (with ``alias`` or ``version``).
    :param alias: the alias whose version is served (default ``champion``).
    :param version: a fixed version instead of the alias.
    :param latest_uri: a ``latest.json`` published by DeployModelOperator: it names the version and
        where its file is; the digest still comes from MLflow (or ``sha256``).
    :param model_uri: read ``version``'s bytes from here (a cloud target passes the published file);
        without MLflow it needs ``version`` and a pinned ``sha256``.
    :param tracking_uri: MLflow tracking URI (the trusted digests live there).
    :param registry_uri: MLflow registry URI, when different.
    :param storage_conn_id: Airflow connection for ``s3://`` model files; None for local files or
        boto3's default credentials.
    :param sha256: a pinned digest (required when serving ``latest_uri`` without MLflow).
    :param policy: formats and types the loader may deserialize.
    :param token: bearer token for ``POST /reload``; None disables reloading over HTTP.
    :param max_rows: the most rows one request may hold.
    :param max_body_bytes: the largest request body read (413 beyond it, checked from Content-Length
        and while reading, before anything is parsed).
    :param max_columns: the most columns one request may name.
    :param strict_columns: refuse columns the model does not take (MLflow ignores them: the default).
    :param docs: serve ``/docs`` and ``/openapi.json`` (off by default: they describe the server to
        anyone who asks).
    :param log_uri: prefix where each batch of inputs and predictions is written as a Parquet dataset.
    :param log_flush_seconds: how often buffered prediction logs are written.
    :param log_flush_rows: write as soon as this many rows are buffered.
    """

    model_name: str | None = None
    alias: str = "champion"
    version: str | None = None
    latest_uri: str | None = None
    model_uri: str | None = None
    tracking_uri: str | None = None
    registry_uri: str | None = None
    storage_conn_id: str | None = None
    sha256: str | None = None
    policy: LoadPolicy | None = None
    token: str | None = field(default=None, repr=False)
    max_rows: int = 10_000
    max_body_bytes: int = 64 * 1024 * 1024
    max_columns: int = 10_000
    strict_columns: bool = False
    docs: bool = False
    log_uri: str | None = None
    log_flush_seconds: float = 10.0
    log_flush_rows: int = 10_000


@dataclass(frozen=True)
class Served:
    """One loaded model and what the server knows about it (immutable: swapped, never mutated)."""

    verified: VerifiedModel
    schema: InputSchema | None
    loaded_epoch: float
    # The Pipeline's preprocessing as exact array operations (None: always score with the Pipeline).
    compiled: CompiledPipeline | None = None

    def predict(self, table: RequestTable, method: str = "predict") -> Any:
        """
        ``model.predict`` (or ``method``: ``predict_proba``...) on the request, through the compiled
        form when it covers every value.
        """
        compiled = self.compiled
        if (
            compiled is not None
            and method in ("predict", "predict_proba")
            and table.values is not None
            and set(table.values) == set(compiled.columns)
        ):
            features = compiled.features(table.values, table.rows, table.text)
            if features is not None:
                return getattr(compiled, method)(features)
        return getattr(self.verified.model, method)(table.frame())

    def describe(self) -> dict[str, Any]:
        return {**self.verified.describe(), "inputs": self.schema.describe() if self.schema else None}

    def labels(self) -> dict[str, str]:
        v = self.verified
        return {
            "name": v.name,
            "version": v.version,
            "sha256": v.sha256,
            "loaded_at_epoch": f"{self.loaded_epoch:.3f}",
        }


class ModelLoader:
    """Resolves what to serve (alias, version or ``latest.json``) and loads it through the trusted loader."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self._client: Any = None
        self._storage: Any = None

    @property
    def client(self) -> Any:
        if self._client is None and self.config.tracking_uri:
            import mlflow
            from mlflow.tracking import MlflowClient

            # The signature lookup uses MLflow's fluent API: point it at the same server.
            mlflow.set_tracking_uri(self.config.tracking_uri)
            if self.config.registry_uri:
                mlflow.set_registry_uri(self.config.registry_uri)
            self._client = MlflowClient(
                tracking_uri=self.config.tracking_uri, registry_uri=self.config.registry_uri
            )
        return self._client

    @property
    def storage(self) -> Any:
        if self._storage is None:
            from airflow_provider_mlops.hooks.s3 import ObjectStorageHook

            self._storage = ObjectStorageHook(aws_conn_id=self.config.storage_conn_id)
        return self._storage

    def load(
        self,
        *,
        version: str | None = None,
        latest_uri: str | None = None,
        sha256: str | None = None,
        name: str | None = None,
        uri: str | None = None,
    ) -> Served:
        """
        An explicit ``version`` wins (read from ``uri`` when given, else where MLflow recorded it);
        then a ``latest.json`` (the request's, else the configured one); then the configured
        version or alias. The digest is always the registry's or a pinned one, never the pointer's.
        """
        from airflow_provider_mlops.ml.serialization import LoadPolicy, load_model_version

        config = self.config
        if name and config.model_name and name != config.model_name:
            raise RequestError(f"This server serves {config.model_name!r}, not {name!r}", status=409)
        latest = None if version else (latest_uri or config.latest_uri)
        model_name = config.model_name or name
        if latest:
            pointer = json.loads(self.storage.get_bytes(latest))
            model_name = model_name or pointer.get("registered_model_name")
            if model_name != pointer.get("registered_model_name"):
                raise RequestError(
                    f"{latest} names {pointer.get('registered_model_name')!r}, not {model_name!r}", status=409
                )
            # The pointer only says which version and where its bytes are: the digest that is
            # checked comes from MLflow (or the configured pin), never from the pointer itself.
            version, uri = str(pointer["version"]), pointer.get("uri")
        elif not version:
            version = config.version
            if version:  # the configured file belongs to the configured version only
                uri = uri or config.model_uri
        if not model_name:
            raise ValueError(
                "Nothing to serve: give a model name (with an alias or version) or a latest.json"
            )
        verified = load_model_version(
            self.client,
            model_name,
            version,
            alias=config.alias,
            storage=self.storage,
            policy=config.policy or LoadPolicy(),
            uri=uri,
            expected_sha256=sha256 or config.sha256,
        )
        from airflow_provider_mlops.serving.compiled import compile_pipeline

        compiled = compile_pipeline(verified.model)
        log.info(
            "%s v%s: %s",
            verified.name,
            verified.version,
            "compiled preprocessing checked identical to the Pipeline: used"
            if compiled
            else "scored with the Pipeline's predict",
        )
        return Served(
            verified=verified, schema=self._schema(verified), loaded_epoch=time.time(), compiled=compiled
        )

    def _schema(self, verified: VerifiedModel) -> InputSchema | None:
        signature = None
        if self.client is not None:
            try:
                import mlflow

                info = mlflow.models.get_model_info(f"models:/{verified.name}/{verified.version}")
                signature = info.signature
            except Exception as err:  # the signature only sharpens validation: serve without it
                log.warning("No MLflow signature for %s v%s (%s)", verified.name, verified.version, err)
        return InputSchema.for_model(verified.model, signature)


class PredictionLogger:
    """
    Buffers inputs + predictions and writes them as Parquet datasets (``ObjectStorageHook.write_dataset``),
    one per flush, below ``<log_uri>/date=YYYY-MM-DD/``, with the model version in every row.
    Writing happens in a background thread: a slow bucket never slows a prediction down.
    """

    def __init__(self, storage: Any, uri: str, *, flush_seconds: float, flush_rows: int) -> None:
        self.storage = storage
        self.uri = uri.rstrip("/")
        self.flush_seconds = flush_seconds
        self.flush_rows = flush_rows
        self._pending: list[Any] = []
        self._rows = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.written: list[str] = []
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def add(self, frame: Any, predictions: Any, served: Served, *, smoke_test: bool = False) -> None:
        import pyarrow as pa

        out = frame.copy()
        out["prediction"] = predictions
        out["model_name"] = served.verified.name
        out["model_version"] = served.verified.version
        out["predicted_at"] = dt.datetime.now(dt.UTC)
        out["smoke_test"] = smoke_test  # a deployment's smoke request, not traffic
        try:
            table = pa.Table.from_pandas(out, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            # a text column holding numbers too (kept as MLflow keeps them): logged as text
            for name in [c for c in out.columns if out[c].dtype.kind == "O"]:
                out[name] = [v if v is None or isinstance(v, str | float) else str(v) for v in out[name]]
            table = pa.Table.from_pandas(out, preserve_index=False)
        with self._lock:
            self._pending.append(table)
            self._rows += table.num_rows
            full = self._rows >= self.flush_rows
        if full:
            self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        with self._lock:
            pending, self._pending, self._rows = self._pending, [], 0
        if not pending:
            return
        now = dt.datetime.now(dt.UTC)
        target = f"{self.uri}/date={now:%Y-%m-%d}/{now:%H%M%S}-{uuid.uuid4().hex[:8]}"
        try:
            table = pa.concat_tables(pending, promote_options="permissive")
            self.storage.write_dataset(target, table.to_batches(max_chunksize=50_000), schema=table.schema)
            self.written.append(target)
        except Exception:
            log.exception(
                "Could not write %s logged predictions to %s", sum(t.num_rows for t in pending), target
            )

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)
        self.flush()


#: What ``params: {"predict_method": ...}`` may name (MLflow's scikit-learn flavor takes the same).
PREDICT_METHODS = ("predict", "predict_proba", "predict_log_proba")


def predict_method(params: dict[str, Any], model: Any) -> str:
    """The method the request asks for (``predict`` by default), or a 400 naming what the model has."""
    method = params.get("predict_method", "predict")
    available = [m for m in PREDICT_METHODS if hasattr(model, m)]
    if method not in available:
        raise RequestError(
            f"params.predict_method {str(method)[:100]!r} is not one this model offers: {available}",
            code="INVALID_PARAMETER_VALUE",
        )
    return str(method)


def scoring_error(err: BaseException, table: RequestTable) -> RequestError:
    """
    The 400 for a request the model's own Pipeline refused (MLflow's scoring server answers its model's
    errors with 400 ``BAD_REQUEST``), naming the columns that hold infinite values when there are any:
    scikit-learn's "Input X contains infinity" names none.
    """
    import numpy as np

    found = []
    try:
        frame = table.frame()
        for name in frame.columns:
            column = frame[name]
            if column.dtype.kind == "f":
                rows = np.flatnonzero(np.isinf(column.to_numpy()))
                if rows.size:
                    found.append(f"column {str(name)!r} holds {column.iloc[rows[0]]} in row {rows[0]}")
    except Exception:  # describing the error must not raise another one
        found = []
    if found:
        return RequestError(
            f"{'; '.join(found[:20])}: the model refuses infinite values ({err}). Send finite numbers "
            "(or null for a missing value)"
        )
    return RequestError(f"The model could not score the request: {type(err).__name__}: {err}")


#: Allocations between two young-generation collections in the server (Python's default: 700).
GC_YOUNG_THRESHOLD = 50_000


def freeze_heap() -> None:
    """
    Move everything alive now (the model, its arrays' owners, the libraries) out of the garbage
    collector's reach: a loaded model holds ~0.5 M objects and each full collection walked them all
    (0.6-1.6 s pauses about every 8 large requests). Unfreezing first lets the previous model's
    objects be collected once a reload dropped them.
    """
    import gc

    gc.unfreeze()
    gc.collect()
    gc.freeze()
    # A 10,000-row JSON request allocates ~50,000 objects; with the default threshold (700) they
    # set off dozens of collections while being parsed, and with the heap frozen the older
    # generations are small enough that these escalate to full ones, each walking the request's
    # objects again. Collect young objects every GC_YOUNG_THRESHOLD allocations instead.
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


def no_model_yet(err: BaseException, config: ServeConfig) -> bool:
    """
    Whether a failed first load only means "nothing deployed yet": the registered model, or its alias,
    does not exist in MLflow, and the server was asked for the alias (not a fixed version or a
    ``latest.json``, which are configuration errors when missing).
    """
    if config.version or config.latest_uri:
        return False
    import sys

    exceptions = sys.modules.get("mlflow.exceptions")
    if exceptions is None or not isinstance(err, exceptions.MlflowException):
        return False
    code = getattr(err, "error_code", None)
    # no registered model: RESOURCE_DOES_NOT_EXIST; a registered model without the alias (trained,
    # never promoted): MLflow 3 answers INVALID_PARAMETER_VALUE "Registered model alias ... not found"
    missing_alias = code == "INVALID_PARAMETER_VALUE" and "alias" in str(err) and "not found" in str(err)
    return code == "RESOURCE_DOES_NOT_EXIST" or missing_alias


class ModelServer:
    """
    The state behind the app: the served model (None until the first deployment when the model has no
    champion yet), the loader, the metrics, the prediction log.
    """

    def __init__(self, config: ServeConfig, loader: ModelLoader | None = None) -> None:
        self.config = config
        self.loader = loader or ModelLoader(config)
        self.metrics = Metrics()
        self.current: Served | None
        try:
            self.current = self.loader.load()
        except Exception as err:
            if not no_model_yet(err, config):
                raise
            log.warning(
                "%s has no %r version yet (%s): serving nothing (503) until a POST /reload brings one "
                "(the first deployment's local_server target does)",
                config.model_name,
                config.alias,
                err,
            )
            self.current = None
        freeze_heap()
        self._reload_lock = threading.Lock()
        self.predictions = (
            PredictionLogger(
                self.loader.storage,
                config.log_uri,
                flush_seconds=config.log_flush_seconds,
                flush_rows=config.log_flush_rows,
            )
            if config.log_uri
            else None
        )

    def unavailable(self) -> RequestError:
        """The 503 of a server with no model yet (MLflow's error shape, code TEMPORARILY_UNAVAILABLE)."""
        return RequestError(
            f"No model is served yet: {self.config.model_name!r} has no {self.config.alias!r} version "
            "(no champion yet). The first deployment loads one (DeployModelOperator with a "
            "local_server target POSTs /reload); until then every prediction gets this 503",
            status=503,
            code="TEMPORARILY_UNAVAILABLE",
        )

    def describe(self, *, locations: bool = True) -> dict[str, Any]:
        """
        ``/version``: the served model, or ``"version": null`` before the first deployment.
        ``locations=False`` (an unauthenticated caller) leaves out where the model file is stored.
        """
        if self.current is None:
            return {
                "name": self.config.model_name,
                "version": None,
                "sha256": None,
                "alias": self.config.alias,
                "message": str(self.unavailable()),
            }
        described = self.current.describe()
        if not locations:
            described.pop("uri", None)
        return described

    def labels(self) -> dict[str, str]:
        """The ``/metrics`` model labels (only the name before the first deployment)."""
        if self.current is None:
            return {"name": self.config.model_name or ""}
        return self.current.labels()

    def predict(self, body: bytes, content_type: str | None, *, smoke_test: bool = False) -> bytes:
        """
        Score one request. ``smoke_test``: a deployment's smoke request (the ``X-MLOps-Smoke-Test``
        header): its rows are logged with ``smoke_test = true``.
        """
        served = self.current  # one read: this request finishes on this model whatever reloads
        if served is None:
            raise self.unavailable()
        table = parse_table(
            body,
            content_type,
            served.schema,
            max_rows=self.config.max_rows,
            max_columns=self.config.max_columns,
            strict_columns=self.config.strict_columns,
        )
        method = predict_method(table.params, served.verified.model)
        try:
            predictions = served.predict(table, method)
        except Exception as err:
            raise scoring_error(err, table) from None
        self.metrics.add_rows(table.rows)
        if self.predictions is not None and method == "predict":  # the log holds predictions only
            try:
                self.predictions.add(table.frame(), predictions, served, smoke_test=smoke_test)
            except Exception:  # the answer is right: a row the log cannot hold must not turn it into a 500
                log.exception("Could not log the predictions of a %s-row request", table.rows)
        return predictions_body(predictions)

    def reload(self, request: dict[str, Any]) -> Served | None:
        """
        Load and verify the requested (or configured) version, then swap; on failure keep the old one.
        ``{"unload": true}`` goes back to serving nothing (a failed first deployment's rollback).
        """
        with self._reload_lock:  # one reload at a time; predictions never wait for this lock
            previous = self.current
            before = previous.verified.version if previous else None
            if request.get("unload") is True:
                self.current = previous = None
                freeze_heap()
                self.metrics.reloaded(True)
                log.info(
                    "Unloaded %s version %s: serving nothing (503) until the next reload",
                    self.config.model_name,
                    before,
                )
                return None
            try:
                served = self.loader.load(
                    version=str(request["version"]) if request.get("version") not in (None, "") else None,
                    latest_uri=request.get("latest") or None,
                    sha256=request.get("sha256") or None,
                    name=request.get("model") or (previous.verified.name if previous else None),
                    uri=request.get("uri") or None,
                )
            except Exception:
                self.metrics.reloaded(False)
                raise
            self.current = served
            previous = None  # the old model's objects may go (requests in flight still hold theirs)
            freeze_heap()
            self.metrics.reloaded(True)
        log.info(
            "Reloaded %s: version %s -> %s (sha256 %s)",
            served.verified.name,
            before,
            served.verified.version,
            served.verified.sha256,
        )
        return served

    def authorized(self, header: str | None) -> bool | None:
        """None when reloading is disabled (no token configured), else whether the header matches."""
        if not self.config.token:
            return None
        scheme, _, token = (header or "").partition(" ")
        # bytes, not str: compare_digest refuses non-ASCII text (a 500), and a bytes comparison stays
        # constant-time whatever the header holds
        given = token.strip().encode("utf-8", "surrogateescape")
        expected = self.config.token.encode("utf-8")
        return hmac.compare_digest(given, expected) and scheme.lower() == "bearer"

    def close(self) -> None:
        if self.predictions is not None:
            self.predictions.close()
