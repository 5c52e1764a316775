"""A drift report as one self-contained HTML page (inline CSS and SVG, no script, no network)."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


def _bars(
    reference: Sequence[float],
    current: Sequence[float],
    labels: Sequence[str],
    *,
    feature: str = "",
    edges: Sequence[float] | None = None,
) -> str:
    """
    Side-by-side bars of reference (grey) vs current (blue) shares, as inline SVG, with both axes
    labelled: the share of rows (0% to the top tick) and the feature's bins (numeric: the bin edges;
    the outer bins are open-ended) or categories.
    """
    import math

    width, height = 380, 170
    left, right, top_pad, bottom = 46, 10, 10, 44
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    base = top_pad + plot_h
    n = max(len(reference), len(current), 1)
    top = max([*reference, *current, 1e-9])
    tick = min(math.ceil(top * 100) / 100, 1.0)
    slot = plot_w / n
    bar = max(slot / 2 - 1, 1)
    parts = [
        f'<svg class="hist" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">'
    ]
    for i in range(n):
        x = left + i * slot
        for j, (values, color) in enumerate(((reference, "#9e9e9e"), (current, "#1f77b4"))):
            value = values[i] if i < len(values) else 0.0
            h = plot_h * value / tick
            parts.append(
                f'<rect x="{x + j * bar:.1f}" y="{base - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{color}"><title>{html.escape(str(labels[i] if i < len(labels) else i))}: '
                f"{'reference' if j == 0 else 'current'} {value:.1%}</title></rect>"
            )
    # the axes, their ticks and their titles
    parts.append(
        f'<line x1="{left}" y1="{base}" x2="{width - right}" y2="{base}" stroke="#555"/>'
        f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{base}" stroke="#555"/>'
        f'<text x="{left - 4}" y="{base}" font-size="9" text-anchor="end">0%</text>'
        f'<text x="{left - 4}" y="{top_pad + 8}" font-size="9" text-anchor="end">{tick:.0%}</text>'
        f'<text transform="translate(11,{top_pad + plot_h / 2:.0f}) rotate(-90)" font-size="9" '
        f'text-anchor="middle">share of rows</text>'
    )
    if edges:
        # bin i is [edge i-1, edge i): edge i sits between slot i and slot i + 1
        shown = list(range(len(edges))) if len(edges) <= 6 else [0, len(edges) // 2, len(edges) - 1]
        for k in shown:
            parts.append(
                f'<text x="{left + (k + 1) * slot:.1f}" y="{base + 12}" font-size="9" '
                f'text-anchor="middle">{html.escape(f"{edges[k]:.3g}")}</text>'
            )
        caption = f"{feature} (bin edges)"
    else:
        chars = max(int(slot / 5.2), 3)
        for i, label in enumerate(labels[:n]):
            text = label if len(label) <= chars else label[: chars - 1] + "\u2026"
            parts.append(
                f'<text x="{left + (i + 0.5) * slot:.1f}" y="{base + 12}" font-size="9" '
                f'text-anchor="middle">{html.escape(text)}</text>'
            )
        caption = f"{feature} (category)"
    parts.append(
        f'<text x="{left + plot_w / 2:.0f}" y="{height - 6}" font-size="10" text-anchor="middle">'
        f"{html.escape(caption)}</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def _labels(histogram: Mapping[str, Any]) -> list[str]:
    if "categories" in histogram:
        return [str(c) for c in histogram["categories"]]
    edges = histogram.get("edges") or []
    bounds = ["-inf", *[f"{e:.3g}" for e in edges], "+inf"]
    return [f"[{bounds[i]}, {bounds[i + 1]})" for i in range(len(bounds) - 1)]


def _categories(histogram: Mapping[str, Any]) -> str:
    """``new: a, b; missing: c`` for a categorical feature (with how many more when cut)."""
    parts = []
    new = "new or among the reference's rarest" if histogram.get("new_may_be_other") else "new"
    for key, label in (("new_categories", new), ("missing_categories", "missing")):
        names = [str(c) for c in histogram.get(key) or []]
        if not names:
            continue
        more = int(histogram.get(key.split("_")[0] + "_count", len(names))) - len(names)
        parts.append(f"{label}: {', '.join(names)}" + (f" (+{more} more)" if more > 0 else ""))
    return "; ".join(parts)


def _decay(decay: Mapping[str, Any]) -> str:
    """The accuracy line: the metric, its baseline, and the verdict said once."""

    def number(value: Any) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    if decay.get("decayed"):
        verdict = f"<b>decayed</b>: {html.escape(str(decay.get('reason', '')))}"
    else:
        reason = str(decay.get("reason") or "")
        verdict = "within limits" + (
            f" ({html.escape(reason)})" if reason and reason != "within limits" else ""
        )
    return (
        f"<p><b>Model {html.escape(str(decay.get('metric')))}</b> on current data: "
        f"{number(decay.get('current'))} (baseline {number(decay.get('baseline'))}) &mdash; {verdict}</p>"
    )


def _compared(report: Mapping[str, Any]) -> tuple[str, str]:
    """
    What the report compares, for its title and its first lines: the model version and the
    reference profile, then the current data's day(s), rows and location. A field the check did not
    record is said to be missing, not guessed.
    """
    source = report.get("reference") or {}
    model = ""
    if source.get("model") and source.get("version") is not None:
        model = f"{source['model']} version {source['version']}"
        run = f" (MLflow run {source['run_id']})" if source.get("run_id") else ""
        reference = f"the training-data profile logged with {model}{run}"
        trained = source.get("training_data") or {}
        if trained.get("uris"):  # the exact rows (Delta versions) the profile was computed from
            reference += f", computed from {', '.join(trained['uris'])}"
    elif source.get("uri"):
        reference = f"reference profile {source['uri']}"
    else:
        reference = "reference profile not recorded"
    day = report.get("data_day")
    if isinstance(day, list | tuple) and len(day) > 1 and day[0] != day[-1]:
        when = f"data days {day[0]} to {day[-1]}"
    elif isinstance(day, list | tuple) and day:
        when = f"data day {day[0]}"
    elif day:
        when = f"data day {day}"
    else:
        logical = report.get("logical_date")
        when = "data day not recorded" + (f" (the check's logical date: {logical})" if logical else "")
    rows = report.get("rows")
    where = report.get("current_uri")
    if where and report.get("current_version") is not None:
        where = f"{where}@v{report['current_version']}"
    data = when + (f", {rows:,} rows" if isinstance(rows, int) else "") + (f" from {where}" if where else "")
    short = (f"{model} vs " if model else "") + (when.split(" (")[0] if day else "the current data")
    lines = (
        f"<p><b>Model:</b> {html.escape(model)}</p>" if model else ""
    ) + f"<p><b>Reference:</b> {html.escape(reference)}</p><p><b>Current:</b> {html.escape(data)}</p>"
    return short, lines


def render_html(report: Mapping[str, Any], *, title: str = "Data drift report") -> str:
    """
    The report as a self-contained HTML page: what it compares (model version, reference profile,
    data day), the verdict, the per-feature table and histograms with labelled axes.
    """
    subject, compared = _compared(report)
    verdict = "DRIFT DETECTED" if report.get("drift") else "no drift"
    color = "#c62828" if report.get("drift") else "#2e7d32"
    decay = report.get("accuracy")
    rows = []
    for feature in report.get("features", []):
        hist = feature.get("histogram") or {}
        chart = (
            _bars(
                hist.get("reference", []),
                hist.get("current", []),
                _labels(hist),
                feature=str(feature["name"]),
                edges=None if "categories" in hist else hist.get("edges"),
            )
            if hist
            else ""
        )

        def fmt(value: Any) -> str:
            return (
                ""
                if value is None
                else f"{value:.4g}"
                if isinstance(value, float)
                else html.escape(str(value))
            )

        rows.append(
            "<tr class='{cls}'><td>{name}</td><td>{kind}</td><td>{drifted}</td><td>{method}</td><td>{psi}</td>"
            "<td>{dist}</td><td>{p}</td><td>{miss}</td><td>{reasons}</td><td>{chart}</td></tr>".format(
                cls="drifted" if feature.get("drifted") else "",
                name=html.escape(str(feature["name"])),
                kind=html.escape(str(feature["kind"])),
                drifted="yes" if feature.get("drifted") else "no",
                method=html.escape(str(feature.get("method", ""))),
                psi=fmt(feature.get("psi")),
                dist=fmt(feature.get("distance")),
                p=fmt(feature.get("p_value")),
                miss=f"{feature.get('missing_reference', 0):.1%} &rarr; {feature.get('missing_current', 0):.1%}",
                reasons=html.escape(
                    "; ".join(r for r in [*(feature.get("reasons") or []), _categories(hist)] if r)
                ),
                chart=chart,
            )
        )
    decay_html = ""
    if decay:
        decay_html = _decay(decay)
        if decay.get("confidence"):
            decay_html += f"<p>How sure: {html.escape(str(decay['confidence']))}</p>"
    for note in report.get("notes") or []:
        decay_html += f"<p>Note: {html.escape(str(note))}</p>"
    if report.get("excluded"):
        decay_html += f"<p>Left out of drift: {html.escape(', '.join(report['excluded']))}</p>"
    retrain = report.get("retrain")
    if retrain:
        state = "<b>held</b>" if retrain.get("held") else "requested"
        decay_html += f"<p>Retraining {state}: {html.escape(str(retrain.get('reason', '')))}</p>"
    meta = html.escape(
        f"{report.get('rows', 0):,} current rows; {len(report.get('drifted_features', []))} of "
        f"{len(report.get('features', []))} features drifted ({report.get('drifted_share', 0):.0%}); "
        f"decided by {report.get('method', '')}"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: -apple-system, Segoe UI, Roboto, sans-serif; margin: 24px; color: #222; }}
h1 {{ font-size: 22px; }} .verdict {{ color: {color}; font-weight: bold; }}
table {{ border-collapse: collapse; font-size: 13px; }} th, td {{ border: 1px solid #ddd; padding: 4px 8px; vertical-align: middle; }}
th {{ background: #f5f5f5; text-align: left; }} tr.drifted td {{ background: #fff3f3; }}
.legend span {{ display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; vertical-align: middle; }}
</style></head><body>
<h1>{html.escape(title)}: {html.escape(subject)}: <span class="verdict">{verdict}</span></h1>
{compared}
<p>{meta}</p>
<p>Top features: {html.escape(", ".join(report.get("top_features", [])))}</p>
{decay_html}
<p class="legend">Histograms (share of rows per bin or category):<span style="background:#9e9e9e"></span>reference<span style="background:#1f77b4"></span>current; a numeric feature's outer bins are open-ended (below the first edge, from the last edge up)</p>
<table><thead><tr><th>feature</th><th>kind</th><th>drift</th><th>decided by</th><th>PSI</th><th>distance</th>
<th>p-value</th><th>missing</th><th>reasons</th><th>reference vs current</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>
</body></html>
"""
