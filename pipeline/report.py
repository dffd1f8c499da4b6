"""The audit report as one self-contained HTML page.

Everything travels inside the file: the stylesheet is inline, every figure is inline SVG
(vector, so it prints sharply and scales to a phone's width), and nothing is fetched from
anywhere. Inline SVG rather than base64 PNG also keeps the page searchable text, which is
how the privacy tests scan it for identifiers.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from html import escape
from typing import Any

import matplotlib
from matplotlib.figure import Figure

_STYLE = """
:root { --ok:#1e7d45; --warn:#b03a2e; --wait:#9a6b00; --muted:#5d6d7e; --line:#d5dbe1; }
* { box-sizing: border-box; }
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:#1c2833;
       margin: 0 auto; max-width: 1100px; padding: 1rem; }
h1 { font-size: 1.6rem; margin: .2rem 0 .6rem; }
h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 2px solid var(--line); }
h3 { font-size: 1.05rem; margin-top: 1.4rem; }
p, li { max-width: 70ch; }
.meta { color: var(--muted); font-size: .9rem; }
.banner { border-radius: 8px; padding: .8rem 1rem; color: #fff; font-size: 1.15rem; }
.banner.calibrated { background: var(--ok); }
.banner.recalibration { background: var(--warn); }
.banner.too, .banner.suppressed { background: var(--wait); }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; }
table { border-collapse: collapse; font-size: .9rem; min-width: 100%; }
th, td { border-bottom: 1px solid var(--line); padding: .35rem .5rem; text-align: right;
         vertical-align: top; white-space: nowrap; }
th:first-child, td:first-child, td.text { text-align: left; }
td.text { white-space: normal; min-width: 14rem; }
thead th { background: #f4f6f7; position: sticky; top: 0; }
.tag { display: inline-block; border-radius: 4px; padding: 0 .4rem; color: #fff; }
.tag.calibrated { background: var(--ok); }
.tag.recalibration { background: var(--warn); }
.tag.too, .tag.suppressed { background: var(--wait); }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr));
           gap: 1rem; }
