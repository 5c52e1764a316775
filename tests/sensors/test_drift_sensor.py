"""DriftSensor: skip without drift, succeed (and alert) on drift or accuracy decay; the deferrable path."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException, TaskDeferred
from pytest_httpserver import HTTPServer

from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
from airflow_provider_mlops.ml.profile import build_profile
from airflow_provider_mlops.ml.specs import Decay, DriftLimits, Model, Retrain, TrainingData
from airflow_provider_mlops.notifications.webhook import WebhookNotifier
from airflow_provider_mlops.operators.deploy import DeployModelOperator
from airflow_provider_mlops.operators.train import TrainModelOperator
from airflow_provider_mlops.sensors.drift import DriftSensor
from airflow_provider_mlops.triggers.dataset import DatasetReadyTrigger
from tests.conftest import set_connection
from tests.operators.helpers import task_context, train_kwargs


def _people(n: int, seed: int, *, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 10, n) + shift * 10,
            "income": rng.gamma(2, 20, n),
            "plan": rng.choice(["free", "pro"], n),
        }
    )
    return frame


def _write(tmp_path: Path, name: str, frame: pd.DataFrame) -> str:
    uri = (tmp_path / name).as_uri()
    ObjectStorageHook(aws_conn_id=None).write_dataset(
        uri, pa.Table.from_pandas(frame, preserve_index=False).to_batches()
    )
    return uri


def _train_and_gate(
    dataset: str, mlflow_conn: str, tmp_path: Path, name: str, **train_options: object
) -> tuple[str, dict]:
    """A LogisticRegression churn model trained on ``dataset`` and gated on it: (version, gate result)."""
    version = TrainModelOperator(
        task_id="train",
        input_uri=dataset,
        label_column="churned",
        registered_model_name=name,
        mlflow_conn_id=mlflow_conn,
        model_output_uri=(tmp_path / "m").as_uri(),
        **train_kwargs(estimator="sklearn.linear_model.LogisticRegression", **train_options),
    ).execute(task_context(tmp_path))["version"]
    gate = DeployModelOperator(
        task_id="deploy",
        registered_model_name=name,
        candidate_version=version,
        evaluation_uri=dataset,
        label_column="churned",
        mlflow_conn_id=mlflow_conn,
    ).execute(task_context(tmp_path))
    return version, gate


def _flipped(dataset: str) -> pd.DataFrame:
    """The same rows with the label relation flipped: the features do not drift, the accuracy does."""
    frame = pa.Table.from_batches(list(ObjectStorageHook(aws_conn_id=None).iter_batches(dataset))).to_pandas()
    frame["churned"] = 1 - frame["churned"]
    return frame


@pytest.fixture
def profile_uri(tmp_path: Path) -> str:
    profile = build_profile(_people(20_000, 0), numeric=["age", "income"], categorical=["plan"])
    uri = (tmp_path / "profile.json").as_uri()
    ObjectStorageHook(aws_conn_id=None).put_bytes(uri, json.dumps(profile).encode())
    return uri


def test_no_drift_skips_and_drift_succeeds_with_report_and_alert(
    profile_uri: str, tmp_path: Path, httpserver: HTTPServer
) -> None:
    same = _write(tmp_path, "same", _people(20_000, 1))
    sensor = DriftSensor(
        task_id="drift",
        current_uri=same,
        reference_profile_uri=profile_uri,
        report_uri=(tmp_path / "r1").as_uri(),
    )
    context = task_context(tmp_path)
    with pytest.raises(AirflowSkipException, match="No drift"):
        sensor.poke(context)
    assert context["ti"].pushed["drift_report"]["drift"] is False

    httpserver.expect_request("/alerts", method="POST").respond_with_data("ok")
    set_connection("drift_alerts", conn_type="http", host=httpserver.url_for("/"))
    shifted = _write(tmp_path, "shifted", _people(20_000, 2, shift=0.8))
    sensor = DriftSensor(
        task_id="drift",
        current_uri={"uri": shifted},
        reference_profile_uri=profile_uri,
        report_uri=(tmp_path / "r2").as_uri(),
        on_drift=[WebhookNotifier(http_conn_id="drift_alerts", endpoint="alerts", title="Drift")],
        drift=DriftLimits(thresholds={"share": 0.3}),
    )
    result = sensor.poke(task_context(tmp_path))
    assert result.is_done and result.xcom_value["drifted_features"] == ["age"]
    html = (tmp_path / "r2" / "report.html").read_text()
    assert "DRIFT DETECTED" in html and "<svg" in html and "age" in html
    report = json.loads((tmp_path / "r2" / "report.json").read_text())
    assert report["drift"] and report["features"][0]["name"] == "age"
    alert = json.loads(httpserver.log[0][0].data)
    assert alert["details"]["drifted_features"] == ["age"]


def test_the_check_succeeds_with_its_verdict_and_request_retrain_owns_the_asset(
    profile_uri: str, tmp_path: Path
) -> None:
    """
    #27 item 4, the clearer pattern: with on_no_drift="succeed" the check is green whenever it judged
    the day; request_retrain is green only when a retrain is requested (its Asset event carries the
    check's summary line) and skipped on a healthy day.
    """
    from airflow.sdk import Asset

    from airflow_provider_mlops.sensors.drift import RequestRetrainOperator

    outlet = Asset(name="retrain", uri="x-mlops-signal://people/retrain")
    request = RequestRetrainOperator(task_id="request_retrain", verdict=None, outlets=[outlet])

    def check(name: str, frame: pd.DataFrame) -> tuple[dict, dict]:
        sensor = DriftSensor(
            task_id="drift",
            current_uri=_write(tmp_path, name, frame),
            reference_profile_uri=profile_uri,
            report_uri=(tmp_path / f"r-{name}").as_uri(),
            drift=DriftLimits(thresholds={"share": 0.3}),
            retrain=Retrain(on_no_drift="succeed"),
        )
        result = sensor.poke(task_context(tmp_path))  # no AirflowSkipException: the check succeeds
        assert result.is_done
        context = {**task_context(tmp_path), "outlet_events": _Events()}
        return result.xcom_value, context

    healthy, context = check("same", _people(20_000, 1))
    assert healthy["drift"] is False and healthy["retrain_requested"] is False
    assert healthy["summary"].startswith("No drift on 2026-01-08: 20000 rows")
    request.verdict = healthy
    with pytest.raises(AirflowSkipException, match="No retrain requested: No drift on 2026-01-08"):
        request.execute(context)
    assert context["outlet_events"].get(outlet) is None

    drifted, context = check("shifted", _people(20_000, 2, shift=0.8))
    assert drifted["retrain_requested"] and drifted["drifted_features"] == ["age"]
    request.verdict = drifted
    assert request.execute(context) == {"summary": drifted["summary"]}
    assert context["outlet_events"][outlet].extra == {"summary": drifted["summary"]}
    assert "age (psi " in drifted["summary"]

    # the sensor with outlets would emit an Asset event on every success: refused, saying what to do
    with pytest.raises(ValueError, match="RequestRetrainOperator"):
        DriftSensor(
            task_id="drift",
            current_uri="x",
            reference_profile_uri=profile_uri,
            retrain=Retrain(on_no_drift="succeed"),
            outlets=[outlet],
        )
    with pytest.raises(ValueError, match="on_no_drift must be 'skip' or 'succeed', got 'pass'"):
        Retrain(on_no_drift="pass")  # type: ignore[arg-type]


def test_waits_while_the_dataset_is_incomplete(profile_uri: str, tmp_path: Path) -> None:
    sensor = DriftSensor(
        task_id="drift",
        current_uri=(tmp_path / "not-yet").as_uri(),
        reference_profile_uri=profile_uri,
    )
    assert sensor.poke(task_context(tmp_path)) is False


def test_deferrable_path_runs_through_its_trigger(profile_uri: str, tmp_path: Path) -> None:
    uri = (tmp_path / "later").as_uri()
    sensor = DriftSensor(
        task_id="drift",
        current_uri=uri,
        reference_profile_uri=profile_uri,
        deferrable=True,
        poke_interval=0.05,
        timeout=30,
        report_uri=(tmp_path / "r3").as_uri(),
        drift=DriftLimits(thresholds={"share": 0.3}),
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(task_context(tmp_path))
    trigger = deferred.value.trigger
    assert isinstance(trigger, DatasetReadyTrigger) and deferred.value.method_name == "execute_complete"
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_mlops.triggers.dataset.DatasetReadyTrigger"

    async def wait_for_event():
        generator = DatasetReadyTrigger(**kwargs).run()
        task = asyncio.ensure_future(generator.__anext__())
        await asyncio.sleep(0.2)
        assert not task.done(), "no event before the data exists"
        _write(tmp_path, "later", _people(5_000, 3, shift=1.0))
        return await asyncio.wait_for(task, 10)

    event = asyncio.run(wait_for_event())
    assert event.payload["status"] == "ready"
    summary = sensor.execute_complete(task_context(tmp_path), event.payload)
    assert summary["drift"] and "age" in summary["drifted_features"]


def test_trigger_times_out() -> None:
    async def first_event():
        return (
            await DatasetReadyTrigger(uri="/nonexistent/ds", poke_interval=0.05, timeout=0.2)
            .run()
            .__anext__()
        )

    assert asyncio.run(first_event()).payload["status"] == "timeout"


def test_accuracy_decay_against_the_champion(
    dataset: str, mlflow_conn: str, mlflow_tracking: dict, tmp_path: Path
) -> None:
    name = "churn_monitor"
    version, _ = _train_and_gate(dataset, mlflow_conn, tmp_path, name)
    # Same features, but the label relation flipped: the data does not drift, the accuracy does.
    frame = _flipped(dataset)
    flipped = _write(tmp_path, "flipped", frame)
    sensor = DriftSensor(
        task_id="drift",
        current_uri=flipped,
        registered_model_name=name,
        mlflow_conn_id=mlflow_conn,
        report_uri=(tmp_path / "r4").as_uri(),
        decay=Decay(label_column="churned", metric="accuracy", max_drop=0.1),
    )
    result = sensor.poke(task_context(tmp_path))
    summary = result.xcom_value
    assert summary["drift"] and not summary["dataset_drift"]
    assert (
        summary["accuracy"]["decayed"]
        and summary["accuracy"]["current"] < summary["accuracy"]["baseline"] - 0.1
    )
    assert summary["reference"]["version"] == version
    accuracy = summary["accuracy"]
    assert accuracy["p_value"] < 0.05 and accuracy["drop_low"] > 0.1, "sure, not only past the threshold"
    assert "interval of the worsening" in accuracy["confidence"]
    assert "How sure" in (tmp_path / "r4" / "report.html").read_text()


def test_html_report_renders_in_headless_chromium(
    profile_uri: str, tmp_path: Path, artifacts_dir: Path
) -> None:
    from tests.conftest import _unavailable
    from tests.harness.browser import capture, find_browser

    browser = find_browser()
    if browser is None:
        _unavailable("chromium not found: apt-get install chromium")
    shifted = _write(tmp_path, "shifted", _people(20_000, 5, shift=0.8))
    sensor = DriftSensor(
        task_id="drift",
        current_uri=shifted,
        reference_profile_uri=profile_uri,
        report_uri=(tmp_path / "report").as_uri(),
        drift=DriftLimits(thresholds={"share": 0.3}),
    )
    sensor.poke(task_context(tmp_path))
    url = (tmp_path / "report" / "report.html").as_uri()
    data, dom = capture(url, artifacts_dir / "drift_report.png", window=(1500, 700), browser=browser)
    assert "income" in dom
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, "a rendered page, not a blank one"


def test_a_plain_parquet_file_is_read_at_once(profile_uri: str, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    path = tmp_path / "drop" / "current.parquet"
    path.parent.mkdir()
    pq.write_table(pa.Table.from_pandas(_people(5_000, 4, shift=1.0), preserve_index=False), path)
    for uri in (path.as_uri(), path.parent.as_uri()):  # the file, or the folder holding it
        sensor = DriftSensor(
            task_id="drift",
            current_uri=uri,
            reference_profile_uri=profile_uri,
            report_uri=(tmp_path / "r-plain").as_uri(),
            drift=DriftLimits(thresholds={"share": 0.3}),
        )
        result = sensor.poke(task_context(tmp_path))
        assert result.is_done and "age" in result.xcom_value["drifted_features"]
        assert result.xcom_value["rows"] == 5_000


def test_a_dataset_being_written_is_not_taken_half_written(profile_uri: str, tmp_path: Path) -> None:
    partial = tmp_path / "writing" / "_attempts" / "a1"
    partial.mkdir(parents=True)
    (partial / "part-0.parquet").write_bytes(b"not yet")
    sensor = DriftSensor(
        task_id="drift",
        current_uri=(tmp_path / "writing").as_uri(),
        reference_profile_uri=profile_uri,
    )
    assert sensor.poke(task_context(tmp_path)) is False


def test_errors_a_retry_cannot_fix_fail_the_task_without_retries(
    profile_uri: str, mlflow_conn: str, tmp_path: Path
) -> None:
    current = _write(tmp_path, "current", _people(500, 1))
    two = DriftSensor(
        task_id="drift",
        current_uri=[current, current],
        reference_profile_uri=profile_uri,
    )
    with pytest.raises(AirflowFailException, match="current_uri must name one dataset"):
        two.poke(task_context(tmp_path))
    missing = DriftSensor(
        task_id="drift",
        current_uri=current,
        registered_model_name="never_trained",
        mlflow_conn_id=mlflow_conn,
        retrain=Retrain(on_missing_reference="fail"),
    )
    with pytest.raises(AirflowFailException, match="never_trained@champion has no reference profile"):
        missing.poke(task_context(tmp_path))


def test_excluded_features_are_left_out_and_a_misspelling_fails(profile_uri: str, tmp_path: Path) -> None:
    shifted = _write(tmp_path, "seasonal", _people(5_000, 6, shift=1.0))
    sensor = DriftSensor(
        task_id="drift",
        current_uri=shifted,
        reference_profile_uri=profile_uri,
        report_uri=(tmp_path / "r-excl").as_uri(),
        drift=DriftLimits(thresholds={"share": 0.3}, exclude=["age"]),
    )
    with pytest.raises(AirflowSkipException, match="No drift"):
        sensor.poke(task_context(tmp_path))
    report = json.loads((tmp_path / "r-excl" / "report.json").read_text())
    assert report["excluded"] == ["age"] and sorted(f["name"] for f in report["features"]) == [
        "income",
        "plan",
    ]
    typo = DriftSensor(
        task_id="drift",
        current_uri=shifted,
        reference_profile_uri=profile_uri,
        drift=DriftLimits(exclude=["agee"]),
    )
    with pytest.raises(AirflowFailException, match=r"exclude names feature\(s\) \['agee'\]"):
        typo.poke(task_context(tmp_path))


class _Events(dict):
    """``context["outlet_events"]``: an accessor per outlet with an ``extra``."""

    def __missing__(self, key):
        self[key] = type("Accessor", (), {"extra": None})()
        return self[key]


def test_a_retrain_that_did_not_help_holds_the_next_requests(
    dataset: str, mlflow_conn: str, mlflow_tracking: dict, tmp_path: Path
) -> None:
    """#28 item 9: once a retrain ties the decayed champion, the monitor stops asking every day."""
    from airflow.sdk import Asset
    from mlflow import MlflowClient

    name = "churn_cooldown"

    def train_and_gate() -> dict:
        return _train_and_gate(dataset, mlflow_conn, tmp_path, name, profile_data=False)[1]

    assert train_and_gate()["promoted"]
    frame = _flipped(dataset)
    flipped = _write(tmp_path, "flipped", frame)
    outlet = Asset(name="retrain", uri="x-mlops-signal://churn_cooldown/retrain")

    def check(day: int, **kwargs) -> tuple[object, dict]:
        context = {**task_context(tmp_path), "logical_date": f"2026-01-{day:02d}T00:00:00+00:00"}
        context["outlet_events"] = _Events()
        sensor = DriftSensor(
            task_id="drift",
            current_uri=flipped,
            registered_model_name=name,
            mlflow_conn_id=mlflow_conn,
            report_uri=(tmp_path / f"day{day}").as_uri(),
            outlets=[outlet],
            **kwargs,
            decay=Decay(label_column="churned", metric="accuracy", max_drop=0.1),
        )
        try:
            return sensor.poke(context), context
        except AirflowSkipException as skipped:
            return skipped, context

    asked, context = check(8)
    assert asked.is_done and asked.xcom_value["retrain"]["held"] is False
    client = MlflowClient(tracking_uri=mlflow_tracking["tracking_uri"])
    request = json.loads(client.get_registered_model(name).tags["mlops.retrain_request"])
    assert request["champion"] == "1" and request["accuracy"]["decayed"]
    onset = json.loads(client.get_registered_model(name).tags["mlops.drift_onset"])
    extra = context["outlet_events"][outlet].extra
    assert extra == {"retrain_request": request, "drift_onset": onset, "summary": extra["summary"]}
    assert extra["summary"] == asked.xcom_value["summary"] and "decayed: accuracy" in extra["summary"]
    # #26 item 1: the onset as data: first day, kind, the accuracy figures of that day
    assert onset["first_day"] == "2026-01-08" and onset["kind"] in ("decay", "drift+decay")
    assert onset["champion"] == "1" and onset["accuracy"]["metric"] == "accuracy"
    assert onset["accuracy"]["current"] < onset["accuracy"]["baseline"] - 0.1 and onset["ended"] is None

    gate = train_and_gate()  # the same data, the same model: a tie, kept out by the gate
    assert not gate["promoted"] and gate["candidate_version"] == "2"

    held, context = check(9)
    assert isinstance(held, AirflowSkipException) and "retraining is held" in str(held)
    assert "v2" in str(held) and "did not improve on the champion v1" in str(held)
    hold = json.loads(client.get_registered_model(name).tags["mlops.retrain_hold"])
    assert hold["candidate"] == "2" and hold["until"] == "2026-01-16T00:00:00+00:00"
    assert context["ti"].pushed["drift_report"]["retrain"]["held"] is True
    assert "Retraining <b>held</b>" in (tmp_path / "day9" / "report.html").read_text()
    assert context["outlet_events"].get(outlet) is None, "no Asset event while held"

    # still held within the cool-down; asked again once it has elapsed, and the hold is released
    assert isinstance(check(12)[0], AirflowSkipException)
    again, _ = check(16)
    assert again.is_done and "cool-down" in again.xcom_value["retrain"]["reason"]
    assert "mlops.retrain_hold" not in client.get_registered_model(name).tags
    # retrain_cooldown=None: ask every time, as before
    assert check(17, retrain=Retrain(cooldown=None))[0].is_done
    # the episode that began on day 8 goes on through held and asked checks alike
    from airflow_provider_mlops.ml.onset import read_onset

    tags = client.get_registered_model(name).tags
    assert read_onset(tags).first_day.isoformat() == "2026-01-08"
    assert read_onset(tags).last_seen.isoformat() == "2026-01-17T00:00:00+00:00"
    # a check without drift or decay ends it; the next drift is a new episode
    calm = DriftSensor(
        task_id="drift",
        current_uri=dataset,
        registered_model_name=name,
        mlflow_conn_id=mlflow_conn,
        report_uri=(tmp_path / "calm").as_uri(),
        decay=Decay(label_column="churned", metric="accuracy", max_drop=0.1),
    )
    with pytest.raises(AirflowSkipException):
        calm.poke({**task_context(tmp_path), "logical_date": "2026-01-18T00:00:00+00:00"})
    ended = read_onset(client.get_registered_model(name).tags)
    assert ended.first_day.isoformat() == "2026-01-08" and ended.ended.day == 18
    again, context = check(20, retrain=Retrain(cooldown=None))
    assert again.is_done and again.xcom_value["drift_onset"]["first_day"] == "2026-01-20"
    assert read_onset(context["outlet_events"][outlet]).first_day.isoformat() == "2026-01-20"


def test_a_model_trained_on_booleans_does_not_drift_on_the_same_day_as_json_text(
    mlflow_conn: str, mlflow_tracking: dict, tmp_path: Path
) -> None:
    """#28 item 1 from the user's side: TrainModelOperator's profile, then a JSON Lines day."""
    rng = np.random.default_rng(0)
    n = 2_000
    frame = pd.DataFrame(
        {
            "rain_today": rng.random(n) < 0.3,
            "windy": pd.array(np.where(rng.random(n) < 0.1, None, rng.random(n) < 0.5), dtype="boolean"),
            "humidity": rng.normal(70, 10, n),
            "pressure": rng.integers(990, 1030, n).astype("float64"),
        }
    )
    frame.loc[rng.random(n) < 0.05, "pressure"] = np.nan  # int with nulls: float64 in pandas
    frame["rain_tomorrow"] = ((frame.humidity > 75) ^ (rng.random(n) < 0.1)).astype("int64")
    train_uri = _write(tmp_path, "weather", frame)
    name = "rain_model"
    version = TrainModelOperator(
        task_id="train",
        input_uri=train_uri,
        label_column="rain_tomorrow",
        registered_model_name=name,
        mlflow_conn_id=mlflow_conn,
        model_output_uri=(tmp_path / "m").as_uri(),
        model=Model(estimator="sklearn.linear_model.LogisticRegression"),
        data=TrainingData(profile=False),
    ).execute(task_context(tmp_path))["version"]
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=mlflow_tracking["tracking_uri"]).set_registered_model_alias(
        name, "champion", version
    )
    day = frame.sample(1_500, random_state=1).drop(columns=["rain_tomorrow"])
    lines = []
    for record in day.to_dict(orient="records"):
        windy = record["windy"]
        lines.append(
            json.dumps(
                {
                    "rain_today": str(bool(record["rain_today"])).lower(),  # "true" / "false" text
                    "windy": None if pd.isna(windy) else bool(windy),
                    "humidity": record["humidity"],
                    "pressure": None if np.isnan(record["pressure"]) else int(record["pressure"]),
                }
            )
        )
    path = tmp_path / "drop" / "today.jsonl"
    path.parent.mkdir()
    path.write_text("\n".join(lines) + "\n")
    sensor = DriftSensor(
        task_id="drift",
        current_uri=path.as_uri(),
        registered_model_name=name,
        mlflow_conn_id=mlflow_conn,
        report_uri=(tmp_path / "r-weather").as_uri(),
    )
    with pytest.raises(AirflowSkipException, match="No drift"):
        sensor.poke(task_context(tmp_path))
    report = json.loads((tmp_path / "r-weather" / "report.json").read_text())
    by_name = {f["name"]: f for f in report["features"]}
    assert set(by_name) == {"rain_today", "windy", "humidity", "pressure"}
    assert by_name["rain_today"]["psi"] < 0.01 and by_name["rain_today"]["histogram"]["new_categories"] == []
    assert report["drifted_features"] == []


