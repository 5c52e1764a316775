"""
The verdict: what a system ended with (:func:`snapshot`), the chaos run against the clean run
(:func:`compare`), which task absorbed each fault (:func:`absorb`) and the printed table.

Compared (a difference in any of these is a defect): the warehouse tables (row count, distinct keys,
sha256 of the sorted rows), the lake's Delta tables (sha256 of the sorted rows of the latest
version: content, not file layout), the Mongo collection (sha256 of the sorted documents without
``_id``), the registry (versions, aliases, each version's training / evaluation data digests and
completion), the champion the model server reports (``/version``) and its predictions for the
newest day's customers, each day's drift verdict and promotion decision. Reported, not judged: the
Delta version numbers (a retried commit may add one) and the Delta versions pinned in the version
tags (the digests of the rows are what is judged), and the model files' sha256 (skops names the
entries of its zip after object ids and stamps them with the time they were written: two trainings
of the same model on the same rows differ there; their predictions are judged).
"""

from __future__ import annotations

import fnmatch
import hashlib
from typing import Any

from tests.chaos.plan import Planned

KEYS = {"activity": ("customer_id", "day"), "customers": ("customer_id",)}


def _sha(rows: list[Any]) -> str:
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def snapshot(system: Any, days: list[Any]) -> dict[str, Any]:
    """Everything the comparison looks at, read from the servers directly (not through the proxies)."""
    import psycopg

    out: dict[str, Any] = {"warehouse": {}, "lake": {}, "mongo": {}, "registry": {}, "served": {}, "days": []}
    with psycopg.connect(system.dsn("warehouse")) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"
            )
        ]
        for table in tables:
            rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
            keys = KEYS.get(table)
            distinct = (
                conn.execute(f'SELECT count(DISTINCT ({", ".join(keys)})) FROM "{table}"').fetchone()[0]
                if keys
                else len(set(rows))
            )
            out["warehouse"][table] = {
                "count": len(rows),
                "distinct_keys": distinct,
                "sha256": _sha(sorted(tuple(map(_plain, r)) for r in rows)),
            }
    out["lake"] = _lake(system)
    out["mongo"] = _mongo(system)
    out["registry"] = _registry(system.mlflow_uri())
    out["served"] = _served(system)
    for day in days:
        out["days"].append(
            {
                "day": day.day,
                "states": day.states,
                "verdict": day.verdict,
                "decision": day.decision,
                "error": day.error,
            }
        )
    return out


def _served(system: Any) -> dict[str, Any]:
    """What the model server says it serves, and what it predicts for the newest day's customers."""
    import psycopg
    import requests
    from psycopg.rows import dict_row

    url = system.model_server_url
    try:
        answer = requests.get(f"{url}/version", timeout=10)
    except requests.RequestException as err:
        return {"status": f"unreachable: {type(err).__name__}"}
    if answer.status_code != 200:
        return {"status": answer.status_code}
    body = answer.json()
    inputs = [str(i["name"]) for i in body.get("inputs") or []]
    with psycopg.connect(system.dsn("warehouse"), row_factory=dict_row) as conn:
        rows = conn.execute(
            "SELECT * FROM activity a JOIN customers c USING (customer_id) "
            "WHERE a.day = (SELECT max(day) FROM activity) ORDER BY customer_id"
        ).fetchall()
    records = [{c: _plain(r[c]) for c in inputs if c in r} for r in rows]
    predicted = requests.post(f"{url}/invocations", json={"dataframe_records": records}, timeout=60)
    predictions = predicted.json().get("predictions") if predicted.status_code == 200 else None
    return {
        "status": 200,
        "version": body.get("version"),
        "model_sha256": body.get("sha256"),  # reported only (see REPORTED_ONLY)
        "predictions": {"status": predicted.status_code, "rows": len(records), "sha256": _sha(predictions)},
    }


def _lake(system: Any) -> dict[str, Any]:
    from deltalake import DeltaTable

    s3 = system.srv.s3
    options = {
        "AWS_ENDPOINT_URL": s3.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "AWS_REGION": s3.region,
        "AWS_ALLOW_HTTP": "true",
    }
    found = {}
    for table in ("activity",):
        uri = f"{system.prefix}/lake/{table}"
        try:
            delta = DeltaTable(uri, storage_options=options)
        except Exception as err:
            found[table] = {"error": f"{type(err).__name__}: {err}"[:200]}
            continue
        rows = delta.to_pyarrow_table().to_pylist()
        keys = KEYS[table]
        found[table] = {
            "count": len(rows),
            "distinct_keys": len({tuple(str(r[k]) for k in keys) for r in rows}),
            "sha256": _sha(sorted(repr(sorted(r.items())) for r in rows)),
            "version": delta.version(),
        }
    return found


def _mongo(system: Any) -> dict[str, Any]:
    import pymongo

    # Every collection: a staging collection a killed write left behind is a difference too.
    found: dict[str, Any] = {}
    with pymongo.MongoClient(system.srv.mongo.uri, serverSelectionTimeoutMS=5000) as client:
        database = client[system.mongo_db]
        for name in sorted(database.list_collection_names()):
            docs = list(database[name].find({}, {"_id": 0}))
            texts = sorted(repr(sorted(d.items())) for d in docs)
            keys = KEYS.get(name)
            distinct = {tuple(repr(d.get(k)) for k in keys) for d in docs} if keys else set(texts)
            found[name] = {"count": len(docs), "distinct_keys": len(distinct), "sha256": _sha(texts)}
    return found


