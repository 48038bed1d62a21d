"""Tests for ct_assets.demo.timeline: the replay report a human reads to judge CT.

The report is the demo's verdict, so its numbers must be right on series whose answer is
obvious by construction (drop at the drift start, recovery after a promotion), and its
pages must be real: a PNG with actual content, an HTML page listing every day with all
user-controlled text escaped (reasons and event names end up in markup).
"""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest

from ct_assets.demo.timeline import (
    format_table,
    policy_metrics,
    render_timeline_html,
    render_timeline_png,
)

START = dt.date(2026, 9, 1)
DRIFT_DAY = START + dt.timedelta(days=5)


def day(i: int) -> dt.date:
    return START + dt.timedelta(days=i)


THRESHOLDS = {"label_js": 0.15, "label_psi": 0.25, "length_ks": 0.2, "oov_rate": 0.08, "text_auc": 0.75,
              "concept_shift": 0.18}


def series(ct: list[float | None], static: list[float | None] | None = None) -> list[dict]:
    """One record per day; day 5 is the drift start, retrain+promotion on day 8."""
    static = static or [0.9] * 5 + [0.7] * (len(ct) - 5)
    records = []
    for i, (acc, st) in enumerate(zip(ct, static)):
        drifting = i >= 5
        records.append({
            "day": day(i),
            "champion_version": "v1" if i < 8 else "v2",
            "champion_accuracy": acc,
            "static_accuracy": st,
            "label_js": 0.02 + (0.2 if drifting else 0.0),
            "label_psi": 0.01,
            "length_ks": 0.05,
            "oov_rate": 0.02 + (0.1 if drifting else 0.0),
            "text_auc": 0.55 + (0.3 if drifting else 0.0),
            # The thresholds each day was judged by (drift_report's row); calibrated ones
            # move when the reference does (here: a new champion window from day 8).
            **{f"threshold_{m}": v + (0.01 if i >= 8 else 0.0) for m, v in THRESHOLDS.items()},
            "drift_verdict": "drift" if drifting else "stable",
            "triggers_fired": ["drift: drift JS=0.22 > 0.15 on 2 of the last 3 days"] if i == 6 else [],
            "retrained": i == 8,
            "promoted": i == 8,
            "promoted_version": "v2" if i == 8 else None,
            "blocked_reasons": ["cooldown: last training run on 2026-09-09"] if i == 10 else [],
            "scenario_events": ["product_launch starts"] if i == 5 else [],
            "auto_approved": i == 8,
        })
    return records


PRE = [0.90] * 5


@pytest.mark.parametrize(
    ("ct", "expected_days"),
    [
        # Drop on days 5-8, back within 0.02 of 0.90 on days 9 and 10: 4 days after drift start.
        (PRE + [0.70, 0.70, 0.72, 0.75, 0.89, 0.90, 0.91], 4),
        # Never back within the margin: None.
        (PRE + [0.70, 0.72, 0.74, 0.80, 0.85, 0.86, 0.87], None),
        # One good day then down again does not count; the recovery is days 10-11.
        (PRE + [0.70, 0.70, 0.89, 0.70, 0.70, 0.90, 0.90], 5),
        # A day without labels between two good days neither breaks nor makes it.
        (PRE + [0.70, 0.70, 0.70, 0.70, 0.90, None, 0.90], 4),
        # Good only on the very last day: "stays so for 2 days" is unproven.
        (PRE + [0.70, 0.70, 0.70, 0.70, 0.70, 0.70, 0.90], None),
        # Never dropped below the band: nothing to recover from.
        (PRE + [0.89, 0.90, 0.89, 0.90, 0.90, 0.90, 0.90], 0),
    ],
)
def test_days_to_recover(ct, expected_days):
    m = policy_metrics(series(ct), drift_start_day=DRIFT_DAY)
    assert m["days_to_recover"] == expected_days


def test_policy_metrics_means_counts_and_forgetting():
    ct = PRE + [0.70, 0.70, 0.72, 0.75, 0.89, 0.90, None]
    m = policy_metrics(series(ct), drift_start_day=DRIFT_DAY, golden_accuracies=[0.90, 0.88, 0.91, 0.87])
    # Mean over measured days from the drift start (the None day is skipped).
    assert m["mean_accuracy_after_drift"] == pytest.approx(sum(ct[5:11]) / 6)
    assert m["static_mean_accuracy_after_drift"] == pytest.approx(0.7)
    assert m["static_days_to_recover"] is None
    assert m["retrains"] == 1 and m["promotions"] == 1 and m["auto_approved_promotions"] == 1
    assert m["golden_forgetting"] == pytest.approx(0.03)  # worst later champion: 0.90 -> 0.87
    assert policy_metrics(series(ct), drift_start_day=DRIFT_DAY, golden_accuracies=[0.8, 0.85])[
        "golden_forgetting"
    ] == 0.0  # never worse than the first
    assert m["recovered_on"] == day(9)