def test_the_onset_is_the_first_day_of_the_data_when_a_time_column_is_given(
    dataset: str, mlflow_conn: str, mlflow_tracking: dict, tmp_path: Path
) -> None:
    """A daily run's logical date is the day after its data: the onset names the data's day."""
    from mlflow import MlflowClient

    name = "churn_onset_day"
    _train_and_gate(dataset, mlflow_conn, tmp_path, name, profile_data=False)
    frame = _flipped(dataset)
    frame["day"] = "2026-01-08"
    sensor = DriftSensor(
        task_id="drift",
        current_uri=_write(tmp_path, "day8", frame),
        registered_model_name=name,
        mlflow_conn_id=mlflow_conn,
        report_uri=(tmp_path / "r").as_uri(),
        decay=Decay(label_column="churned", metric="accuracy", max_drop=0.1),
        retrain=Retrain(time_column="day"),
    )
    out = sensor.poke({**task_context(tmp_path), "logical_date": "2026-01-09T00:00:00+00:00"})
    assert out.xcom_value["drift_onset"]["first_day"] == "2026-01-08"
    assert out.xcom_value["drift_onset"]["at"] == "2026-01-09T00:00:00+00:00"
    # the report names the day its rows hold and the run's day, in its JSON and on its first lines
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["data_day"] == ["2026-01-08", "2026-01-08"] and report["logical_date"] == "2026-01-08"
    assert "data day 2026-01-08" in (tmp_path / "r" / "report.html").read_text()
    tags = MlflowClient(tracking_uri=mlflow_tracking["tracking_uri"]).get_registered_model(name).tags
    assert json.loads(tags["mlops.drift_onset"])["first_day"] == "2026-01-08"
    # a misnamed time column fails the check that starts an episode, naming it
    client = MlflowClient(tracking_uri=mlflow_tracking["tracking_uri"])
    client.delete_registered_model_tag(name, "mlops.drift_onset")
    sensor.retrain = Retrain(time_column="when")
    with pytest.raises(AirflowFailException, match="time_column 'when' cannot be read"):
        sensor.poke({**task_context(tmp_path), "logical_date": "2026-01-10T00:00:00+00:00"})


