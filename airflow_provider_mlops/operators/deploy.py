"""
DeployModelOperator promotes a candidate model version when it beats the champion on fresh data;
RollbackModelOperator points the champion back at an earlier version.

Both release a version the same way (deployment targets first, then the alias and its tags, the
published ``latest.json`` and a serving process reloaded). What is decided lives in
:mod:`airflow_provider_mlops.ml.promotion`, the plots in :mod:`airflow_provider_mlops.ml.reporting`,
and every registry read and write goes through :class:`~airflow_provider_mlops.hooks.mlflow.MlflowHook`.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_mlops.hooks.s3 import storage_hook
from airflow_provider_mlops.links.reports import SERVED_MODEL_XCOM, ModelVersionLink, ServedModelLink
from airflow_provider_mlops.ml.specs import Gate
from airflow_provider_mlops.operators.common import fail_fast, input_uris, pin_inputs

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from airflow.sdk import Context

    from airflow_provider_mlops.hooks.mlflow import MlflowHook
    from airflow_provider_mlops.ml.promotion import Decision
    from airflow_provider_mlops.ml.serialization import LoadPolicy, VerifiedModel
    from airflow_provider_mlops.ml.specs import Reload


def _version(value: Any) -> str | None:
    """A version number given as a number, a string or an XCom dict with ``version``."""
    if value in (None, ""):
        return None
    if isinstance(value, dict):
        value = value.get("version")
    return str(int(str(value)))


class _ReleaseOperator(BaseOperator):
    """
    What promoting and rolling back share: the verified model of a version (loaded once per task
    through the trusted loader, its bytes checked against the sha256 the registry records), its
    deployment to the targets, the alias move, the publication and the reload.
    """

    ui_color = "#fce4ec"
    operator_extra_links = (ModelVersionLink(), ServedModelLink())

    def __init__(
        self,
        *,
        registered_model_name: str,
        alias: str = "champion",
        publish_uri: str | None = None,
        targets: Sequence[Any] | None = None,
        reload: Reload | None = None,
        mlflow_conn_id: str | None = None,
        storage_conn_id: str | None = None,
        load_policy: LoadPolicy | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.registered_model_name = registered_model_name
        self.alias = alias
        self.publish_uri = publish_uri
        self.targets = list(targets or ())
        self.reload = reload
        self.mlflow_conn_id = mlflow_conn_id
        self.storage_conn_id = storage_conn_id
        self.load_policy = load_policy
        self._models: dict[str, VerifiedModel] = {}
        self._published: dict[str, dict[str, Any]] = {}
        self._storage: Any = None
        self._mlflow: MlflowHook | None = None

    def _connect(self) -> MlflowHook:
        from airflow_provider_mlops.hooks.mlflow import MlflowHook

        self._mlflow = MlflowHook(self.mlflow_conn_id)
        self._storage = storage_hook(self.storage_conn_id)
        return self._mlflow

    @staticmethod
    def _stamp(context: Context) -> tuple[str, str]:
        """Who (the task and its run) and when (UTC), for the version's tags."""
        who = f"{context['ti'].dag_id}.{context['ti'].task_id} ({context['run_id']})"
        return who, dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

    def _loaded(self, version: str) -> VerifiedModel:
        """A registered version through the trusted loader, once per task: scoring and publishing share it."""
        if version not in self._models:
            assert self._mlflow is not None
            self._models[version] = self._mlflow.load_model_version(
                self.registered_model_name, version, storage=self._storage, policy=self.load_policy
            )
        return self._models[version]

    def _release(self, version: str, previous: str | None, move_alias: Callable[[], None]) -> tuple[Any, Any]:
        """
        Deploy ``version`` to every target (all rolled back to ``previous`` on a failure, which
        raises: the alias stays), then ``move_alias()``, publish and reload. Returns (targets,
        published ``latest.json``).
        """
        deployed = self._deploy_targets(version, previous)
        move_alias()
        published = self._publish(version) if self.publish_uri else None
        if self.reload is not None:
            self._reload(version, published)
        return deployed, published

    def _publish_file(self, version: str) -> dict[str, Any]:
        """
        Copy the verified bytes of ``version`` (the sha256 the registry records) below a path unique
        to the version; ``latest.json`` is not touched here.
        """
        from airflow_provider_mlops.ml.serialization import write_model_bytes
        from airflow_provider_mlops.utils.staging import resolve_uri

        if version not in self._published:
            loaded = self._loaded(version)
            root = resolve_uri(self.publish_uri or "").rstrip("/")
            self._published[version] = write_model_bytes(
                self._storage,
                f"{root}/v{version}",
                loaded.blob,
                loaded.format,
                metadata={"registered_model_name": self.registered_model_name, "version": version},
            )
        return self._published[version]

    def _publish(self, version: str) -> str:
        """Publish the model file of ``version``, then replace ``latest.json`` in one atomic write."""
        from airflow_provider_mlops.utils.staging import resolve_uri

        info = self._publish_file(version)
        root = resolve_uri(self.publish_uri or "").rstrip("/")
        pointer = {
            "registered_model_name": self.registered_model_name,
            "version": version,
            "uri": info["uri"],
            "sha256": info["sha256"],
            "format": info["format"],
            "published_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        self._storage.put_bytes(
            f"{root}/latest.json", json.dumps(pointer, indent=1).encode(), content_type="application/json"
        )
        self.log.info(
            "Published %s v%s to %s (sha256 %s)",
            self.registered_model_name,
            version,
            info["uri"],
            info["sha256"],
        )
        return f"{root}/latest.json"

    def _model_release(self, version: str) -> Any:
        """The verified ``version`` as a :class:`~airflow_provider_mlops.deployment.targets.ModelRelease`."""
        from airflow_provider_mlops.deployment.targets import ModelRelease
        from airflow_provider_mlops.utils.staging import resolve_uri

        loaded = self._loaded(version)
        uri = self._publish_file(version)["uri"] if self.publish_uri else loaded.uri
        latest = f"{resolve_uri(self.publish_uri).rstrip('/')}/latest.json" if self.publish_uri else None
        return ModelRelease(
            name=self.registered_model_name, version=version, sha256=loaded.sha256, uri=uri, latest_uri=latest
        )

    def _record_served_page(self, context: Context) -> None:
        """
        The page of the model server this task deploys to (the first target that has one, else the
        reload connection's ``/version``), as an XCom the "Served model" link opens.
        """
        from airflow_provider_mlops.deployment.targets import resolve_targets

        pages = [target.page_url() for target in resolve_targets(self.targets)]
        if self.reload is not None:
            from airflow_provider_mlops.hooks.http import HttpApiHook

            pages.append(HttpApiHook(self.reload.http_conn_id).url_for("version"))
        page = next((str(url) for url in pages if url), None)
        if page:
            context["ti"].xcom_push(key=SERVED_MODEL_XCOM, value=page)

    def _deploy_targets(self, version: str, previous: str | None) -> list[dict[str, Any]]:
        """Deploy and smoke-test ``version`` on every target; roll all back to ``previous`` on failure."""
        from airflow_provider_mlops.deployment.targets import deploy_all, resolve_targets

        targets = resolve_targets(self.targets)
        if not targets:
            return []
        release = self._model_release(version)
        before = self._model_release(previous) if previous and previous != version else None
        return deploy_all(targets, release, before)

    def _reload(self, version: str, published: str | None) -> None:
        from airflow_provider_mlops.hooks.http import HttpApiHook

        assert self.reload is not None
        HttpApiHook(self.reload.http_conn_id).run(
            self.reload.endpoint,
            method="POST",
            json={
                "model": self.registered_model_name,
                "version": version,
                "latest": published,
                "sha256": self._loaded(version).sha256 if version in self._models else None,
            },
        )
        self.log.info("Asked the serving process to reload version %s", version)