CT_GOOD = PRE + [0.70, 0.70, 0.72, 0.75, 0.89, 0.90, 0.91]


@pytest.mark.parametrize(
    "as_frame",
    [
        False,  # list of dicts, the replay's native form
        True,  # polars DataFrame, as the replay may persist it
    ],
)
def test_png_written_and_non_trivial(tmp_path, as_frame):
    records = series(CT_GOOD)
    data = pl.DataFrame(records) if as_frame else records
    out = render_timeline_png(data, tmp_path / "sub" / "timeline.png", "CT vs static")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 10_000


def test_png_scores_are_divided_by_their_own_days_threshold(tmp_path):
    from ct_assets.demo.timeline import _ratio, _threshold_label

    records = series(CT_GOOD)
    assert _ratio(records[5], "oov_rate") == pytest.approx(0.12 / 0.08)
    assert _ratio(records[9], "oov_rate") == pytest.approx(0.12 / 0.09)
    assert _threshold_label(records[:8], "oov_rate") == "oov_rate (threshold 0.08)"
    assert _threshold_label(records, "oov_rate") == "oov_rate (threshold 0.08-0.09, per day)"
    # A day recorded without a threshold (uncalibrated, or an old row) is a gap, not a guess.
    records[3]["threshold_oov_rate"] = None
    assert math.isnan(_ratio(records[3], "oov_rate"))
    assert render_timeline_png(records, tmp_path / "t.png", "per-day thresholds").stat().st_size > 10_000


def test_png_without_drift_scores_still_renders(tmp_path):
    # A replay that never computed drift (e.g. drift disabled): two panels, no crash.
    records = [{k: v for k, v in r.items() if k not in ("label_js", "oov_rate", "text_auc")}
               for r in series(CT_GOOD)]
    out = render_timeline_png(records, tmp_path / "t.png", "no drift")
    assert out.stat().st_size > 10_000


def test_png_rejects_empty(tmp_path):
    with pytest.raises(ValueError, match="no records"):
        render_timeline_png([], tmp_path / "t.png", "empty")


def test_html_lists_every_day_and_escapes_text(tmp_path):
    records = series(CT_GOOD)
    records[3]["scenario_events"] = ["<script>alert(1)</script> starts"]
    records[6]["triggers_fired"] = ['drift: JS "high" & <rising>']
    out = render_timeline_html(
        records,
        tmp_path / "report.html",
        "CT <demo> & friends",
        "timeline.png",
        summary_table_rows=[{"policy": "combined", "mean acc": 0.88, "note": "<b>x</b>"}],
        policy_table_rows=[{"policy": "static", "days_to_recover": None}],
        notes=["labels arrive late & partially"],
    )
    page = out.read_text(encoding="utf-8")
    for r in records:
        assert r["day"].isoformat() in page
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "JS &quot;high&quot; &amp; &lt;rising&gt;" in page
    assert "CT &lt;demo&gt; &amp; friends" in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert 'src="timeline.png"' in page
    assert "Policy comparison" in page
    assert "promoted v2 (auto-approved)" in page
    # Derived from each day's own thresholds, shown beside the scores (day 9's moved).
    assert "drift (label_js 0.220 &gt; 0.150, oov_rate 0.120 &gt; 0.080, text_auc 0.850 &gt; 0.750)" in page
    assert "oov_rate 0.120 &gt; 0.090" in page
    assert "cooldown: last training run on 2026-09-09" in page


def test_html_without_policy_table(tmp_path):
    out = render_timeline_html(series(CT_GOOD), tmp_path / "r.html", "t", "t.png", [{"a": 1}])
    assert "Policy comparison" not in out.read_text(encoding="utf-8")


def test_format_table_aligns_and_shows_missing():
    text = format_table([
        {"policy": "static", "mean_acc": 0.7012, "retrains": 0},
        {"policy": "combined", "mean_acc": None, "retrains": 12},
    ])
    lines = text.splitlines()
    assert lines[0].split() == ["policy", "mean_acc", "retrains"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert "0.701" in lines[2] and "-" in lines[3].split()
    # Numbers are right-aligned: the retrain counts end in the same column.
    assert lines[2].rstrip().endswith(" 0") and lines[3].rstrip().endswith("12")
    assert len(lines[2]) == len(lines[3])
    assert format_table([]) == "(no rows)"