figure { margin: 0; }
figure svg { width: 100%; height: auto; display: block; }
figcaption { font-size: .85rem; color: var(--muted); }
@media (max-width: 600px) { body { font-size: 15px; padding: .5rem; } h1 { font-size: 1.3rem; } }
@media print {
  body { max-width: none; padding: 0; font-size: 11pt; }
  .scroll { overflow: visible; }
  thead th { position: static; }
  figure, table, .banner { break-inside: avoid; }
  .figures { grid-template-columns: 1fr 1fr; }
  .banner, .tag { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""

_LABELS = {
    "overall": "Overall",
    "model_version": "By model version",
    "quarter": "By quarter of prediction",
    "clinic_id": "By clinic",
    "discipline": "By discipline",
    "level": "By level",
    "sex": "By sex",
    "sample": "By sample (development episodes apart from new ones; not judged)",
}
_METRIC_LABELS = {
    "observed_expected": "O/E",
    "calibration_intercept": "intercept",
    "calibration_slope": "slope",
    "auc": "AUC",
    "brier": "Brier",
}
_STATUS_LABELS = {
    "recurred": "recurred within the window",
    "no_recurrence": "no recurrence over the full window",
    "pending": "pending (window not over yet)",
    "censored": "lost to follow-up (censored)",
    "not_in_records": "not found in the current records",
    "evaluable": "evaluable (recurred or full window)",
    "total": "predictions audited",
}


def figure_svg(figure: Figure) -> str:
    """One figure as an inline ``<svg>`` element, text kept as text, ids deterministic."""
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "hamrisk-audit"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    # The Dublin Core block names external vocabularies; the page needs none of it.
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    svg = re.sub(r'\sxmlns:(dc|cc|rdf)="[^"]*"', "", svg)
    # Drop the fixed size so CSS scales the drawing by its viewBox.
    head, rest = svg.split(">", 1)
    head = re.sub(r'\s(width|height)="[^"]*"', "", head)
    return f'{head} role="img">{rest}'


def _tag(verdict: str) -> str:
    kind = verdict.split()[0] if verdict else "suppressed"
    return f'<span class="tag {escape(kind)}">{escape(verdict)}</span>'


def _number(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def _with_ci(found: Mapping[str, Any] | None, digits: int = 2) -> str:
    if not found or found.get("estimate") is None:
        return "–"
    text = _number(found["estimate"], digits)
    if found.get("low") is not None and found.get("high") is not None:
        text += f" ({_number(found['low'], digits)}–{_number(found['high'], digits)})"
    return text


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="scroll">{table}</div>'


def _td(text: str, cls: str | None = None) -> str:
    return f'<td class="{cls}">{text}</td>' if cls else f"<td>{text}</td>"


def _breakdown_table(breakdown: Mapping[str, Any], level: float) -> str:
    headers = ["group", "episodes", "recurred", "known", "pending", "censored"]
    headers += [f"{_METRIC_LABELS[m]} ({level:.0%} CI)" for m in _METRIC_LABELS]
    headers += ["verdict", "why"]
    rows = []
    for cell in breakdown["cells"]:
        group = _td(escape(cell["group"]))
        if cell.get("suppressed"):
            rows.append(
                [group, _td(escape(str(cell["n"])))]
                + [_td("")] * (len(headers) - 4)
                + [_td(_tag("suppressed")), _td("", "text")]
            )
            continue
        counts = cell["counts"]
        metrics = cell.get("metrics") or {}
        rows.append(
            [
                group,
                _td(_number(cell["n"])),
                _td(_number(counts["recurred"])),
                _td(_number(counts["evaluable"])),
                _td(_number(counts["pending"])),
                _td(_number(counts["censored"])),
                *(
                    _td(_with_ci(metrics.get(m), 3 if m in ("auc", "brier") else 2))
                    for m in _METRIC_LABELS
                ),
                _td(_tag(cell["verdict"])),
                _td(escape("; ".join(cell.get("reasons") or [])), "text"),
            ]
        )
    return _table(headers, rows)


def _risk_over_time(
    found: Mapping[str, Any] | None, figures: Mapping[str, Figure], level: float
) -> list[str]:
    """The time-scale audit: observed (Kaplan–Meier) against predicted cumulative incidence
    at each horizon, its O/E with the interval of the observed, and the figure by band."""
    if not found:
        return []
    parts = ["<h3>Risk over time</h3>"]
    note = (
        f"{_number(found['episodes'])} new episodes whose predictions carry a curve"
        + (
            f" ({_number(found['episodes_without_curve'])} predictions written before the "
            "curve was scored are left out)"
            if found.get("episodes_without_curve")
            else ""
        )
        + ". Observed: Kaplan–Meier cumulative incidence (losses to follow-up as "
        f"independent censoring) with its {level:.0%} interval; expected: the mean predicted "
        "curve; O/E takes the observed interval over the expected."
    )
    parts.append(f"<p>{escape(note)}</p>")
    rows = []
    for row in found.get("calibration") or []:
        rows.append(
            [
                _td(f"{row['horizon_days']} days"),
                _td(_number(int(row["episodes"]))),
                _td(_number(int(row["events"]))),
                _td(_with_ci({"estimate": row["incidence"], "low": row["incidence_low"],
                              "high": row["incidence_high"]}, 3)),
                _td(_number(row["expected"], 3)),
                _td(_with_ci({"estimate": row["oe_ratio"], "low": row["oe_low"],
                              "high": row["oe_high"]})),
            ]
        )  # fmt: skip
    if rows:
        headers = ["by day", "episodes", "recurred by then", "observed", "expected"]
        parts.append(_table([*headers, f"O/E ({level:.0%} CI)"], rows))
    else:
        parts.append("<p>Too few episodes with a curve to compare.</p>")
    if "risk_over_time" in figures:
        caption = "Observed (steps, with intervals) and mean predicted (dashed) by risk band."
        parts.append(
            f"<figure>{figure_svg(figures['risk_over_time'])}"
            f"<figcaption>{caption}</figcaption></figure>"
        )
    return parts


def render_html(document: Mapping[str, Any], figures: Mapping[str, Figure]) -> str:
    """The report page: verdict, outcome counts, breakdown tables, figures, drift, method."""
    audit = document["audit"]
    verdict = document["verdict"]
    overall = verdict["overall"]
    versions = ", ".join(audit["model_versions"]) or "–"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Outcome audit, {escape(str(audit['model_name']))}, {audit['as_of']}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Outcome audit of {escape(str(audit['model_name']))}</h1>",
        f'<p class="meta">Audit date {audit["as_of"]} · model version(s) {escape(versions)} · '
        f"outcome window {audit['window_days']} days · cells under {audit['min_cell']} "
        "episodes suppressed</p>",
        f'<div class="banner {escape(overall.split()[0])}" id="verdict">'
        f"Verdict: <strong>{escape(overall)}</strong> (exit code {verdict['exit_code']})</div>",
    ]
    reasons = [
        f"<li>version {escape(v)}: {_tag(found['verdict'])} {escape('; '.join(found['reasons']))}"
        "</li>"
        for v, found in verdict["by_version"].items()
    ]
    if reasons:
        parts.append(f"<ul>{''.join(reasons)}</ul>")
    described = [
        f"<li>version {escape(v)}: {escape(found['description'])}</li>"
        for v, found in (document.get("models") or {}).items()
    ]
    if described:
        parts.append('<p class="meta">Which model spoke:</p>')
        parts.append(f'<ul id="models">{"".join(described)}</ul>')

    parts.append("<h2>Outcomes</h2>")
    outcomes = document["outcomes"]
    if "suppressed" in outcomes:
        parts.append(f"<p>{escape(outcomes['suppressed'])}</p>")
    else:
        parts.append(
            _table(
                ["outcome as known today", "predictions"],
                [
                    [_td(escape(_STATUS_LABELS[k])), _td(_number(outcomes[k]))]
                    for k in _STATUS_LABELS
                ],
            )
        )
        parts.append(
            "<p>Pending and censored episodes are never counted as non-recurrences: the "
            "metrics use the evaluable ones, weighted by the inverse probability of "
            "remaining under follow-up.</p>"
        )

    parts.append("<h2>Development data and new episodes</h2>")
    in_sample = document.get("in_sample") or {"by_version": {}}
    parts.append(
        "<p>A model judged on the episodes it was developed on looks better than it is. "
        "Every verdict here is based on <strong>new episodes only</strong>; the model's "
        "development episodes (recognised by the salted fingerprints stored with the "
        "version, no ids) are shown apart, in the table <em>By sample</em>.</p>"
    )
    sample_rows = []
    for version, found in in_sample["by_version"].items():
        recorded = found.get("fingerprint_recorded")
        sample_rows.append(
            [
                _td(escape(version)),
                _td("yes" if recorded else "no"),
                _td(escape(str(found.get("development_episodes", "–")))),
                _td(escape(str(found.get("new_episodes", "–")))),
                _td(escape(str(found.get("note", ""))), "text"),
            ]
        )
    if sample_rows:
        parts.append(
            _table(["model version", "fingerprint", "development", "new", "note"], sample_rows)
        )
    weights = document.get("censoring_weights") or {}
    if "max_weight" in weights:
        parts.append(
            f"<p>Censoring weights: largest {_number(weights['max_weight'])}, effective "
            f"sample size {_number(weights['effective_sample_size'], 0)} of "
            f"{_number(weights['known_outcomes'])} known outcomes (Kish); follow-up "
            f"lengthened by the athlete's own later records for "
            f"{_number(weights['follow_up_from_records'])} predictions.</p>"
        )

    calibration = [k for k in figures if k.startswith(("calibration_", "decision_"))]
    if calibration:
        parts.append('<h2>Calibration and decision curves</h2><div class="figures">')
        for key in calibration:
            caption = (
                "Smoothed observed against predicted risk, with its 95% band."
                if key.startswith("calibration_")
                else "Net benefit against treating everyone and no one, thresholds "
                "{:g}–{:g}.".format(*audit["thresholds"])
            )
            parts.append(
                f"<figure>{figure_svg(figures[key])}<figcaption>{caption}</figcaption></figure>"
            )
        parts.append("</div>")

    parts.append("<h2>Metrics and verdicts</h2>")
    parts.append(
        "<p>Estimates on new episodes (the last table apart), with bootstrap "
        f"{audit['level']:.0%} intervals (athletes resampled, "
        f"{audit['n_boot']} replicates). A verdict of recalibration needs the O/E ratio or "
        "the calibration slope to differ from 1 after a Bonferroni adjustment over every "
        "cell judged in the same table.</p>"
    )
    for breakdown in document["breakdowns"]:
        label = _LABELS.get(breakdown["by"], f"By {breakdown['by']}")
        parts.append(f"<h3>{escape(label)}</h3>")
        parts.append(_breakdown_table(breakdown, audit["level"]))

    parts.extend(_risk_over_time(document.get("risk_over_time"), figures, audit["level"]))

    parts.append("<h2>Drift of the inputs</h2>")
    drift = document.get("drift") or {}
    if not drift:
        parts.append("<p>No drift reference available.</p>")
    for version, found in drift.items():
        parts.append(f"<h3>Model version {escape(version)}</h3>")
        if not found.get("available"):
            parts.append(f"<p>Not computed: {escape(str(found.get('reason')))}.</p>")
            continue
        shifted = found["most_shifted"]
        parts.append(
            "<p>Most shifted against the training data: "
            + (escape(", ".join(shifted)) if shifted else "no feature above PSI 0.10")
            + "</p>"
        )
        key = f"drift_v{version}"
        if key in figures:
            parts.append(f"<figure>{figure_svg(figures[key])}</figure>")
        top = found["features"][:10]
        parts.append(
            _table(
                ["feature", "PSI", "shift"],
                [
                    [_td(escape(r["feature"])), _td(_number(r["psi"], 3)), _td(escape(r["shift"]))]
                    for r in top
                ],
            )
        )

    parts.append(
        "<h2>Method</h2><ul>"
        "<li>Each stored prediction is matched to the outcome in today's records; a version "
        "that scored an episode twice is audited on its latest prediction.</li>"
        "<li>Follow-up runs to the later of the follow-up row and the athlete's latest record "
        "(a record proves contact). Censoring weights use the training run's settings "
        "(configs/train.yaml, <code>censoring</code>); the export date is a known end of "
        "follow-up, not dropout, so an episode whose window had not closed by it weighs 0.</li>"
        "<li>O/E: observed over expected recurrences; intercept and slope: logistic "
        "recalibration on logit(risk) (Van Calster et al. 2016); AUC and Brier score "
        "weighted by inverse probability of censoring (Uno et al. 2007; Gerds &amp; "
        "Schumacher 2006).</li>"
        f"<li><em>Too few outcomes yet</em>: fewer known outcomes than needed for an O/E "
        f"interval {audit['oe_ci_width']} wide (Riley et al. 2021), or fewer than "
        f"{audit['min_events']} recurrences or non-recurrences.</li>"
        "<li>Drift: population stability index of the inputs, rebuilt as known at each "
        "prediction time, against the training distributions stored with the model "
        "(0.10 moderate, 0.25 major shift).</li>"
        "<li>No athlete-level row is shown; cells with fewer than "
        f"{audit['min_cell']} episodes are suppressed.</li></ul>"
    )
    parts.append("</body></html>")
    return "\n".join(parts)
