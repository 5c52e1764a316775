"""DeployModelOperator: promote a registered model version when it beats the champion on fresh data."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_mlops.links.reports import ModelVersionLink
from airflow_provider_mlops.operators.common import fail_fast, input_uris, storage_hook

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context


class DeployModelOperator(BaseOperator):
    """
    Compare a candidate registered model version with the current ``champion`` on the same fresh
    evaluation dataset, and promote it only when it is better by more than ``min_delta`` (or when
    there is no champion): strict, so a tie (an identical retrain) keeps the champion. With
    ``paired_test`` the gain must also be significant on those same rows (a paired bootstrap of the
    metric difference, or McNemar's exact test for accuracy); the test's p-value and interval are
    stored in the version's ``mlops.promotion_test`` tag and in the reason. Promotion moves the MLflow alias (not the deprecated stages) and tags the version
    with who, when and why; a candidate that does not win gets the ``challenger`` alias and the
    champion stays. Running it again for the same candidate changes nothing.

    On promotion it can also publish the model file with its sha256 and an atomically replaced
    ``latest.json`` pointer to object storage, and ask a serving process to reload (HTTP POST).
    ``rollback_version`` re-points the champion alias to an earlier version instead, and with it the
    published ``latest.json`` and the serving process.

    Every model it scores or publishes is loaded through
    :func:`airflow_provider_mlops.ml.serialization.load_model_version`: its bytes must match the
    sha256 recorded on the MLflow model version before anything is deserialized.

    Returns (XCom) ``{"promoted", "champion_version", "candidate_version", "previous_champion",
    "metric", "candidate_score", "champion_score", "reason", "published_uri", "targets", "test",
    "evaluation_artifacts"}``: the last is the ``runs:/`` folder of the candidate's MLflow run holding
    the evaluation plots (ROC, precision-recall, calibration, threshold table, or residuals) of the
    candidate and the champion on the fresh rows and both overlaid in ``comparison.png``.

    :param registered_model_name: the registered model. (templated)
    :param candidate_version: the version to consider, e.g. from the training task's XCom. (templated)
    :param evaluation_uri: fresh labelled data (dataset URI or upstream XCom dict). (templated)
    :param target: the label column.
    :param metric: the metric deciding promotion (``f1``, ``accuracy``, ``roc_auc``, ``rmse``...).
    :param min_delta: the candidate must beat the champion by more than this (in the metric's units;
        0 means any strict improvement), or ``"uncertainty"``: by more than the standard error of the
        gain on these rows (a paired bootstrap of both models on the same rows, ``n_bootstrap``
        resamples), so that a candidate no better than the champion within the metric's uncertainty
        is a tie and is not promoted.
    :param since_drift: judge on the post-drift rows only: the evaluation rows whose ``time_column``
        is on or after the first day of the drift onset (from the triggering Asset events'
        ``drift_onset``, else the registered model's ``mlops.drift_onset`` tag; see
        :mod:`airflow_provider_mlops.ml.onset`). Without a recorded onset every row is used (logged);
        an onset with no evaluation row after it fails the task.
    :param time_column: the evaluation data's time column (for ``since_drift``).

    The decision, both scores, the rows they were measured on (and how many are post-drift) and
    the margin are logged and written as the candidate version's description in the registry.
    :param paired_test: None, ``bootstrap`` (any metric) or ``mcnemar`` (accuracy): also require the
        gain to be significant at ``alpha`` on the same evaluation rows.
    :param alpha: significance level of the paired test.
    :param n_bootstrap: resamples of the paired bootstrap.
    :param alias: the champion alias.
    :param challenger_alias: the alias given to a candidate that did not win.
    :param rollback_version: instead of comparing, point the champion alias at this version. (templated)
    :param publish_uri: where to publish the promoted model (``s3://...`` / ``file://...``). (templated)
    :param reload_http_conn_id: an HTTP connection of the serving process to notify on promotion.
    :param reload_endpoint: the endpoint to POST to (body: model name, version, URI, sha256).
    :param mlflow_conn_id: MLflow connection; None for the embedded default.
    :param storage_conn_id: connection for ``s3://`` URIs.
    :param allow_cloudpickle: let the trusted loader deserialize cloudpickle files (runs code on load;
        off by default: only skops with the type allowlist is loaded).
    :param trusted_types: extra type names (or prefixes ending in ``.``) skops may construct.
    :param targets: where the promoted (or rolled-back-to) version is deployed before the alias moves:
        :class:`~airflow_provider_mlops.deployment.targets.DeploymentTarget` instances or
        ``{"type": "local_server", "http_conn_id": ..., "smoke_input": {...}}`` dicts. Each is
        deployed and smoke-tested in turn; one failure rolls every touched target back to the
        previous champion, leaves the alias where it was and fails the task.
    """

    template_fields: Sequence[str] = (
        "registered_model_name",
        "candidate_version",
        "evaluation_uri",
        "rollback_version",
        "publish_uri",
    )
    ui_color = "#fce4ec"
    operator_extra_links = (ModelVersionLink(),)

    def __init__(
        self,
        *,
        registered_model_name: str,
        candidate_version: Any = None,
        evaluation_uri: Any = None,
        target: str | None = None,
        metric: str = "f1",
        min_delta: float | str = 0.0,
        alias: str = "champion",
        challenger_alias: str = "challenger",
        rollback_version: Any = None,
        publish_uri: str | None = None,
        reload_http_conn_id: str | None = None,
        reload_endpoint: str = "reload",
        mlflow_conn_id: str | None = None,
        storage_conn_id: str | None = None,
        allow_cloudpickle: bool = False,
        trusted_types: Sequence[str] | None = None,
        targets: Sequence[Any] | None = None,
        paired_test: str | None = None,
        alpha: float = 0.05,
        n_bootstrap: int = 2000,
        since_drift: bool = False,
        time_column: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(min_delta, str) and min_delta != "uncertainty":
            raise ValueError(f"min_delta must be a number or 'uncertainty', got {min_delta!r}")
        if since_drift and not time_column:
            raise ValueError("since_drift needs the evaluation data's time_column")
        self.since_drift = since_drift
        self.time_column = time_column
        from airflow_provider_mlops.ml.stats import PAIRED_TESTS

        if paired_test is not None and paired_test not in PAIRED_TESTS:
            raise ValueError(f"paired_test must be None or one of {PAIRED_TESTS}, got {paired_test!r}")
        if paired_test == "mcnemar" and metric != "accuracy":
            raise ValueError(
                "paired_test='mcnemar' compares accuracies: use metric='accuracy' or 'bootstrap'"
            )
        self.paired_test = paired_test
        self.alpha = alpha
        self.n_bootstrap = n_bootstrap
        self._predictions: dict[str, Any] = {}
        self.registered_model_name = registered_model_name
        self.candidate_version = candidate_version
        self.evaluation_uri = evaluation_uri
        self.target = target
        self.metric = metric
        self.min_delta = min_delta
        self.alias = alias
        self.challenger_alias = challenger_alias
        self.rollback_version = rollback_version
        self.publish_uri = publish_uri
        self.reload_http_conn_id = reload_http_conn_id
        self.reload_endpoint = reload_endpoint
        self.mlflow_conn_id = mlflow_conn_id
        self.storage_conn_id = storage_conn_id
        self.allow_cloudpickle = allow_cloudpickle
        self.trusted_types = list(trusted_types or ())
        self.targets = list(targets or ())
        self._models: dict[str, Any] = {}
        self._published: dict[str, dict[str, Any]] = {}
        self._client: Any = None
        self._mlflow: Any = None
        self._storage: Any = None

    @staticmethod
    def _version(value: Any) -> str | None:
        if value in (None, ""):
            return None
        if isinstance(value, dict):
            value = value.get("version")
        return str(int(str(value)))

    def _champion(self, client: Any) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return str(client.get_model_version_by_alias(self.registered_model_name, self.alias).version)
        except MlflowException:
            return None

    def _loaded(self, version: str) -> Any:
        """
        A registered version through the trusted loader (sha256 from the MLflow model version,
        checked before deserializing), loaded once per task: scoring and publishing share it.
        """
        if version not in self._models:
            from airflow_provider_mlops.ml.serialization import LoadPolicy

            self._models[version] = self._mlflow.load_model_version(
                self.registered_model_name,
                version,
                storage=self._storage,
                policy=LoadPolicy.of(
                    allow_cloudpickle=self.allow_cloudpickle, trusted_types=self.trusted_types
                ),
            )
        return self._models[version]

    def _model(self, version: str) -> Any:
        return self._loaded(version).model

    def _score(self, version: str, frame: Any, task: str) -> float:
        from airflow_provider_mlops.ml.features import model_inputs
        from airflow_provider_mlops.ml.stats import predictions
        from airflow_provider_mlops.ml.training import evaluate

        model = self._model(version)
        inputs = model_inputs(frame, self.target or "")
        scores = evaluate(model, inputs, frame[self.target], task)
        if self.metric not in scores:
            raise ValueError(
                f"Metric {self.metric!r} is not available for a {task} model (got {sorted(scores)})"
            )
        if self.paired_test or self.min_delta == "uncertainty":
            self._predictions[version] = predictions(model, inputs, frame[self.target], task)
        return float(scores[self.metric])

    @fail_fast()
    def execute(self, context: Context) -> dict[str, Any]:
        import pyarrow as pa

        from airflow_provider_mlops.hooks.mlflow import MlflowHook

        mlflow_hook = MlflowHook(self.mlflow_conn_id)
        self._mlflow = mlflow_hook
        client = mlflow_hook.client
        self._client = client
        storage = storage_hook(self.storage_conn_id)
        self._storage = storage
        name = self.registered_model_name
        champion = self._champion(client)
        who = f"{context['ti'].dag_id}.{context['ti'].task_id} ({context['run_id']})"
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

        rollback = self._version(self.rollback_version)
        if rollback is not None:
            client.get_model_version(name, rollback)  # fails clearly when the version does not exist
            deployed = self._deploy_targets(storage, rollback, champion)
            client.set_registered_model_alias(name, self.alias, rollback)
            self._tag(client, rollback, who, now, f"rollback from version {champion}")
            self.log.info("Rolled %s@%s back from version %s to %s", name, self.alias, champion, rollback)
            # The published pointer and the serving process follow the alias back: otherwise
            # latest.json would keep naming the newer version and a server would keep serving it.
            published = self._publish(storage, rollback) if self.publish_uri else None
            if self.reload_http_conn_id:
                self._reload(rollback, published)
            return {
                "promoted": True,
                "champion_version": rollback,
                "candidate_version": rollback,
                "previous_champion": champion,
                "metric": self.metric,
                "candidate_score": None,
                "champion_score": None,
                "reason": "rollback",
                "published_uri": published,
                "targets": deployed,
                "test": None,
                "evaluation_artifacts": None,
            }

        candidate = self._version(self.candidate_version)
        if candidate is None:
            raise ValueError("candidate_version is required (or rollback_version)")
        if candidate == champion:
            self.log.info("Version %s already holds %s@%s: nothing to do", candidate, name, self.alias)
            return {
                "promoted": False,
                "champion_version": champion,
                "candidate_version": candidate,
                "previous_champion": champion,
                "metric": self.metric,
                "candidate_score": None,
                "champion_score": None,
                "reason": "already champion",
                "published_uri": None,
                "targets": [],
                "test": None,
                "evaluation_artifacts": None,
            }
        if not self.target:
            raise ValueError("target is required to evaluate the candidate")
        inputs = input_uris(self.evaluation_uri)
        if not inputs:
            raise ValueError("evaluation_uri is required to compare the candidate with the champion")
        frame = pa.Table.from_batches([b for u in inputs for b in storage.iter_batches(u)]).to_pandas()
        if self.target not in frame.columns:
            raise ValueError(
                f"Target column {self.target!r} is not in the evaluation data (columns: {list(frame.columns)})"
            )
        frame = frame[frame[self.target].notna()]
        all_rows = len(frame)
        frame, onset = self._post_drift(context, frame)
        run_id = client.get_model_version(name, candidate).run_id
        task = (
            client.get_run(run_id).data.tags.get("mlops.task", "classification")
            if run_id
            else "classification"
        )
        candidate_score = self._score(candidate, frame, task)
        champion_score = self._score(champion, frame, task) if champion else None
        versions = {"candidate": candidate, **({"champion": champion} if champion else {})}
        try:
            plots_uri = self._log_evaluation(run_id, frame, task, versions, str(context["run_id"]))
        except (
            Exception
        ) as err:  # plots are for people: a plotting or upload failure must not decide a promotion
            self.log.warning(
                "Evaluation plots on the fresh data were not logged (%s: %s); the promotion decision "
                "does not depend on them",
                type(err).__name__,
                err,
            )
            plots_uri = None
        from airflow_provider_mlops.ml.training import LOWER_IS_BETTER

        lower = self.metric in LOWER_IS_BETTER
        test: dict[str, Any] | None = None
        rows = (
            f"{len(frame)} post-drift rows (since {onset.first_day.isoformat()}, of {all_rows})"
            if onset is not None
            else f"{len(frame)} fresh rows"
        )
        if champion_score is None:
            promote, reason = True, "no champion yet"
        else:
            gain = (champion_score - candidate_score) if lower else (candidate_score - champion_score)
            margin, why = self._margin(candidate, champion)
            # Strict: a tie (an identical retrain) is no improvement and must not swap the champion.
            promote = gain > margin
            reason = (
                f"{self.metric} {candidate_score:.4f} vs champion v{champion} {champion_score:.4f} on "
                f"{rows}: {'better' if promote else 'not better'} by {gain:+.4f} "
                f"(must exceed {why})"
            )
            if self.paired_test and champion is not None:
                from airflow_provider_mlops.ml.stats import paired_test

                test = paired_test(
                    self.metric,
                    self._predictions[candidate],
                    self._predictions[champion],
                    method=self.paired_test,
                    min_delta=margin,
                    n_boot=self.n_bootstrap,
                )
                significant = test["p_value"] < self.alpha
                interval = (
                    f", 95% interval of the gain [{test['gain_low']:+.4f}, {test['gain_high']:+.4f}]"
                    if "gain_low" in test
                    else f", {test['wins']} rows only the candidate gets right vs {test['losses']}"
                )
                reason += (
                    f"; paired {test['method']} test p = {test['p_value']:.3g}{interval}: "
                    f"{'significant' if significant else 'not significant'} at {self.alpha}"
                )
                promote = promote and significant
        self.log.info("Candidate v%s: %s", candidate, reason)
        decision = f"{'Promoted' if promote else 'Not promoted'} by {who} at {now}: " + (
            f"{reason} ({self.metric} {candidate_score:.4f} on {rows})" if champion_score is None else reason
        )
        self.log.info("Promotion decision for %s v%s: %s", name, candidate, decision)
        client.update_model_version(name, candidate, description=decision[:5000])
        published, deployed = None, []
        if promote:
            # Targets first: the alias moves only once every target serves the candidate and passed
            # its smoke test (a failure rolls the targets back and raises: the champion stays).
            deployed = self._deploy_targets(storage, candidate, champion)
            client.set_registered_model_alias(name, self.alias, candidate)
            self._tag(client, candidate, who, now, reason)
            if test is not None:
                client.set_model_version_tag(name, candidate, "mlops.promotion_test", json.dumps(test))
            if self.publish_uri:
                published = self._publish(storage, candidate)
            if self.reload_http_conn_id:
                self._reload(candidate, published)
        else:
            client.set_registered_model_alias(name, self.challenger_alias, candidate)
            client.set_model_version_tag(name, candidate, "mlops.not_promoted", reason[:5000])
            if test is not None:
                client.set_model_version_tag(name, candidate, "mlops.promotion_test", json.dumps(test))
        return {
            "promoted": promote,
            "champion_version": candidate if promote else champion,
            "candidate_version": candidate,
            "previous_champion": champion,
            "metric": self.metric,
            "candidate_score": candidate_score,
            "champion_score": champion_score,
            "reason": reason,
            "published_uri": published,
            "targets": deployed,
            "test": test,
            "evaluation_artifacts": plots_uri,
        }

    def _margin(self, candidate: str, champion: str) -> tuple[float, str]:
        """How much the candidate must gain: ``min_delta``, or the gain's standard error on these rows."""
        if self.min_delta != "uncertainty":
            return float(self.min_delta), f"min_delta {self.min_delta}"
        from airflow_provider_mlops.ml.stats import paired_test

        spread = paired_test(
            self.metric,
            self._predictions[candidate],
            self._predictions[champion],
            method="bootstrap",
            n_boot=self.n_bootstrap,
        )
        se = spread["gain_se"]
        return se, f"the gain's standard error {se:.4f} ({spread['resamples']} paired bootstrap resamples)"

    def _post_drift(self, context: Context, frame: Any) -> tuple[Any, Any]:
        """The evaluation rows on or after the drift onset (``since_drift``), and the onset."""
        if not self.since_drift:
            return frame, None
        import pandas as pd
        from airflow.providers.common.compat.sdk import AirflowFailException

        from airflow_provider_mlops.ml.onset import ONSET_TAG, latest_onset, read_onset

        events = context.get("triggering_asset_events") or {}
        onset = latest_onset(e for evs in dict(events).values() for e in evs)
        if onset is None:
            tags = self._client.get_registered_model(self.registered_model_name).tags or {}
            onset = read_onset(tags.get(ONSET_TAG))
        if onset is None:
            self.log.info("since_drift: no drift onset recorded: the candidate is judged on every row")
            return frame, None
        if self.time_column not in frame.columns:
            raise AirflowFailException(
                f"time_column {self.time_column!r} is not in the evaluation data (columns: {list(frame.columns)})"
            )
        times = pd.to_datetime(frame[self.time_column], utc=True)
        post = frame[times >= pd.Timestamp(onset.start)]
        if post.empty:
            raise AirflowFailException(
                f"The evaluation data has no row on or after the drift onset {onset.first_day.isoformat()} "
                f"({self.time_column} runs from {times.min()} to {times.max()}): evaluate on post-drift rows "
                "or set since_drift=False"
            )
        self.log.info("Judging on %s post-drift rows of %s (%s)", len(post), len(frame), onset.describe())
        return post, onset

    def _log_evaluation(
        self, run_id: str | None, frame: Any, task: str, versions: dict[str, str], airflow_run_id: str
    ) -> str | None:
        """
        The evaluation plots (:func:`~airflow_provider_mlops.ml.evaluation.evaluation_files`) of the
        candidate and the champion on the fresh rows, plus both overlaid (``comparison.png``), logged
        to the candidate's MLflow run under ``promotion/<Airflow run id>/``: a promotion judged by eye.
        """
        import re
        import tempfile

        from airflow_provider_mlops.ml.evaluation import evaluation_files, write_files
        from airflow_provider_mlops.ml.features import model_inputs
        from airflow_provider_mlops.ml.plots import comparison_png

        if not run_id:
            self.log.warning("The candidate has no MLflow run: evaluation plots not logged")
            return None
        base = "promotion/" + re.sub(r"[^A-Za-z0-9_.-]+", "_", airflow_run_id)
        inputs, labels = model_inputs(frame, self.target or ""), frame[self.target]
        files: dict[str, bytes] = {}
        results = {}
        for role, version in versions.items():
            result, produced = evaluation_files(
                self._model(version),
                inputs,
                labels,
                task,
                label=f"fresh data, {role} v{version}",
                prefix=f"{base}/{role}_v{version}",
            )
            files.update(produced)
            results[f"{role} v{version}"] = result
        files[f"{base}/comparison.png"] = comparison_png(results, label=f"{len(frame)} fresh rows")
        with tempfile.TemporaryDirectory() as tmp:
            write_files(files, tmp)
            self._mlflow.log_artifacts(run_id, tmp)
        self.log.info("Evaluation plots on the fresh data: runs:/%s/%s", run_id, base)
        return f"runs:/{run_id}/{base}"

    def _tag(self, client: Any, version: str, who: str, when: str, why: str) -> None:
        for key, value in {
            "mlops.promoted_by": who,
            "mlops.promoted_at": when,
            "mlops.promotion_reason": why,
        }.items():
            client.set_model_version_tag(self.registered_model_name, version, key, value[:5000])

    def _publish_file(self, storage: Any, version: str) -> dict[str, Any]:
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
                storage,
                f"{root}/v{version}",
                loaded.blob,
                loaded.format,
                metadata={"registered_model_name": self.registered_model_name, "version": version},
            )
        return self._published[version]

    def _publish(self, storage: Any, version: str) -> str:
        """Publish the model file of ``version``, then replace ``latest.json`` in one atomic write."""
        from airflow_provider_mlops.utils.staging import resolve_uri

        info = self._publish_file(storage, version)
        root = resolve_uri(self.publish_uri or "").rstrip("/")
        pointer = {
            "registered_model_name": self.registered_model_name,
            "version": version,
            "uri": info["uri"],
            "sha256": info["sha256"],
            "format": info["format"],
            "published_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        storage.put_bytes(
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

    def _release(self, storage: Any, version: str) -> Any:
        """The verified ``version`` as a :class:`~airflow_provider_mlops.deployment.targets.ModelRelease`."""
        from airflow_provider_mlops.deployment.targets import ModelRelease
        from airflow_provider_mlops.utils.staging import resolve_uri

        loaded = self._loaded(version)
        uri = self._publish_file(storage, version)["uri"] if self.publish_uri else loaded.uri
        latest = f"{resolve_uri(self.publish_uri).rstrip('/')}/latest.json" if self.publish_uri else None
        return ModelRelease(
            name=self.registered_model_name, version=version, sha256=loaded.sha256, uri=uri, latest_uri=latest
        )

    def _deploy_targets(self, storage: Any, version: str, previous: str | None) -> list[dict[str, Any]]:
        """Deploy and smoke-test ``version`` on every target; roll all back to ``previous`` on failure."""
        from airflow_provider_mlops.deployment.targets import deploy_all, resolve_targets

        targets = resolve_targets(self.targets)
        if not targets:
            return []
        release = self._release(storage, version)
        before = self._release(storage, previous) if previous and previous != version else None
        return deploy_all(targets, release, before)

    def _reload(self, version: str, published: str | None) -> None:
        from airflow_provider_mlops.hooks.http import HttpApiHook

        HttpApiHook(self.reload_http_conn_id or "").run(
            self.reload_endpoint,
            method="POST",
            json={
                "model": self.registered_model_name,
                "version": version,
                "latest": published,
                "sha256": self._loaded(version).sha256 if version in self._models else None,
            },
        )
        self.log.info("Asked the serving process to reload version %s", version)
