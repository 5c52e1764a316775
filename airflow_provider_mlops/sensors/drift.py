"""DriftSensor: wait for the newest data, then judge data drift and accuracy decay against the champion."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, BaseSensorOperator, PokeReturnValue

from airflow_provider_mlops.hooks.s3 import storage_hook
from airflow_provider_mlops.links.reports import DriftReportLink
from airflow_provider_mlops.ml.specs import Decay, DriftLimits, Retrain
from airflow_provider_mlops.operators.common import fail_fast, input_uris, resolve_output_uri

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow.sdk import Context


class DriftSensor(BaseSensorOperator):
    """
    Wait until the current dataset is complete, then compare it with the champion's reference
    profile (see :mod:`airflow_provider_mlops.ml.drift`) and, when it carries labels, measure the
    champion's metric on it against its baseline.

    * drift or accuracy decay: the sensor **succeeds** (its outlet Assets get an event: schedule the
      retraining DAG on them) and the ``on_drift`` notifiers are called with the top drifted features;
    * no drift: the sensor **skips**, so nothing downstream runs and no Asset event is emitted.

    That reads backwards in Airflow's grid (a healthy day is pink, a drifted one green), so
    ``retrain=Retrain(on_no_drift="succeed")`` gives the clearer pattern: the check **always succeeds** when it could
    judge (green: checked) and its XCom carries the verdict, ``retrain_requested`` and the Asset
    event's ``asset_extra``; a :class:`RequestRetrainOperator` downstream owns the retrain Asset
    outlet and succeeds only when a retrain is requested (green: retrain requested; skipped: none).
    The sensor then takes no ``outlets`` (it would emit an Asset event on every success).

    Every check logs one summary line (:mod:`airflow_provider_mlops.ml.summary`: the day, the rows,
    the reference model version, the drifted features with their statistic, the champion's metric
    against its baseline with the uncertainty, or why a retrain is held); the same line is the XCom's
    ``summary`` and the Asset event's ``extra["summary"]``.

    Waiting is cheap in every mode: ``poke`` / ``reschedule`` check that the dataset's manifest
    exists; ``deferrable=True`` hands that wait to :class:`~airflow_provider_mlops.triggers.dataset.DatasetReadyTrigger`
    in the triggerer (no worker slot held). The statistics always run on the worker, once.
    ``soft_fail``, ``timeout`` and ``exponential_backoff`` behave as for any sensor.

    The report is written as JSON and as a self-contained HTML page to ``report_uri`` and logged to
    an MLflow run (experiment ``<model>-monitoring``); its summary is the XCom.

    :param current_uri: the newest dataset (URI or upstream XCom dict with ``uri``): a committed
        dataset (ready once its Delta table has a commit), a plain data file (``.parquet``, ``.csv``,
        ``.jsonl``: ready once it exists) or a prefix of plain files (ready once a data file is
        there; names starting with ``_`` or ``.`` are not data). (templated)
    :param registered_model_name: the model whose ``alias`` version gives the reference profile. (templated)
    :param alias: the alias to monitor.
    :param reference_profile_uri: a profile JSON in storage instead of the champion's. (templated)
    :param drift: when the data has drifted (:class:`~airflow_provider_mlops.ml.specs.DriftLimits`:
        thresholds, per-feature overrides, excluded features, the rows compared).
    :param decay: the champion's accuracy on the current rows when they carry the label
        (:class:`~airflow_provider_mlops.ml.specs.Decay`: the label column, the metric, a floor
        and a maximal drop judged beyond noise, see :func:`airflow_provider_mlops.ml.stats.judge_decay`);
        None: data drift only.
    :param retrain: when a retrain is asked for (:class:`~airflow_provider_mlops.ml.specs.Retrain`).
        ``on_no_drift``: ``skip`` (default) or ``succeed`` (see above, with :class:`RequestRetrainOperator`).
        ``on_missing_reference``: when the model has no ``alias`` version yet, ``drift`` (succeed,
        so the first training runs: how a new model bootstraps) or ``fail``. ``cooldown``: when the
        retrain that answered the last request was not promoted (``mlops.not_promoted`` on its
        version: it tied or lost against the decayed champion), further requests on the same drift
        are **held** for this long (counted in logical dates): the sensor skips with the reason in
        its log and report instead of asking every day. New drift (a feature that had not drifted,
        or the data set where the request was for decay alone), a new champion or the end of the
        cool-down ask again; ``None`` asks every time. The request and the hold are recorded on
        the registered model (tags ``mlops.retrain_request``, ``mlops.retrain_hold``) and the request
        in the outlet Asset event's ``extra``; see :mod:`airflow_provider_mlops.ml.cooldown`. The
        first day of a drift or decay episode is recorded on the registered model as tag
        ``mlops.drift_onset`` and in the Asset event's ``extra`` as ``drift_onset``, whatever the
        cool-down; a check without drift or decay ends the episode. ``time_column``: the current
        data's time column; the onset's first day is its oldest value in the data where drift
        began (without it, the check's logical date). The training side reads the onset with
        :func:`airflow_provider_mlops.ml.onset.read_onset` (``TrainingData(window={"since_drift": True})``).
    :param report_uri: where the report goes; default beside the staging outputs. (templated)
    :param on_drift: notifiers called when drift or decay is found.
    :param mlflow_conn_id: MLflow connection; None for the embedded default.
    :param storage_conn_id: connection for ``s3://`` URIs.
    :param deferrable: wait for the data in the triggerer (which waits for a committed dataset's
        manifest; plain files already there are read at once, without deferring).
    """

    template_fields: Sequence[str] = (
        "current_uri",
        "registered_model_name",
        "reference_profile_uri",
        "report_uri",
    )
    ui_color = "#fff8e1"
    operator_extra_links = (DriftReportLink(),)

    def __init__(
        self,
        *,
        current_uri: Any,
        registered_model_name: str | None = None,
        alias: str = "champion",
        reference_profile_uri: str | None = None,
        drift: DriftLimits | None = None,
        decay: Decay | None = None,
        retrain: Retrain | None = None,
        report_uri: str | None = None,
        on_drift: Sequence[Any] = (),
        mlflow_conn_id: str | None = None,
        storage_conn_id: str | None = None,
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not registered_model_name and not reference_profile_uri:
            raise ValueError("Give registered_model_name (its champion's profile) or reference_profile_uri")
        if retrain is not None and retrain.on_no_drift == "succeed" and self.outlets:
            raise ValueError(
                "DriftSensor(retrain=Retrain(on_no_drift='succeed')) succeeds on every check, so its outlets "
                "would get an Asset event every time: give the retrain Asset to a RequestRetrainOperator "
                "downstream (outlets=[...], verdict=<this sensor>.output) instead"
            )
        self.current_uri = current_uri
        self.registered_model_name = registered_model_name
        self.alias = alias
        self.reference_profile_uri = reference_profile_uri
        self.drift = drift or DriftLimits()
        self.decay = decay
        self.retrain = retrain or Retrain()
        self.report_uri = report_uri
        self.on_drift = list(on_drift)
        self.mlflow_conn_id = mlflow_conn_id
        self.storage_conn_id = storage_conn_id
        self.deferrable = deferrable
        self._plain_logged = False
        self._current_pin: Any = None  # the current data's Delta version, pinned for one check

    # ----------------------------------------------------------------------------------------------
    @property
    def _storage(self) -> Any:
        return storage_hook(self.storage_conn_id)

    def _uri(self) -> str:
        if self._current_pin is not None:  # during a check: the version it pinned (_pin_current)
            return str(self._current_pin.read_uri)
        uris = input_uris(self.current_uri)
        if len(uris) != 1:
            raise ValueError(f"current_uri must name one dataset, got {uris}")
        return uris[0]

    def _pin_current(self) -> Any:
        """
        Pin the current data to the Delta version read now (or the one ``current_uri@vN`` names):
        the drift, accuracy and data-day reads of one check all see the same rows, and the report
        names them (``current_version``).
        """
        from airflow_provider_mlops.operators.common import pin_inputs

        self._current_pin = None
        self._current_pin = pin_inputs(self._storage, [self._uri()])[0]
        return self._current_pin

    def _format(self) -> Any:
        """The format of plain files, from the file name (a committed dataset records its own)."""
        name = self._uri().rstrip("/").rsplit("/", 1)[-1].lower()
        for suffix, fmt in ((".csv", "csv"), (".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "jsonl")):
            if name.endswith(suffix) or name.endswith(suffix + ".gz"):
                return fmt
        return "parquet"

    def _data_ready(self) -> bool:
        """
        A dataset is ready once its Delta table has a commit. Without one, plain data files are
        accepted as they are (training and deployment read them too): a single file at the URI, or
        files below it outside ``_``/``.`` folders (the files of a Delta write that has not committed
        are never taken for plain data).
        """
        from airflow_provider_mlops.datasets import NoCommittedDatasetError
        from airflow_provider_mlops.datasets.files import list_files

        storage = self._storage
        if storage.is_table(self._uri()):
            return True
        try:
            files = list_files(storage, self._uri())
        except NoCommittedDatasetError:
            return False
        if not self._plain_logged:
            self._plain_logged = True
            self.log.info(
                "%s is not a Delta table: reading it as %s plain %s file(s)",
                self._uri(),
                len(files),
                self._format(),
            )
        return True

    @fail_fast()
    def execute(self, context: Context) -> Any:
        if self.deferrable and not self._data_ready():
            from datetime import timedelta

            from airflow_provider_mlops.triggers.dataset import DatasetReadyTrigger
            from airflow_provider_mlops.utils.staging import default_storage_conn_id

            self.defer(
                trigger=DatasetReadyTrigger(
                    uri=self._uri(),
                    # the resolved connection: the triggerer has no [mlops] default to fall back on
                    # when it runs elsewhere, and boto3's ambient credentials are not the user's choice
                    storage_conn_id=self.storage_conn_id or default_storage_conn_id(),
                    poke_interval=float(self.poke_interval),
                    timeout=float(self.timeout) if self.timeout else None,
                ),
                method_name="execute_complete",
                timeout=timedelta(seconds=float(self.timeout)) if self.timeout else None,
            )
        return super().execute(context)

    @fail_fast()
    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> Any:
        from airflow.providers.common.compat.sdk import (
            AirflowFailException,
            AirflowSensorTimeout,
            AirflowSkipException,
        )

        if event and event.get("status") == "error":
            # a configuration error the trigger could not wait out (bad URI, missing connection,
            # access denied): retrying will not fix it
            raise AirflowFailException(f"Waiting for {self._uri()} failed: {event.get('message')}")
        if not event or event.get("status") != "ready":
            message = f"The dataset {self._uri()} did not appear in time"
            if self.soft_fail:
                raise AirflowSkipException(message)
            raise AirflowSensorTimeout(message)
        result = self.poke(context)
        return result.xcom_value if isinstance(result, PokeReturnValue) else result

    # ----------------------------------------------------------------------------------------------
    def _reference(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The profile, and where it came from (model version / run); None when there is no champion yet."""
        if self.reference_profile_uri:
            from airflow_provider_mlops.utils.staging import resolve_uri

            return json.loads(self._storage.get_bytes(resolve_uri(self.reference_profile_uri))), {
                "profile": self.reference_profile_uri
            }
        from airflow_provider_mlops.hooks.mlflow import MlflowHook

        hook, name = MlflowHook(self.mlflow_conn_id), str(self.registered_model_name)
        number = hook.version_by_alias(name, self.alias)
        if number is None:
            return None
        version = hook.model_version(name, number)
        path = hook.download_artifact(version.run_id, "reference_profile.json")
        with open(path) as handle:
            return json.load(handle), {
                "model": self.registered_model_name,
                "version": str(version.version),
                "run_id": version.run_id,
                "training_data": self._reference_data(version),
            }

    def _reference_data(self, version: Any) -> dict[str, Any] | None:
        """
        The rows the reference profile was computed from: the champion's training data as its
        version recorded it (``mlops.training_data.*``: table URIs, Delta versions, digest), None
        for a model trained before lineage was recorded.
        """
        from airflow_provider_mlops.ml.lineage import read_data_tags
        from airflow_provider_mlops.ml.tags import TAG_SERVED

        tags = dict(version.tags or {})
        self._reference_training_data = read_data_tags(tags, "training")
        try:
            self._served = json.loads(tags[TAG_SERVED]) if tags.get(TAG_SERVED) else None
        except ValueError:
            self.log.warning("The tag %s of version %s is not JSON: ignored", TAG_SERVED, version.version)
            self._served = None
        return self._reference_training_data

    def _data_pins(self) -> tuple[list[Any], list[Any]]:
        """The pins of the reference's training data (when recorded) and of the current data (once checked)."""
        from airflow_provider_mlops.ml.lineage import DataPin

        recorded = getattr(self, "_reference_training_data", None) or {}
        reference = [DataPin(d["uri"], d["version"]) for d in recorded.get("data", [])]
        return reference, [self._current_pin] if self._current_pin is not None else []

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The current data at the version checked, and the reference's training data at its versions."""
        from airflow_provider_mlops.utils.lineage import pinned_inputs

        reference, current = self._data_pins()
        return pinned_inputs(current + reference)

    def _data_tags(self) -> dict[str, str]:
        """The check's run tags naming its data: ``mlops.reference_data.*`` and ``mlops.current_data.*``."""
        from airflow_provider_mlops.ml.lineage import data_tags

        reference, current = self._data_pins()
        return {
            **(data_tags("reference", reference) if reference else {}),
            **(data_tags("current", current) if current else {}),
        }

    def _accuracy(self, source: Mapping[str, Any], profile: Mapping[str, Any]) -> dict[str, Any] | None:
        decay = self.decay
        if decay is None or "version" not in source:
            return None
        import pyarrow as pa

        from airflow_provider_mlops.ml.features import model_inputs
        from airflow_provider_mlops.ml.stats import judge_decay, predictions, recent_days, served_reference

        label = decay.label_column

        batches = list(self._storage.iter_batches(self._uri(), format=self._format()))
        frame = pa.Table.from_batches(batches).to_pandas() if batches else None
        if frame is None or label not in frame.columns:
            return None
        unlabelled = int(frame[label].isna().sum())
        if unlabelled:
            self.log.info("Accuracy check: %s of %s rows have no %r, left out", unlabelled, len(frame), label)
        frame = frame[frame[label].notna()]
        if frame.empty:
            return None
        from airflow_provider_mlops.hooks.mlflow import MlflowHook

        model = (
            MlflowHook(self.mlflow_conn_id)
            .load_model_version(
                str(source["model"]),
                source["version"],
                storage=self._storage,
                policy=decay.load_policy,
            )
            .model
        )
        task = (profile.get("target") or {}).get("task") or "classification"
        scored = predictions(model, model_inputs(frame, label), frame[label], task)
        baseline = (profile.get("baseline_metrics") or {}).get(decay.metric)
        spread = (profile.get("baseline_uncertainty") or {}).get(decay.metric) or {}
        # the champion's first checked days and the day before this one (ml/stats.py: served_record)
        record, day = getattr(self, "_served", None), getattr(self, "_served_day", None)
        try:
            verdict = judge_decay(
                decay.metric,
                scored,
                baseline=baseline,
                baseline_std=spread.get("std"),
                baseline_rows=spread.get("n"),
                served=served_reference(record, metric=decay.metric, before=day) if day else (),
                previous=recent_days(record, metric=decay.metric, before=day) if day else (),
                max_drop=decay.max_drop,
                floor=decay.floor,
                alpha=decay.alpha,
                n_boot=decay.n_bootstrap,
            )
        except ValueError as err:
            raise ValueError(
                f"Metric {decay.metric!r} cannot be computed for this {task} model: {err}"
            ) from None
        self.log.info("Accuracy: %s", verdict["confidence"])
        return verdict

    @fail_fast()
    def poke(self, context: Context) -> PokeReturnValue | bool:
        from airflow.providers.common.compat.sdk import AirflowFailException

        if not self._data_ready():
            self.log.info("Waiting for %s to be complete", self._uri())
            return False
        reference = self._reference()
        if reference is None:
            return self._no_reference()
        profile, source = reference
        self._pin_current()  # the check's rows, its day included, are the version read now
        self._served_day = self._check_day(context)
        report = self._check(profile, source)
        # what the report compares, named on its first lines (ml/report.py): the run's day, and the
        # days the rows hold when a time column is known
        report["logical_date"] = str(context.get("ds") or "")
        if self.retrain.time_column:
            try:
                report["data_day"] = [str(day) for day in self._data_days()]
            except AirflowFailException as err:  # the report says "not recorded"; onset handling decides
                self.log.warning("The report names no data day: %s", err)
        base = resolve_output_uri(self.report_uri, context, suffix="drift_report").rstrip("/")
        report["report_json"], report["report_html"] = f"{base}/report.json", f"{base}/report.html"
        html_uri = str(report["report_html"])
        decision = self._retrain_decision(context, report, source) if report["drift"] else None
        if decision is not None:
            report["retrain"] = {
                "held": decision.hold,
                "reason": decision.reason,
                **(decision.hold_record or {}),
            }
        self._write_report(report)
        summary = self._summary(report)
        line = self._summary_line(report, decision)
        summary["summary"] = line
        self._log_to_mlflow(report, html_uri, context)
        self.log.info("%s", line)
        self._record_served(report, source)
        onset = self._record_onset(context, report, source)
        if onset is not None:
            summary["drift_onset"] = onset
        summary["retrain_requested"] = False
        if not report["drift"]:
            return self._no_retrain(
                context, summary, f"No drift in {report['rows']} rows (report: {html_uri})"
            )
        if decision is not None and decision.hold:
            summary["retrain"] = report["retrain"]
            self._record_hold(decision)
            self.log.warning("Retraining held: %s", decision.reason)
            return self._no_retrain(
                context,
                summary,
                f"Drift or decay in {report['rows']} rows, but retraining is held: {decision.reason} "
                f"(report: {html_uri})",
            )
        self._notify(context, report, html_uri)
        extra: dict[str, Any] = {"summary": line}
        if decision is not None:
            extra["retrain_request"] = self._record_request(context, report, source, decision)
            summary["retrain"] = {"held": False, "reason": decision.reason}
        if onset is not None:
            extra["drift_onset"] = onset
        summary["retrain_requested"] = True
        summary["asset_extra"] = extra
        events = context.get("outlet_events")
        if events is not None:
            for outlet in self.outlets:
                events[outlet].extra = extra
        return PokeReturnValue(is_done=True, xcom_value=summary)

    def _no_retrain(self, context: Context, summary: dict[str, Any], message: str) -> PokeReturnValue:
        """No retrain asked for: skip (``on_no_drift="skip"``) or succeed with the verdict as the XCom."""
        from airflow.providers.common.compat.sdk import AirflowSkipException

        if self.retrain.on_no_drift == "succeed":
            self.log.info("%s", message)
            return PokeReturnValue(is_done=True, xcom_value=summary)
        context["ti"].xcom_push(key="drift_report", value=summary)
        raise AirflowSkipException(message)

    @staticmethod
    def _summary_line(report: Mapping[str, Any], decision: Any) -> str:
        """The check in one line (:mod:`airflow_provider_mlops.ml.summary`): the task log, the XCom, the Asset event."""
        from airflow_provider_mlops.ml.summary import drift_line, held_line

        if decision is not None and decision.hold:
            return held_line(report, decision.reason)
        return drift_line(report)

    def _no_reference(self) -> PokeReturnValue:
        """No champion yet: fail, or succeed so that the first training runs (``Retrain.on_missing_reference``)."""
        from airflow.providers.common.compat.sdk import AirflowFailException

        if self.retrain.on_missing_reference == "fail":
            # the registry answered: no such model or alias; a retry would get the same answer
            raise AirflowFailException(
                f"{self.registered_model_name}@{self.alias} has no reference profile: no such model or alias"
            )
        message = f"{self.registered_model_name}@{self.alias} does not exist yet: a first model is needed"
        self.log.warning(message)
        return PokeReturnValue(
            is_done=True,
            xcom_value={
                "summary": message,
                "retrain_requested": True,
                "asset_extra": {"summary": message},
                "drift": True,
                "dataset_drift": False,
                "drifted_share": 0.0,
                "drifted_features": [],
                "top_features": [],
                "rows": None,
                "accuracy": None,
                "reason": message,
                "reference": None,
            },
        )

    def _check(self, profile: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
        """The drift report of the current rows against ``profile``, with the accuracy check."""
        from airflow_provider_mlops.ml.drift import columns_from_batches, detect_drift

        limits = self.drift
        current = self._current_pin if self._current_pin is not None else self._pin_current()
        columns, rows = columns_from_batches(
            self._storage.iter_batches(self._uri(), format=self._format()), profile, max_rows=limits.max_rows
        )
        report = detect_drift(
            profile,
            columns,
            rows=rows,
            thresholds=limits.thresholds,
            per_feature=limits.per_feature,
            exclude=list(limits.exclude),
        )
        for note in report.get("notes") or []:
            self.log.warning("%s", note)
        report["rows"] = rows
        report["reference"] = source
        report["current_uri"] = current.uri
        report["current_version"] = current.version
        report["accuracy"] = self._accuracy(source, profile)
        report["drift"] = bool(report["dataset_drift"] or (report["accuracy"] or {}).get("decayed"))
        return report

    def _write_report(self, report: Mapping[str, Any]) -> None:
        """The report as JSON and HTML, where its ``report_json`` / ``report_html`` say."""
        from airflow_provider_mlops.ml.report import render_html

        self._storage.put_bytes(
            report["report_json"],
            json.dumps(report, indent=1, default=str).encode(),
            content_type="application/json",
        )
        self._storage.put_bytes(report["report_html"], render_html(report).encode(), content_type="text/html")

    @staticmethod
    def _summary(report: Mapping[str, Any]) -> dict[str, Any]:
        """The XCom: the report's verdict and where the report is."""
        keys = ("drift", "dataset_drift", "drifted_share", "drifted_features", "top_features", "rows")
        return {
            **{k: report[k] for k in keys},
            "accuracy": report["accuracy"],
            "report_json": report["report_json"],
            "report_html": report["report_html"],
            "reference": report["reference"],
        }

    def _notify(self, context: Context, report: Mapping[str, Any], html_uri: str) -> None:
        for notifier in self.on_drift:
            if hasattr(notifier, "details") and notifier.details is None:
                notifier.details = {
                    "drifted_features": report["drifted_features"][:5],
                    "accuracy": report["accuracy"],
                    "report": html_uri,
                }
            notifier(context)

    def _data_days(self) -> tuple[Any, Any]:
        """The oldest and newest day in the current data's ``time_column``."""
        import pyarrow as pa
        import pyarrow.compute as pc
        from airflow.providers.common.compat.sdk import AirflowFailException

        name = str(self.retrain.time_column)
        try:
            batches = list(self._storage.iter_batches(self._uri(), format=self._format(), columns=[name]))
            column = pa.Table.from_batches(batches).column(name)
        except (KeyError, ValueError, pa.ArrowInvalid) as err:
            raise AirflowFailException(
                f"Retrain time_column {name!r} cannot be read from {self._uri()}: {err}"
            ) from err
        bounds = pc.min_max(column)
        oldest, newest = bounds["min"].as_py(), bounds["max"].as_py()
        if oldest is None:
            raise AirflowFailException(f"Retrain time_column {name!r} has no value in {self._uri()}")
        return _day(oldest), _day(newest)

    def _check_day(self, context: Context) -> str | None:
        """
        The day a check judges, under which it is kept in the champion's served record and pooled
        with the day before: the data's day (``time_column``), else the run's logical date or
        ``run_after`` (an Asset-triggered run has no logical date). None, with a warning, when the
        current data spans several days (consecutive checks would share rows, and pooling them would
        count those rows twice) or the run has no date: decay is then judged against the training
        holdout alone.
        """
        from airflow.providers.common.compat.sdk import AirflowFailException

        if self.retrain.time_column:
            try:
                oldest, newest = self._data_days()
            except AirflowFailException as err:
                self.log.warning("The check's day is the run's date: %s", err)
            else:
                if oldest != newest:
                    self.log.warning(
                        "The current data spans %s to %s: decay is judged against the training holdout "
                        "alone, and this check is not kept for later ones (give each check one day of "
                        "data for the served-days baseline and pooling)",
                        oldest,
                        newest,
                    )
                    return None
                return str(newest)
        if context.get("ds"):
            return str(context["ds"])
        moment = self._run_moment(context)
        if moment is None:
            self.log.warning("The check has no day (no time_column, no run date): not kept for later ones")
            return None
        return moment.date().isoformat()

    def _record_served(self, report: Mapping[str, Any], source: Mapping[str, Any]) -> None:
        """
        Keep the champion version's served record (tag ``mlops.served``: its first checked days, the
        decay baseline beside the training holdout, and the newest ones, pooled into the next check).
        """
        verdict, day = report.get("accuracy"), getattr(self, "_served_day", None)
        if not verdict or not day or "version" not in source or not self.registered_model_name:
            return
        from airflow_provider_mlops.hooks.mlflow import MlflowHook
        from airflow_provider_mlops.ml.stats import served_record
        from airflow_provider_mlops.ml.tags import TAG_SERVED

        record = served_record(
            getattr(self, "_served", None),
            metric=str(verdict["metric"]),
            day=day,
            verdict=verdict,
            drift=bool(report["drift"]),
        )
        if record is not None:
            MlflowHook(self.mlflow_conn_id).set_version_tags(
                str(self.registered_model_name), str(source["version"]), {TAG_SERVED: json.dumps(record)}
            )
            self._served = record

    def _data_first_day(self) -> Any:
        """The oldest day in the current data's ``time_column``."""
        return self._data_days()[0]

    def _record_onset(
        self, context: Context, report: Mapping[str, Any], source: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """
        Keep the drift onset tag (:mod:`airflow_provider_mlops.ml.onset`) of the registered model:
        started or continued by a check with drift or decay, ended by one without. Returns the record
        (None when the reference is not a registered model or there is no episode to speak of).
        """
        if "version" not in source or not self.registered_model_name:
            return None
        from airflow_provider_mlops.hooks.mlflow import MlflowHook
        from airflow_provider_mlops.ml.onset import closed, is_open, onset_record
        from airflow_provider_mlops.ml.tags import TAG_DRIFT_ONSET

        hook = MlflowHook(self.mlflow_conn_id)
        name = self.registered_model_name
        text = hook.model_tags(name).get(TAG_DRIFT_ONSET)
        try:
            previous = json.loads(text) if text else None
        except ValueError:
            self.log.warning(
                "The tag %s of %s is not JSON: a new drift onset is recorded", TAG_DRIFT_ONSET, name
            )
            previous = None
        now = self._now(context)
        if report["drift"]:
            record = onset_record(
                report,
                at=now,
                champion=str(source["version"]),
                previous=previous,
                # read only when an episode starts (a continued one keeps its first day)
                first_day=self._data_first_day()
                if self.retrain.time_column and not is_open(previous)
                else None,
            )
            if record.get("at") == record.get("last_seen"):
                self.log.warning(
                    "Drift onset of %s: %s, first day %s", name, record["kind"], record["first_day"]
                )
        else:
            record = closed(previous, at=now)
            if record is None:
                return None
            self.log.info("Drift episode of %s that began on %s ended", name, record["first_day"])
        hook.set_model_tag(name, TAG_DRIFT_ONSET, json.dumps(record, default=str))
        return record

    # ----------------------------------------------------------------------------------------------
    # Retrain cool-down (airflow_provider_mlops.ml.cooldown decides; this reads and writes the tags)
    @staticmethod
    def _run_moment(context: Context) -> Any:
        """The run's logical date, else its ``run_after`` (an Asset-triggered run), as a datetime; None without."""
        from datetime import datetime

        moment = context.get("logical_date") or context.get("data_interval_end")
        if moment is None and context.get("dag_run") is not None:
            moment = getattr(context["dag_run"], "run_after", None)
        if moment is None:
            return None
        return moment if isinstance(moment, datetime) else datetime.fromisoformat(str(moment))

    @classmethod
    def _now(cls, context: Context) -> Any:
        """The check's logical time: the run's (:meth:`_run_moment`), else now (UTC)."""
        from datetime import UTC, datetime

        return cls._run_moment(context) or datetime.now(UTC)

    def _retrain_decision(
        self, context: Context, report: Mapping[str, Any], source: Mapping[str, Any]
    ) -> Any:
        """Ask or hold (None when the cool-down is off or the reference is not a registered model)."""
        if self.retrain.cooldown is None or "version" not in source or not self.registered_model_name:
            return None
        from datetime import UTC, datetime

        from airflow_provider_mlops.hooks.mlflow import MlflowHook
        from airflow_provider_mlops.ml.cooldown import decide
        from airflow_provider_mlops.ml.tags import (
            TAG_DRIFT_ONSET,
            TAG_NOT_PROMOTED,
            TAG_RETRAIN_HOLD,
            TAG_RETRAIN_REQUEST,
        )

        hook = MlflowHook(self.mlflow_conn_id)
        name = self.registered_model_name
        tags = hook.model_tags(name)

        def record(key: str) -> dict[str, Any] | None:
            try:
                return json.loads(tags[key]) if tags.get(key) else None
            except ValueError:
                self.log.warning("The tag %s of %s is not JSON: ignored", key, name)
                return None

        versions = [
            {
                "version": str(v.version),
                "created": datetime.fromtimestamp(int(v.creation_timestamp) / 1000, UTC),
                "not_promoted": (v.tags or {}).get(TAG_NOT_PROMOTED),
            }
            for v in hook.model_versions(name)
        ]
        decision = decide(
            now=self._now(context),
            champion=str(source["version"]),
            report=report,
            request=record(TAG_RETRAIN_REQUEST),
            hold=record(TAG_RETRAIN_HOLD),
            versions=versions,
            cooldown=self.retrain.cooldown,
            onset=record(TAG_DRIFT_ONSET),  # a persisting decay re-arms once the post-drift data doubled
        )
        if not decision.hold:
            self.log.info("Asking for a retrain of %s: %s", name, decision.reason)
        return decision

    def _record_hold(self, decision: Any) -> None:
        from airflow_provider_mlops.hooks.mlflow import MlflowHook
        from airflow_provider_mlops.ml.tags import TAG_RETRAIN_HOLD

        MlflowHook(self.mlflow_conn_id).set_model_tag(
            str(self.registered_model_name), TAG_RETRAIN_HOLD, json.dumps(decision.hold_record)
        )

    def _record_request(
        self, context: Context, report: Mapping[str, Any], source: Mapping[str, Any], decision: Any
    ) -> dict[str, Any]:
        from datetime import UTC, datetime

        from airflow_provider_mlops.hooks.mlflow import MlflowHook
        from airflow_provider_mlops.ml.cooldown import request_record
        from airflow_provider_mlops.ml.tags import TAG_RETRAIN_HOLD, TAG_RETRAIN_REQUEST

        request = request_record(
            report,
            at=self._now(context),
            requested_at=datetime.now(UTC),
            champion=str(source["version"]),
            alias=self.alias,
        )
        hook = MlflowHook(self.mlflow_conn_id)
        name = str(self.registered_model_name)
        text = json.dumps(request, default=str)
        if len(text) > 90_000:  # MLflow's limit for a registry tag is 100,000 characters
            request["features"] = []
            text = json.dumps(request, default=str)
        hook.set_model_tag(name, TAG_RETRAIN_REQUEST, text)
        if hook.delete_model_tag(name, TAG_RETRAIN_HOLD):
            self.log.info("Retraining hold of %s released: %s", name, decision.reason)
        return request

    def _log_to_mlflow(self, report: Mapping[str, Any], html_uri: str, context: Context) -> None:
        if not self.registered_model_name:
            return
        import tempfile
        from pathlib import Path

        from airflow_provider_mlops.hooks.mlflow import MlflowHook
        from airflow_provider_mlops.ml.report import render_html
        from airflow_provider_mlops.ml.tags import TAG_KIND, TAG_REPORT, airflow_run_tags

        hook = MlflowHook(self.mlflow_conn_id)
        experiment = hook.get_or_create_experiment(f"{self.registered_model_name}-monitoring")
        with (
            hook.start_run(
                experiment,
                tags={**airflow_run_tags(context), TAG_KIND: "drift-check", TAG_REPORT: html_uri},
            ) as run,
            tempfile.TemporaryDirectory() as tmp,
        ):
            metrics = {
                "drifted_share": float(report["drifted_share"]),
                "rows": float(report["rows"]),
                "drift": float(bool(report["drift"])),
            }
            if report.get("accuracy"):
                metrics[f"current_{report['accuracy']['metric']}"] = float(report["accuracy"]["current"])
            hook.log_metrics(run.info.run_id, metrics)
            hook.set_run_tags(run.info.run_id, self._data_tags())
            (Path(tmp) / "drift_report.json").write_text(json.dumps(report, default=str))
            (Path(tmp) / "drift_report.html").write_text(render_html(report))
            hook.log_artifacts(run.info.run_id, tmp, artifact_path="drift")


def _day(value: Any) -> Any:
    """A ``time_column`` value as a date (datetimes and ISO text alike)."""
    from datetime import date, datetime

    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return datetime.fromisoformat(str(value)[:10]).date()


class RequestRetrainOperator(BaseOperator):
    """
    The retrain request of a ``DriftSensor(retrain=Retrain(on_no_drift="succeed"))``: succeeds when the check's
    verdict asks for a retrain, and its ``outlets`` (the retrain Asset) then get an event whose
    ``extra`` is the sensor's (``summary``, ``retrain_request``, ``drift_onset``); skips otherwise,
    with the check's summary line as the reason. Green on this task means "retrain requested".

    :param verdict: the sensor's XCom (``<sensor>.output``). (templated)
    """

    template_fields: Sequence[str] = ("verdict",)
    ui_color = "#e8f5e9"

    def __init__(self, *, verdict: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.verdict = verdict

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException

        verdict = self.verdict
        if not isinstance(verdict, dict) or "retrain_requested" not in verdict:
            raise AirflowFailException(
                f"verdict must be the XCom of a DriftSensor(retrain=Retrain(on_no_drift='succeed')), got {verdict!r}"
            )
        if not verdict["retrain_requested"]:
            raise AirflowSkipException(f"No retrain requested: {verdict.get('summary')}")
        extra = dict(verdict.get("asset_extra") or {})
        events = context.get("outlet_events")
        if events is not None:
            for outlet in self.outlets:
                events[outlet].extra = extra
        self.log.info("Retrain requested: %s", verdict.get("summary"))
        return extra
