"""
Promotion and rollback, decided without Airflow or MLflow: scores in, a :class:`Decision` out.

:func:`decide` applies a :class:`~airflow_provider_mlops.ml.specs.Gate` to the candidate's and the
champion's scores on the same fresh rows: the candidate wins when its gain is strictly above the
margin (``min_delta``, or the gain's standard error on these rows), so a tie (an identical retrain)
keeps the champion; with a paired test the gain must also be significant. :class:`Outcome` is what
DeployModelOperator and RollbackModelOperator return (XCom), one shape for every path.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_mlops.ml.specs import Gate
    from airflow_provider_mlops.ml.stats import Predictions


@dataclass(frozen=True)
class Decision:
    """Whether the candidate replaces the champion, why, and the paired test when one ran."""

    promote: bool
    reason: str
    test: dict[str, Any] | None = None


def decide(
    gate: Gate,
    candidate_score: float,
    champion_score: float | None,
    *,
    champion: str | None = None,
    rows: str = "the fresh rows",
    predictions: dict[str, Predictions] | None = None,
) -> Decision:
    """
    Apply ``gate`` to the scores of the candidate and the champion (``champion`` its version) on the
    same rows (``rows`` describes them in the reason). ``predictions`` (``{"candidate": ...,
    "champion": ...}``) is needed when ``gate.needs_predictions``.
    """
    from airflow_provider_mlops.ml.stats import LOWER_IS_BETTER

    if champion_score is None:
        return Decision(True, "no champion yet")
    lower = gate.metric in LOWER_IS_BETTER
    gain = (champion_score - candidate_score) if lower else (candidate_score - champion_score)
    margin, why = _margin(gate, predictions or {})
    promote = gain > margin  # strict: a tie must not swap the champion
    reason = (
        f"{gate.metric} {candidate_score:.4f} vs champion v{champion} {champion_score:.4f} on "
        f"{rows}: {'better' if promote else 'not better'} by {gain:+.4f} (must exceed {why})"
    )
    if not gate.paired_test:
        return Decision(promote, reason)
    from airflow_provider_mlops.ml.stats import paired_test

    test = paired_test(
        gate.metric,
        _paired(predictions, "candidate"),
        _paired(predictions, "champion"),
        method=gate.paired_test,
        min_delta=margin,
        n_boot=gate.n_bootstrap,
    )
    significant = test["p_value"] < gate.alpha
    interval = (
        f", 95% interval of the gain [{test['gain_low']:+.4f}, {test['gain_high']:+.4f}]"
        if "gain_low" in test
        else f", {test['wins']} rows only the candidate gets right vs {test['losses']}"
    )
    reason += (
        f"; paired {test['method']} test p = {test['p_value']:.3g}{interval}: "
        f"{'significant' if significant else 'not significant'} at {gate.alpha}"
    )
    return Decision(promote and significant, reason, test)


def _paired(predictions: dict[str, Predictions] | None, role: str) -> Predictions:
    if not predictions or role not in predictions:
        raise ValueError(f"the gate needs the {role}'s predictions on the same rows")
    return predictions[role]


def _margin(gate: Gate, predictions: dict[str, Predictions]) -> tuple[float, str]:
    """How much the candidate must gain: ``min_delta``, or the gain's standard error on these rows."""
    if gate.min_delta != "uncertainty":
        return float(gate.min_delta), f"min_delta {gate.min_delta}"
    from airflow_provider_mlops.ml.stats import paired_test

    spread = paired_test(
        gate.metric,
        _paired(predictions, "candidate"),
        _paired(predictions, "champion"),
        method="bootstrap",
        n_boot=gate.n_bootstrap,
    )
    se = spread["gain_se"]
    return se, f"the gain's standard error {se:.4f} ({spread['resamples']} paired bootstrap resamples)"


@dataclass(frozen=True)
class Outcome:
    """
    What a deployment task did (its XCom, as :meth:`as_dict`).

    ``evaluation_artifacts`` is the ``runs:/`` folder of the candidate's MLflow run holding the
    evaluation plots of the candidate and the champion on the fresh rows.
    """

    promoted: bool
    champion_version: str | None
    candidate_version: str | None
    previous_champion: str | None
    metric: str | None
    reason: str
    candidate_score: float | None = None
    champion_score: float | None = None
    published_uri: str | None = None
    targets: tuple[dict[str, Any], ...] = ()
    test: dict[str, Any] | None = None
    evaluation_artifacts: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["targets"] = list(self.targets)
        return out
