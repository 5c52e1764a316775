"""
The profile's warnings: unsupported type, empty, constant, many missing, high cardinality, not summarised,
case variants, skewed, infinite, leakage, duplicates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_mlops.ml.eda.options import ProfileOptions


def _warnings(
    summaries: list[dict[str, Any]],
    relations: dict[str, Any] | None,
    duplicates: dict[str, Any],
    options: ProfileOptions,
    target: str | None,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def warn(kind: str, column: str | None, message: str) -> None:
        out.append({"kind": kind, "column": column, "message": message})

    for c in summaries:
        name = c["name"]
        if c.get("error"):
            warn(
                "unsupported",
                name,
                f"type {c['type']} could not be summarised ({c['error']}): only its missing count is reported",
            )
            continue
        if c["rows"] and c["non_missing"] == 0:
            warn("empty", name, "every value is missing")
            continue
        if c["distinct"] == 1:
            warn("constant", name, f"a single value in {c['non_missing']:,} rows")
        if c["missing_share"] >= options.many_missing:
            warn("many_missing", name, f"{c['missing_share']:.1%} missing")
        if c["kind"] == "categorical" and c["distinct"] > options.high_cardinality:
            unique = c["distinct"] >= c["non_missing"] and c["non_missing"] > 1
            warn(
                "high_cardinality",
                name,
                f"{c['distinct']:,} distinct values"
                + (" (every value unique: an identifier?)" if unique else ""),
            )
        if c["kind"] == "other":
            warn(
                "not_summarised",
                name,
                f"type {c['type']}: only missing, distinct and duplicate counts (no distribution)",
            )
        variants = _case_variants(c.get("top") or [])
        if variants:
            warn(
                "case_variants",
                name,
                "values that differ only in case or surrounding whitespace: "
                + "; ".join(" / ".join(repr(v) for v in group) for group in variants[:3]),
            )
        skew = c.get("skewness")
        if skew is not None and abs(skew) > options.heavy_skew:
            warn("skewed", name, f"skewness {skew:.2f}")
        if c.get("pos_inf") or c.get("neg_inf"):
            warn("infinite", name, f"{c.get('pos_inf', 0) + c.get('neg_inf', 0):,} infinite values")
    if relations:
        for entry in relations["features"]:
            score = entry.get("score")
            if score is not None and score >= options.leakage:
                warn(
                    "leakage",
                    entry["feature"],
                    f"almost perfectly predicts the target {target!r} ({entry['method']}: {score:.3f}): "
                    "is it known at prediction time?",
                )
    if duplicates["rows"]:
        warn(
            "duplicates",
            None,
            f"{duplicates['rows']:,} duplicate rows ({duplicates['share']:.1%})"
            + ("" if duplicates["exact"] else ", estimated"),
        )
    return out


def _case_variants(top: list[dict[str, Any]]) -> list[list[str]]:
    """Groups of the most frequent text values equal after ``strip().casefold()`` ("True" / "true ")."""
    groups: dict[str, list[str]] = {}
    for entry in top:
        value = entry["value"]
        if isinstance(value, str):
            groups.setdefault(value.strip().casefold(), []).append(value)
    return [sorted(g) for g in groups.values() if len(g) > 1]