def test_the_story_in_one_line_in_the_log_the_asset_event_and_mlflow(
    dataset: str, mlflow_conn: str, mlflow_tracking: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """
    #27 item 3: one line per decision, with the real numbers, where people look (the task log is
    what the operators' loggers print: captured here from stdout, as the task runner writes it).
    """
    from airflow.sdk import Asset
    from mlflow import MlflowClient

    name = "churn_story"
    version, gate = _train_and_gate(dataset, mlflow_conn, tmp_path, name, profile_data=False)
    log = capsys.readouterr().out
    client = MlflowClient(tracking_uri=mlflow_tracking["tracking_uri"])
    # the promotion line: logged, and the version's description, word for word
    description = client.get_model_version(name, version).description
    assert description.startswith("Promoted by train_dag.train (manual__")
    assert f": {name} v{version}: f1 {gate['candidate_score']:.4f} on 1500 fresh rows; no champion yet" in (
        description
    )
    assert description in log
    # the training run: named and tagged by DAG, task and day; its experiment opens as model training
    run = client.get_run(gate["evaluation_artifacts"].split("/")[1])
    assert run.info.run_name == "train_dag.train 2026-01-08"
    assert run.data.tags["airflow.dag_id"] == "train_dag" and run.data.tags["airflow.task_id"] == "train"
    assert run.data.tags["airflow.logical_date"] == "2026-01-08T00:00:00+00:00"
    assert run.data.tags["airflow.run_id"].startswith("manual__")
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"

    frame = _flipped(dataset)
    frame["minutes"] = frame["minutes"] * 3  # drifted, and the label relation flipped: decay too
    current = _write(tmp_path, "story", frame)
    outlet = Asset(name="retrain", uri="x-mlops-signal://churn_story/retrain")
    context = {**task_context(tmp_path), "outlet_events": _Events()}
    result = DriftSensor(
        task_id="drift",
        current_uri=current,
        registered_model_name=name,
        mlflow_conn_id=mlflow_conn,
        report_uri=(tmp_path / "story-report").as_uri(),
        outlets=[outlet],
        decay=Decay(label_column="churned", metric="accuracy", max_drop=0.1),
    ).poke(context)
    line = result.xcom_value["summary"]
    accuracy = result.xcom_value["accuracy"]
    psi = next(
        f["psi"]
        for f in json.loads((tmp_path / "story-report" / "report.json").read_text())["features"]
        if f["name"] == "minutes"
    )
    assert line.startswith(f"Decay on 2026-01-08: 1500 rows vs {name} v{version}'s reference")
    assert f"minutes (psi {psi:.3g}" in line
    assert f"accuracy {accuracy['current']:.4f} vs baseline {accuracy['baseline']:.4f}" in line
    assert "interval of the worsening" in line
    assert line in capsys.readouterr().out
    assert context["outlet_events"][outlet].extra["summary"] == line
    # the drift check's run too
    (check,) = client.search_runs(
        [client.get_experiment_by_name(f"{name}-monitoring").experiment_id],
        "tags.`mlops.kind` = 'drift-check'",
    )
    assert check.info.run_name == "train_dag.train 2026-01-08"
    assert check.data.tags["airflow.task_id"] == "train"