class DeployModelOperator(_ReleaseOperator):
    """
    Compare a candidate registered model version with the current ``champion`` on the same fresh
    evaluation dataset, and promote it only when the ``gate`` lets it through
    (:func:`airflow_provider_mlops.ml.promotion.decide`): better by more than ``min_delta`` (or
    there is no champion), strictly, so a tie (an identical retrain) keeps the champion; with a
    paired test, also significantly on those same rows (the test is stored in the version's
    ``mlops.promotion_test`` tag and in the reason). Promotion moves the MLflow alias (not the
    deprecated stages) and tags the version with who, when and why; a candidate that does not win
    gets the gate's ``challenger_alias`` and the champion stays. Running it again for the same
    candidate changes nothing. To go back to an earlier version, use :class:`RollbackModelOperator`.

    On promotion it deploys to ``targets`` first (the alias moves only once each serves the
    candidate and passed its smoke test), then publishes the model file with its sha256 and an
    atomically replaced ``latest.json`` to ``publish_uri`` and asks a serving process to reload.

    Every model it scores or publishes is loaded through
    :func:`airflow_provider_mlops.ml.serialization.load_model_version`: its bytes must match the
    sha256 recorded on the MLflow model version before anything is deserialized.

    The decision, both scores, the rows they were measured on and the margin are logged and written
    as the candidate version's description in the registry. Returns (XCom)
    :class:`~airflow_provider_mlops.ml.promotion.Outcome` as a dict: ``{"promoted",
    "champion_version", "candidate_version", "previous_champion", "metric", "reason",
    "candidate_score", "champion_score", "published_uri", "targets", "test",
    "evaluation_artifacts"}``; the last is the ``runs:/`` folder of the candidate's MLflow run
    holding the evaluation plots of the candidate and the champion on the fresh rows and both
    overlaid in ``comparison.png``.

    :param registered_model_name: the registered model. (templated)
    :param candidate_version: the version to consider, e.g. the training task's XCom. (templated)
    :param evaluation_uri: fresh labelled data (dataset URI or upstream XCom dict). Each Delta table
        is read at one version (``<uri>@v<version>``, else the latest), recorded on the candidate
        version as ``mlops.evaluation_data.uri`` / ``.version`` / ``.digest``. (templated)
    :param label_column: the label column of the evaluation data. (templated)
    :param gate: when the candidate wins (:class:`~airflow_provider_mlops.ml.specs.Gate`: metric,
        ``min_delta``, paired test, ``since_drift``, the challenger alias).
    :param alias: the champion alias.
    :param publish_uri: where to publish the promoted model (``s3://...`` / ``file://...``). (templated)
    :param targets: deployment targets (see :mod:`airflow_provider_mlops.deployment.targets`).
    :param reload: a serving process to notify (:class:`~airflow_provider_mlops.ml.specs.Reload`).
    :param mlflow_conn_id: MLflow connection; None for the embedded default.
    :param storage_conn_id: connection for ``s3://`` URIs.
    :param load_policy: what the trusted loader may deserialize
        (:class:`~airflow_provider_mlops.ml.serialization.LoadPolicy`).
    """

    template_fields: Sequence[str] = (
        "registered_model_name",
        "candidate_version",
        "evaluation_uri",
        "label_column",
        "publish_uri",
    )

    def __init__(
        self,
        *,
        candidate_version: Any,
        evaluation_uri: Any = None,
        label_column: str | None = None,
        gate: Gate | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.candidate_version = candidate_version
        self.evaluation_uri = evaluation_uri
        self.label_column = label_column
        self.gate = gate or Gate()

    @fail_fast()
    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_mlops.ml.promotion import Outcome, decide

        hook, name, metric = self._connect(), self.registered_model_name, self.gate.metric
        self._record_served_page(context)
        champion = hook.version_by_alias(name, self.alias)
        candidate = _version(self.candidate_version)
        if candidate is None:
            raise ValueError("candidate_version is required (to go back to a version: RollbackModelOperator)")
        if candidate == champion:
            self.log.info("Version %s already holds %s@%s: nothing to do", candidate, name, self.alias)
            return Outcome(False, champion, candidate, champion, metric, "already champion").as_dict()
        frame, rows = self._evaluation_rows(context)
        lineage = hook.version_lineage(name, candidate)
        task = lineage["task"] or "classification"
        versions = {"candidate": candidate, **({"champion": champion} if champion else {})}
        scores, predictions = self._scores(frame, task, versions)
        decision = decide(
            self.gate,
            scores["candidate"],
            scores.get("champion"),
            champion=champion,
            rows=rows,
            predictions=predictions,
        )
        plots = self._log_evaluation(lineage["run_id"], frame, task, versions, str(context["run_id"]))
        line = self._decision_line(context, candidate, champion, decision, scores, rows)
        hook.set_version_tags(name, candidate, self._evaluation_tags)
        published, deployed = None, []
        who, when = self._stamp(context)
        if decision.promote:
            deployed, published = self._release(
                candidate,
                champion,
                lambda: hook.promote(
                    name,
                    candidate,
                    alias=self.alias,
                    who=who,
                    when=when,
                    reason=decision.reason,
                    test=decision.test,
                ),
            )
        else:
            hook.keep_out(
                name, candidate, alias=self.gate.challenger_alias, reason=decision.reason, test=decision.test
            )
        # written once the decision took effect: a deployment that failed (and rolled back) leaves
        # no "Promoted" description on a version the alias never reached
        hook.describe_version(name, candidate, line)
        return Outcome(
            promoted=decision.promote,
            champion_version=candidate if decision.promote else champion,
            candidate_version=candidate,
            previous_champion=champion,
            metric=metric,
            reason=decision.reason,
            candidate_score=scores["candidate"],
            champion_score=scores.get("champion"),
            published_uri=published,
            targets=tuple(deployed),
            test=decision.test,
            evaluation_artifacts=plots,
        ).as_dict()

    def _decision_line(
        self,
        context: Context,
        candidate: str,
        champion: str | None,
        decision: Decision,
        scores: dict[str, float],
        rows: str,
    ) -> str:
        """The decision as one line, logged (it becomes the candidate version's description)."""
        from airflow_provider_mlops.ml.summary import promotion_line

        who, when = self._stamp(context)
        text = promotion_line(
            decision,
            model=self.registered_model_name,
            candidate=candidate,
            champion=champion if "champion" in scores else None,
            metric=self.gate.metric,
            scores=scores,
            rows=rows,
            by=f"{who} at {when}",
        )
        self.log.info("%s", text)
        return text

    def _evaluation_rows(self, context: Context) -> tuple[Any, str]:
        """The labelled evaluation rows (post-drift only with ``gate.since_drift``) and how to name them."""
        import pyarrow as pa

        inputs = input_uris(self.evaluation_uri)
        if not inputs or not self.label_column:
            raise ValueError(
                "evaluation_uri and label_column are required to compare the candidate with the champion"
            )
        pins = pin_inputs(self._storage, inputs)
        batches = [b for pin in pins for b in self._storage.iter_batches(pin.read_uri)]
        frame = pa.Table.from_batches(batches).to_pandas()
        self._evaluation_lineage(pins, frame)
        if self.label_column not in frame.columns:
            raise ValueError(
                f"Label column {self.label_column!r} is not in the evaluation data (columns: {list(frame.columns)})"
            )
        frame = frame[frame[self.label_column].notna()]
        all_rows = len(frame)
        frame, onset = self._post_drift(context, frame)
        if onset is None:
            return frame, f"{len(frame)} fresh rows"
        return frame, f"{len(frame)} post-drift rows (since {onset.first_day.isoformat()}, of {all_rows})"

    def _evaluation_lineage(self, pins: list[Any], frame: Any) -> None:
        """
        The evaluation rows read, kept as the candidate's ``mlops.evaluation_data.uri`` / ``.version``
        / ``.digest`` tags (each input's table URI and the Delta version read, the rows' digest:
        ``uri@v<version>`` evaluates on exactly those rows again) and for the OpenLineage facets.
        """
        from airflow_provider_mlops.ml.lineage import data_tags, frame_digest

        self._pins = list(pins)
        self._evaluation_tags = data_tags("evaluation", pins, frame_digest(frame))
        self.log.info("Evaluation data: %s", ", ".join(pin.read_uri for pin in pins))

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The evaluation inputs read, each with the Delta version judged on."""
        from airflow_provider_mlops.utils.lineage import pinned_inputs

        return pinned_inputs(getattr(self, "_pins", None) or [])

    def _scores(
        self, frame: Any, task: str, versions: dict[str, str]
    ) -> tuple[dict[str, float], dict[str, Any]]:
        """Each role's metric on ``frame`` (and its row-level predictions when the gate needs them)."""
        from airflow_provider_mlops.ml.features import model_inputs
        from airflow_provider_mlops.ml.stats import predictions
        from airflow_provider_mlops.ml.training import evaluate

        inputs, labels, metric = (
            model_inputs(frame, self.label_column),
            frame[self.label_column],
            self.gate.metric,
        )
        scores: dict[str, float] = {}
        scored: dict[str, Any] = {}
        for role, version in versions.items():
            model = self._loaded(version).model
            values = evaluate(model, inputs, labels, task)
            if metric not in values:
                raise ValueError(
                    f"Metric {metric!r} is not available for a {task} model (got {sorted(values)})"
                )
            scores[role] = float(values[metric])
            if self.gate.needs_predictions:
                scored[role] = predictions(model, inputs, labels, task)
        return scores, scored

    def _post_drift(self, context: Context, frame: Any) -> tuple[Any, Any]:
        """The evaluation rows on or after the drift onset (``gate.since_drift``), and the onset."""
        if not self.gate.since_drift:
            return frame, None
        import pandas as pd
        from airflow.providers.common.compat.sdk import AirflowFailException

        from airflow_provider_mlops.ml.onset import latest_onset, read_onset
        from airflow_provider_mlops.ml.tags import TAG_DRIFT_ONSET

        events = context.get("triggering_asset_events") or {}
        onset = latest_onset(e for evs in dict(events).values() for e in evs)
        if onset is None:
            assert self._mlflow is not None
            onset = read_onset(self._mlflow.model_tags(self.registered_model_name).get(TAG_DRIFT_ONSET))
        if onset is None:
            self.log.info("since_drift: no drift onset recorded: the candidate is judged on every row")
            return frame, None
        column = self.gate.time_column
        if column not in frame.columns:
            raise AirflowFailException(
                f"Gate time_column {column!r} is not in the evaluation data (columns: {list(frame.columns)})"
            )
        times = pd.to_datetime(frame[column], utc=True)
        post = frame[times >= pd.Timestamp(onset.start)]
        if post.empty:
            raise AirflowFailException(
                f"The evaluation data has no row on or after the drift onset {onset.first_day.isoformat()} "
                f"({column} runs from {times.min()} to {times.max()}): evaluate on post-drift rows "
                "or set Gate(since_drift=False)"
            )
        self.log.info("Judging on %s post-drift rows of %s (%s)", len(post), len(frame), onset.describe())
        return post, onset

    def _log_evaluation(
        self, run_id: str | None, frame: Any, task: str, versions: dict[str, str], airflow_run_id: str
    ) -> str | None:
        """
        The evaluation plots of the candidate and the champion on the fresh rows
        (:func:`~airflow_provider_mlops.ml.reporting.comparison_files`), logged to the candidate's
        MLflow run under ``promotion/<Airflow run id>/``: a promotion judged by eye. Plots are for
        people: a plotting or upload failure is logged and does not decide the promotion.
        """
        import re
        import tempfile

        from airflow_provider_mlops.ml.evaluation import write_files
        from airflow_provider_mlops.ml.features import model_inputs
        from airflow_provider_mlops.ml.reporting import comparison_files

        if not run_id:
            self.log.warning("The candidate has no MLflow run: evaluation plots not logged")
            return None
        base = "promotion/" + re.sub(r"[^A-Za-z0-9_.-]+", "_", airflow_run_id)
        models = {role: (version, self._loaded(version).model) for role, version in versions.items()}
        try:
            files = comparison_files(
                models, model_inputs(frame, self.label_column), frame[self.label_column], task, base=base
            )
            with tempfile.TemporaryDirectory() as tmp:
                write_files(files, tmp)
                assert self._mlflow is not None
                self._mlflow.log_artifacts(run_id, tmp)
        except Exception as err:
            self.log.warning(
                "Evaluation plots on the fresh data were not logged (%s: %s); the promotion decision "
                "does not depend on them",
                type(err).__name__,
                err,
            )
            return None
        self.log.info("Evaluation plots on the fresh data: runs:/%s/%s", run_id, base)
        return f"runs:/{run_id}/{base}"


class RollbackModelOperator(_ReleaseOperator):
    """
    Point the champion alias back at an earlier ``version``, and with it the deployment targets, the
    published ``latest.json`` and the serving process (otherwise they would keep the newer version).
    The version is tagged like a promotion, with reason ``rollback from version <previous>``.

    Returns (XCom) :class:`~airflow_provider_mlops.ml.promotion.Outcome` as a dict (``reason``
    ``"rollback"``).

    :param registered_model_name: the registered model. (templated)
    :param version: the version to go back to (number or XCom dict). (templated)
    :param alias: the champion alias.
    :param publish_uri: where the released model file and ``latest.json`` go. (templated)
    :param targets: deployment targets, as for :class:`DeployModelOperator`.
    :param reload: a serving process to notify (:class:`~airflow_provider_mlops.ml.specs.Reload`).
    :param mlflow_conn_id: MLflow connection; None for the embedded default.
    :param storage_conn_id: connection for ``s3://`` URIs.
    :param load_policy: what the trusted loader may deserialize.
    """

    template_fields: Sequence[str] = ("registered_model_name", "version", "publish_uri")

    def __init__(self, *, version: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.version = version

    @fail_fast()
    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_mlops.ml.promotion import Outcome

        hook, name = self._connect(), self.registered_model_name
        self._record_served_page(context)
        version = _version(self.version)
        if version is None:
            raise ValueError("version is required: the registered version to roll back to")
        hook.model_version(name, version)  # fails clearly when the version does not exist
        champion = hook.version_by_alias(name, self.alias)
        who, when = self._stamp(context)
        deployed, published = self._release(
            version,
            champion,
            lambda: hook.roll_back(name, version, alias=self.alias, who=who, when=when, previous=champion),
        )
        self.log.info("Rolled %s@%s back from version %s to %s", name, self.alias, champion, version)
        return Outcome(
            promoted=True,
            champion_version=version,
            candidate_version=version,
            previous_champion=champion,
            metric=None,
            reason="rollback",
            published_uri=published,
            targets=tuple(deployed),
        ).as_dict()
