"""The data profile as one self-contained HTML page (inline CSS and SVG, no script, no network)."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

_BLUE = "#1f77b4"


def _e(value: Any) -> str:
    """Any value from the data, escaped for text and attributes alike."""
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return _e(value)


def _histogram(hist: Mapping[str, Any]) -> str:
    counts: Sequence[int] = hist.get("counts") or []
    edges: Sequence[float] = hist.get("edges") or []
    width, height, pad = 300, 90, 12
    n = max(len(counts), 1)
    top = max([*counts, 1])
    slot = (width - 2 * pad) / n
    parts = [
        f'<svg class="hist" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">'
    ]
    for i, count in enumerate(counts):
        h = (height - 2 * pad) * count / top
        label = f"[{edges[i]:.4g}, {edges[i + 1]:.4g}]" if i + 1 < len(edges) else str(i)
        parts.append(
            f'<rect x="{pad + i * slot:.1f}" y="{height - pad - h:.1f}" width="{max(slot - 1, 1):.1f}" '
            f'height="{h:.1f}" fill="{_BLUE}"><title>{_e(label)}: {count:,}</title></rect>'
        )
    parts.append(
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#555"/>'
    )
    if edges:
        parts.append(
            f'<text x="{pad}" y="{height - 1}" font-size="9">{_e(f"{edges[0]:.4g}")}</text>'
            f'<text x="{width - pad}" y="{height - 1}" font-size="9" text-anchor="end">'
            f"{_e(f'{edges[-1]:.4g}')}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _top_bars(top: Sequence[Mapping[str, Any]], rows: int) -> str:
    width, row_h = 300, 14
    height = row_h * max(len(top), 1) + 4
    biggest = max([t["count"] for t in top] + [1])
    parts = [f'<svg class="top" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">']
    for i, item in enumerate(top):
        w = 100 * item["count"] / biggest  # leaves room for "100.0%" after the longest bar
        label = str(item["value"])
        shown = (label[:24] + "\u2026") if len(label) > 25 else label
        share = item["count"] / rows if rows else 0.0
        parts.append(
            f'<text x="0" y="{i * row_h + 11}" font-size="10">{_e(shown) if shown else "(empty string)"}</text>'
            f'<rect x="150" y="{i * row_h + 2}" width="{w:.1f}" height="{row_h - 4}" fill="{_BLUE}">'
            f"<title>{_e(label)}: {item['count']:,}</title></rect>"
            f'<text x="{154 + w:.1f}" y="{i * row_h + 11}" font-size="9">{share:.1%}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _heatmap(names: Sequence[str], matrix: Sequence[Sequence[float | None]], *, signed: bool) -> str:
    cell, label = 16, 130
    n = len(names)
    size = label + cell * n
    parts = [f'<svg class="heat" viewBox="0 0 {size} {size}" width="{size}" height="{size}" role="img">']
    for i, name in enumerate(names):
        short = name[:20] + ("\u2026" if len(name) > 20 else "")
        parts.append(
            f'<text x="{label - 4}" y="{label + i * cell + 12}" font-size="10" text-anchor="end">{_e(short)}</text>'
        )
        parts.append(
            f'<text transform="translate({label + i * cell + 12},{label - 4}) rotate(-60)" font-size="10">{_e(short)}</text>'
        )
        for j, value in enumerate(matrix[i]):
            if value is None:
                color = "#eeeeee"
            elif signed and value < 0:
                color = f"rgb(255,{int(255 * (1 + value))},{int(255 * (1 + value))})"
            else:
                v = abs(value)
                color = f"rgb({int(255 * (1 - v))},{int(255 * (1 - 0.55 * v))},255)"
            text = "n/a" if value is None else f"{value:.2f}"
            parts.append(
                f'<rect x="{label + j * cell}" y="{label + i * cell}" width="{cell - 1}" height="{cell - 1}" '
                f'fill="{color}"><title>{_e(name)} / {_e(names[j])}: {text}</title></rect>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _stats(c: Mapping[str, Any]) -> str:
    lines = []
    if c["kind"] in ("numeric", "datetime"):
        lines.append(f"min {_num(c.get('min'))} &middot; max {_num(c.get('max'))}")
    if c["kind"] == "numeric":
        lines.append(
            f"mean {_num(c.get('mean'))} &middot; std {_num(c.get('std'))} &middot; skew {_num(c.get('skewness'))}"
        )
        q = c.get("quantiles") or {}
        if q:
            lines.append(
                "p5 {} &middot; p25 {} &middot; median {} &middot; p75 {} &middot; p95 {}".format(
                    *(_num(q.get(k)) for k in ("0.05", "0.25", "0.5", "0.75", "0.95"))
                )
            )
        o = c.get("outliers")
        if o:
            lines.append(
                f"outliers ({_e(o['method'])} {_num(o['factor'])}, outside [{_num(o['lower'])}, {_num(o['upper'])}]): "
                f"{o['count']:,} ({o['low']:,} low, {o['high']:,} high)"
            )
        extra = [
            f"{label} {c[key]:,}"
            for key, label in (("nan", "NaN"), ("pos_inf", "+inf"), ("neg_inf", "-inf"), ("zeros", "zeros"))
            if c.get(key)
        ]
        if extra:
            lines.append(" &middot; ".join(extra))
    if c.get("empty_strings"):
        lines.append(f"empty strings {c['empty_strings']:,}")
    if c.get("top") is not None and not c.get("top_exact", True):
        lines.append("top counts: lower bounds (Misra-Gries)")
    return "<br>".join(lines)


def render_html(profile: Mapping[str, Any], *, title: str = "Data profile") -> str:
    """The profile as a self-contained HTML page: overview, warnings, columns, correlations, target."""
    rows = int(profile.get("rows", 0))
    warnings = profile.get("warnings") or []
    dup = profile.get("duplicates") or {}
    sampling = profile.get("sampling") or {}
    warning_items = (
        "".join(
            f"<li><b>{_e(w['kind'])}</b>{(' &mdash; <code>' + _e(w['column']) + '</code>') if w.get('column') is not None else ''}: "
            f"{_e(w['message'])}</li>"
            for w in warnings
        )
        or "<li>none</li>"
    )

    body_rows = []
    for c in profile.get("column_summaries", []):
        chart = ""
        if c.get("histogram"):
            chart = _histogram(c["histogram"])
        elif c.get("top"):
            chart = _top_bars(c["top"], rows)
        flags = ", ".join(c.get("warnings") or [])
        body_rows.append(
            "<tr class='{cls}'><td><code>{name}</code><br><small>{type}</small></td><td>{kind}</td>"
            "<td>{missing:.1%}<br><small>{missing_n} rows</small></td><td>{distinct}{approx}</td>"
            "<td class='stats'>{stats}</td><td>{chart}</td><td>{flags}</td></tr>".format(
                cls="flagged" if flags else "",
                name=_e(c["name"]) if c["name"] != "" else "<i>(empty name)</i>",
                type=_e(c.get("type")),
                kind=_e(c["kind"]),
                missing=c.get("missing_share", 0.0),
                missing_n=_num(c.get("missing", 0)),
                distinct=_num(c.get("distinct")),
                approx="" if c.get("distinct_exact", True) else " (est.)",
                stats=_stats(c),
                chart=chart,
                flags=_e(flags),
            )
        )

    sections = []
    corr = profile.get("correlations")
    if corr:
        sections.append(
            f"<h2>Numeric correlations (Spearman)</h2><p><small>{_e(corr.get('method'))}; hover a cell for "
            f"its value. Pearson is in the JSON summary.</small></p>"
            + _heatmap(corr["columns"], corr["spearman"], signed=True)
        )
    assoc = profile.get("associations")
    if assoc:
        skipped = assoc.get("skipped") or {}
        sections.append(
            f"<h2>Categorical associations (Cram&eacute;r's V)</h2><p><small>{_e(assoc.get('method'))}"
            + ("; skipped: " + _e(", ".join(f"{k} ({v})" for k, v in skipped.items())) if skipped else "")
            + "</small></p>"
            + _heatmap(assoc["columns"], assoc["cramers_v"], signed=False)
        )
    rel = profile.get("target_relations")
    if rel:
        trs = []
        for e in rel["features"]:
            score = e.get("score")
            bar = (
                f'<svg width="120" height="10"><rect width="{120 * score:.1f}" height="10" fill="{_BLUE}"/></svg>'
                if isinstance(score, (int, float))
                else ""
            )
            detail = ", ".join(
                f"{k} {_num(e[k])}"
                for k in ("pearson", "spearman", "cramers_v", "correlation_ratio", "predictive_power")
                if e.get(k) is not None
            )
            trs.append(
                f"<tr><td><code>{_e(e['feature'])}</code></td><td>{_num(score)} {bar}</td><td>{_e(e.get('method') or e.get('skipped'))}</td>"
                f"<td>{detail}</td></tr>"
            )
        sections.append(
            f"<h2>Target <code>{_e(rel['target'])}</code> ({_e(rel['kind'])}) and each feature</h2>"
            "<table><thead><tr><th>feature</th><th>score</th><th>measure</th><th>details</th></tr></thead>"
            f"<tbody>{''.join(trs)}</tbody></table>"
        )

    meta = (
        f"{rows:,} rows &times; {int(profile.get('columns', 0))} columns; "
        f"{int(dup.get('rows', 0)):,} duplicate rows ({float(dup.get('share', 0.0)):.1%}"
        f"{'' if dup.get('exact', True) else ', estimated'}); {len(warnings)} warnings"
    )
    source = f"<p>Source: <code>{_e(profile['source'])}</code></p>" if profile.get("source") else ""
    verdict = f"{len(warnings)} warning{'s' if len(warnings) != 1 else ''}" if warnings else "no warnings"
    color = "#c62828" if warnings else "#2e7d32"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>
<style>
body {{ font-family: -apple-system, Segoe UI, Roboto, sans-serif; margin: 24px; color: #222; }}
h1 {{ font-size: 22px; }} h2 {{ font-size: 17px; margin-top: 28px; }} .verdict {{ color: {color}; font-weight: bold; }}
table {{ border-collapse: collapse; font-size: 13px; }} th, td {{ border: 1px solid #ddd; padding: 4px 8px; vertical-align: middle; }}
th {{ background: #f5f5f5; text-align: left; }} tr.flagged td {{ background: #fff3f3; }}
td.stats {{ font-size: 12px; }} code {{ font-size: 12px; }} small {{ color: #666; }}
</style></head><body>
<h1>{_e(title)}: <span class="verdict">{verdict}</span></h1>
<p>{meta}</p>
{source}
<h2>Warnings</h2><ul>{warning_items}</ul>
<h2>Columns</h2>
<table><thead><tr><th>column</th><th>kind</th><th>missing</th><th>distinct</th><th>statistics</th>
<th>distribution</th><th>warnings</th></tr></thead>
<tbody>{"".join(body_rows)}</tbody></table>
{"".join(sections)}
<h2>How this was computed</h2>
<ul><li>Exact: {_e(profile.get("exact"))}.</li>
<li>Sample: {int(sampling.get("rows", 0)):,} rows ({"all rows" if sampling.get("exact") else "estimated figures"}): {_e(sampling.get("method"))}; used for {_e(sampling.get("used_for"))}.</li>
<li>Duplicates: {_e(dup.get("method"))}.</li>
<li>Schema {_e(profile.get("schema"))} version {_e(profile.get("version"))}.</li></ul>
</body></html>
"""