def _registry(tracking_uri: str) -> dict[str, Any]:
    import mlflow

    from airflow_provider_mlops.ml import tags as T

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    try:
        versions = client.search_model_versions("name='churn_model'")
    except Exception as err:
        return {"error": str(err)[:200]}
    aliases: dict[str, list[str]] = {}
    for alias, version in (client.get_registered_model("churn_model").aliases or {}).items():
        aliases.setdefault(str(version), []).append(alias)
    out = {}
    for v in sorted(versions, key=lambda v: int(v.version)):
        t = v.tags or {}
        out[str(v.version)] = {
            "aliases": sorted(aliases.get(str(v.version), [])),
            "training_data_digest": t.get(T.TAG_TRAINING_DATA_DIGEST),
            "evaluation_data_digest": t.get(T.TAG_EVALUATION_DATA_DIGEST),
            "model_sha256": t.get(T.TAG_SHA256),  # reported only (see REPORTED_ONLY)
            "complete": t.get(T.TAG_COMPLETE),
            "not_promoted": bool(t.get(T.TAG_NOT_PROMOTED)),
            # reported only: a retried commit may move the Delta version of the same rows
            "training_data_version": t.get(T.TAG_TRAINING_DATA_VERSION),
            "evaluation_data_version": t.get(T.TAG_EVALUATION_DATA_VERSION),
        }
    return out


# Reported, not judged: Delta version numbers (a retried commit may add one; the rows' digests are
# judged) and model file digests (skops names its zip entries after object ids and stamps their
# write time; the served champion's predictions on the newest day are judged instead).
# Full paths (fnmatch patterns): the served model's ``version`` is judged, the lake table's is not.
REPORTED_ONLY = (
    "lake.*.version",
    "registry.*.training_data_version",
    "registry.*.evaluation_data_version",
    "registry.*.model_sha256",
    "served.model_sha256",
)


def compare(clean: dict[str, Any], chaos: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(differences, notes): a note is a reported-only field that differs."""
    differences: list[str] = []
    notes: list[str] = []

    def walk(path: str, a: Any, b: Any) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=str):
                walk(f"{path}.{key}" if path else str(key), a.get(key, "<missing>"), b.get(key, "<missing>"))
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                walk(f"{path}[{i}]", x, y)
        elif a != b:
            line = f"{path}: clean {a!r} / chaos {b!r}"
            reported_only = any(fnmatch.fnmatchcase(path, pattern) for pattern in REPORTED_ONLY)
            (notes if reported_only else differences).append(line)

    walk("", clean, chaos)
    return differences, notes


def rows_lost_duplicated(clean: dict[str, Any], chaos: dict[str, Any]) -> tuple[int, int]:
    lost = duplicated = 0
    for area in ("warehouse", "lake", "mongo"):
        for table, c in chaos.get(area, {}).items():
            ref = clean.get(area, {}).get(table, {})
            if "count" in c and "count" in ref:
                duplicated += c["count"] - c["distinct_keys"]
                lost += max(0, ref["distinct_keys"] - c["distinct_keys"])
    return lost, duplicated


def absorb(plan: list[Planned], days: list[Any]) -> None:
    """
    Which task absorbed each fired fault, from the tries the REST API reports: a try that was running
    when it fired and did not succeed (then ``retry``: a later try succeeded, or the task failed:
    ``refusal`` when it failed without using its retries), else the tries running then, which
    succeeded (absorbed inside the task: a client retry, a reconnect).
    """
    for planned in plan:
        if not planned.fired or planned.day >= len(days):
            continue
        at = planned.injection.at
        tries = days[planned.day].tries
        running = [
            t
            for t in tries
            if t["start"] is not None and t["start"] - 1 <= at <= (t["end"] or float("inf")) + 1
        ]
        failed = [t for t in running if t["state"] != "success"]
        own = [t for t in running if t["task_id"] == planned.task]
        preferred = [t for t in failed if t["task_id"] == planned.task]
        if not own:  # a fault at a moment no named task had: whichever try of its DAG failed then
            preferred = [t for t in failed if t["dag_id"] == planned.dag] or failed
        if preferred:
            t = preferred[0]
            name = f"{t['dag_id']}.{t['task_id']}"
            if t["final_state"] == "success":
                planned.absorbed_by, planned.how = name, f"retry (try {t['try_number']} {t['state']})"
            else:
                planned.absorbed_by, planned.how = name, f"refusal: the task ended {t['final_state']}"
        elif running:
            ours = (
                [t for t in running if t["task_id"] == planned.task]
                or [t for t in running if t["dag_id"] == planned.dag]
                or running
            )
            planned.absorbed_by = ", ".join(sorted({t["task_id"] for t in ours}))
            planned.how = "in the task (client retry / reconnect), no failed try"
        else:
            planned.how = "between tasks (no try was running)"


def retried_tasks(days: list[Any]) -> int:
    return len(
        {(d.index, t["dag_id"], t["task_id"]) for d in days for t in d.tries if (t["try_number"] or 1) > 1}
    )


def table(plan: list[Planned]) -> str:
    head = f"{'day':>3}  {'kind':<18} {'moment':<55} {'fired':<5}  absorbed by / how"
    lines = [head, "-" * len(head)]
    for p in plan:
        lines.append(
            f"{p.day + 1:>3}  {p.kind:<18} {p.moment[:55]:<55} {'yes' if p.fired else 'NO':<5}  "
            + (f"{p.absorbed_by}: {p.how}" if p.fired else "")
        )
        if p.fired and p.injection.detail:
            lines.append(f"{'':>5}{'':<18} {p.injection.detail[:100]}")
    return "\n".join(lines)
