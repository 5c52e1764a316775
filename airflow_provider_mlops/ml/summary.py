"""
One line per decision, for people: what the drift check found, why a retrain was held, what the
promotion gate decided, with the numbers it decided on.

The same text goes where people look: the task log, the retrain Asset event's ``extra``
(``summary``) and the MLflow model version's description. Plain functions over the reports and
decisions the ml modules already return; no Airflow, no MLflow.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_provider_mlops.ml.promotion import Decision

#: how many drifted features a line names (the report lists them all)
MAX_FEATURES = 5


def _number(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3g}"


def feature_statistic(feature: Mapping[str, Any]) -> str:
    """A drifted feature and the statistic that decided it: ``age (psi 0.41, distance 0.32)``."""
    name = feature["name"]
    if feature.get("method") == "absent":
        return f"{name} (column missing)"
    parts = []
    if "p-value" in str(feature.get("method") or "") and feature.get("p_value") is not None:
        parts.append(f"p {_number(feature['p_value'])}")
    for key in ("psi", "distance"):
        if feature.get(key) is not None:
            parts.append(f"{key} {_number(feature[key])}")
    if not parts and feature.get("missing_p_value") is not None:
        parts.append(f"missing share p {_number(feature['missing_p_value'])}")
    return f"{name} ({', '.join(parts)})" if parts else name


def reference_text(reference: Mapping[str, Any] | None) -> str:
    """What the data is compared with: ``churn v3`` or the profile's URI."""
    reference = reference or {}
    if reference.get("version") is not None:
        return f"{reference.get('model')} v{reference['version']}"
    return str(reference.get("profile") or "the reference profile")


def data_day_text(report: Mapping[str, Any]) -> str:
    """The check's day, and the days its rows hold when known: ``2026-01-08 (rows of 2026-01-07..2026-01-08)``."""
    day = str(report.get("logical_date") or "") or "an unrecorded day"
    span = report.get("data_day")
    if span and len(span) == 2 and span[0] != span[1]:
        return f"{day} (rows of {span[0]}..{span[1]})"
    if span:
        return f"{day} (rows of {span[0]})"
    return day


def decay_line(accuracy: Mapping[str, Any] | None) -> str | None:
    """The champion's metric on the current rows vs its baseline, with the uncertainty; None without a check."""
    if not accuracy:
        return None
    verdict = "decayed" if accuracy.get("decayed") else "no decay"
    text = f"{verdict}: {accuracy.get('confidence')}"
    if accuracy.get("decayed"):
        text += f" ({accuracy.get('reason')})"
    return text


def drift_line(report: Mapping[str, Any]) -> str:
    """
    The drift check's verdict in one line: the data day, the rows, the reference model version,
    the drifted features with their statistic and the accuracy decay (both values and the interval).
    """
    features = {f["name"]: f for f in report.get("features") or []}
    drifted = list(report.get("drifted_features") or [])
    named = [feature_statistic(features.get(n, {"name": n})) for n in drifted[:MAX_FEATURES]]
    more = f" and {len(drifted) - MAX_FEATURES} more" if len(drifted) > MAX_FEATURES else ""
    drifted_set, decayed = (
        bool(report.get("dataset_drift")),
        bool((report.get("accuracy") or {}).get("decayed")),
    )
    verdict = {(True, True): "Drift and decay", (True, False): "Drift", (False, True): "Decay"}.get(
        (drifted_set, decayed), "No drift"
    )
    share = float(report.get("drifted_share") or 0.0)
    text = (
        f"{verdict} on {data_day_text(report)}: {report.get('rows')} rows vs {reference_text(report.get('reference'))}'s "
        f"reference; {len(drifted)} of {len(features) or len(drifted)} features drifted ({share:.0%}"
        f"{', dataset drift' if report.get('dataset_drift') else ''})"
    )
    if named:
        text += ": " + ", ".join(named) + more
    decay = decay_line(report.get("accuracy"))
    if decay:
        text += f"; {decay}"
    return text


def held_line(report: Mapping[str, Any], reason: str) -> str:
    """A drift check whose retrain request is held by the cool-down."""
    return f"Retraining held ({reason}); {drift_line(report)}"


def promotion_line(
    decision: Decision,
    *,
    model: str,
    candidate: str,
    champion: str | None,
    metric: str,
    scores: Mapping[str, float],
    rows: str,
    by: str | None = None,
) -> str:
    """
    The promotion gate's decision: candidate vs champion on the same rows, the margin and the
    verdict (``decision.reason`` holds the scores, the gain, what it had to exceed and the test);
    ``by`` names who decided and when (``dag.task at 2026-01-08T00:00:00+00:00``).
    """
    verdict = ("Promoted" if decision.promote else "Not promoted") + (f" by {by}" if by else "")
    if champion is None or "champion" not in scores:
        return (
            f"{verdict}: {model} v{candidate}: {metric} {scores['candidate']:.4f} on {rows}; "
            f"{decision.reason}"
        )
    return f"{verdict}: {model} v{candidate}: {decision.reason}"
