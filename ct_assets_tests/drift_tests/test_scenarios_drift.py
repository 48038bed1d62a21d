"""Every drift scenario is flagged by the metric meant for it, and a stable stretch of
30 days raises no flag at the demo's thresholds (within the false-alarm budget when
calibrated).

Pure pipeline, no Dagster, as drift_report runs it: simulator day -> landing file
(write_day) -> read_landing_day -> split_rows -> labels_as_of -> thresholds -> compute_drift,
the reference being the clean rows of the configured reference days, with the simulator
settings of the embedded ct.yaml (the demo) at 300 rows a day. Every test runs twice: with
the demo's explicit thresholds ("demo") and with every threshold "auto", calibrated on the
same reference ("auto").

Each scenario runs alone (a config with only that scenario, at its ct.yaml start day),
so a flag can only come from that scenario; days before a scenario starts are identical
to the stable world, so one reference serves every case.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
import yaml

from ct_assets.core.settings import DriftThresholds, default_config_text, parse_settings
from ct_assets.core.time import labels_as_of
from ct_assets.drift.daily import resolve_thresholds
from ct_assets.drift.statistics import METRICS, DriftResult, compute_drift
from ct_assets.ingest.contract import read_landing_day
from ct_assets.ingest.quality import QualityResult, split_rows
from ct_assets.sim.simulator import (
    Scenario,
    SimulatorConfig,
    generate_day_annotated,
    write_day,
)
from ct_assets.sim.vocabulary import LAUNCH_MARKERS, SLANG_MARKERS

# The embedded default, whatever CT_CONFIG or ./ct.yaml say.
SETTINGS = parse_settings(yaml.safe_load(default_config_text()), "embedded ct.yaml")
SIM = SETTINGS.source.simulator
START = SETTINGS.partitions.start_date
LABELS = SETTINGS.labels
SCHEDULE = {s.name: s for s in SIM.scenarios}
STABLE_DAYS = 30
# The thresholds were calibrated (false-alarm and detection rates) at 300 rows/day; the
# demo runs 200 rows/day for its time budget, where concept_shift sees fewer relabelled
# rows per day. The test pins the calibration size so it checks the metric, not the demo.
ROWS_PER_DAY = 300


def sim_config(*scenarios: Scenario) -> SimulatorConfig:
    return SimulatorConfig(
        labels=LABELS, seed=SIM.seed, rows_per_day=ROWS_PER_DAY,
        same_day_label_share=SIM.same_day_label_share, max_label_delay_days=SIM.max_label_delay_days,
        never_labelled_share=SIM.never_labelled_share, scenarios=scenarios,
    )


def alone(name: str) -> SimulatorConfig:
    s = SCHEDULE[name]
    return sim_config(Scenario(s.name, s.start_day, s.end_day, s.strength))


class Pipeline:
    """The data half up to drift_report, over a temporary landing zone."""

    def __init__(self, landing: Path, mode: str):
        self.landing, self.mode = landing, mode
        d = SETTINGS.drift
        # "auto": every threshold calibrated on the reference (cached: one null per reference content).
        self.settings = d if mode == "demo" else d.model_copy(update={"thresholds": DriftThresholds()})
        self.reference = pl.concat(
            [self.validate(sim_config(), day).clean for day in SETTINGS.reference.days()], how="diagonal_relaxed"
        )

    def validate(self, config: SimulatorConfig, day: dt.date) -> QualityResult:
        # One landing folder per config: the same day differs between scenarios.
        landing = self.landing / ("-".join(s.name for s in config.scenarios) or "stable")
        write_day(config, START, day, landing)
        q = SETTINGS.quality
        return split_rows(read_landing_day(landing, day).frame, day=day, labels=LABELS,
                          max_text_chars=q.max_text_chars, reject_text_chars=q.reject_text_chars,
                          mask_emails=q.mask_emails, mask_phones=q.mask_phones)

    def drift(self, clean: pl.DataFrame, day: dt.date, *, labels_as_of_day: dt.date | None = None) -> DriftResult:
        """drift_report's call for ``day``; ``labels_as_of_day`` (default: the day itself)
        lets a test score the day's rows once their late labels have arrived."""
        d, tg = self.settings, SETTINGS.triggers
        reference = labels_as_of(self.reference, day)
        thresholds, calibration = resolve_thresholds(reference, labels=LABELS, drift=d, k=tg.drift_k, n=tg.drift_n,
                                                     cache_dir=self.landing / "calibration")
        return compute_drift(
            reference, labels_as_of(clean, labels_as_of_day or day),
            labels=LABELS, thresholds=thresholds, calibration=calibration, min_rows=d.min_rows,
            min_labelled_rows=d.min_labelled_rows, top_new_terms=d.top_new_terms,
            min_term_count=d.min_term_count, sample_rows=d.sample_rows, seed=day.toordinal(),
        )


@pytest.fixture(scope="module", params=["demo", "auto"])
def pipeline(request, tmp_path_factory) -> Pipeline:
    return Pipeline(tmp_path_factory.mktemp(f"landing-{request.param}"), request.param)


def _day_indexes(name: str) -> list[int]:
    # 3-5 days in, while the scenario is still on (label_shift lasts 5 days).
    s = SCHEDULE[name]
    return [s.start_day + k for k in (3, 4, 5) if s.end_day is None or s.start_day + k <= s.end_day]


def _day(index: int) -> dt.date:
    return START + dt.timedelta(days=index)


def _markers(words) -> set[str]:
    # new_terms are lowercased single tokens ("no cap" shows up as "cap").
    return {token.lower() for w in words for token in w.split()}


def _scenario_results(pipeline: Pipeline, name: str, *, late_labels: bool) -> list[tuple[int, DriftResult]]:
    config = alone(name)
    out = []
    for i in _day_indexes(name):
        clean = pipeline.validate(config, _day(i)).clean
        # Labels arrive up to max_label_delay_days late; a label metric scored on the day
        # itself sees only the same-day ~60%. Scoring the day's rows once all labels are in
        # (as drift_report would when it re-runs that partition later) tests the metric,
        # not the label lag. The reference is still cut at the day itself.
        as_of = _day(i + SIM.max_label_delay_days) if late_labels else None
        out.append((i, pipeline.drift(clean, _day(i), labels_as_of_day=as_of)))
    return out


def test_product_launch_is_new_vocabulary(pipeline):
    # New product names and launch wording: unseen words, so oov_rate; the listed new
    # terms must name the launch (what a human reads to see *what* is new).
    for i, result in _scenario_results(pipeline, "product_launch", late_labels=False):
        assert result.flags["oov_rate"], (i, result.to_markdown())
        new = {term for term, _ in result.new_terms}
        assert len(new & _markers(LAUNCH_MARKERS)) >= 2, (i, result.new_terms)


def test_slang_shift_is_new_vocabulary_or_separable_text(pipeline):
    # Same intents, slang wording: oov_rate and/or text_auc; new terms are slang markers.
    for i, result in _scenario_results(pipeline, "slang_shift", late_labels=False):
        assert result.flags["oov_rate"] or result.flags["text_auc"], (i, result.to_markdown())
        new = {term for term, _ in result.new_terms}
        assert len(new & _markers(SLANG_MARKERS)) >= 3, (i, result.new_terms)


def test_label_shift_moves_the_label_prior(pipeline):
    # An outage: technical_issue/account_access take 60% of traffic. Both label-prior
    # scores flag, on the day's rows with all their labels in (see _scenario_results).
    for i, result in _scenario_results(pipeline, "label_shift", late_labels=True):
        assert result.flags["label_js"] and result.flags["label_psi"], (i, result.to_markdown())


def test_concept_change_is_a_concept_shift_between_cancellation_and_refund(pipeline):
    # "Cancel my plan and refund me" moves from cancellation to refund: P(text) is
    # unchanged, so only concept_shift can see it, and it names the pair. Scored with all
    # labels in (see _scenario_results); on same-day labels only it flags ~88% of days
    # (measured over 6 seeds x 20 days, see ct_assets.drift.text_models).
    for i, result in _scenario_results(pipeline, "concept_change", late_labels=True):
        assert result.flags["concept_shift"], (i, result.to_markdown())
        detail = result.concept_detail
        assert (detail["class"], detail["confused_label"]) == ("cancellation", "refund"), (i, detail)
        # The input-drift scores cannot see it (P(text) did not move).
        assert not any(result.flags[m] for m in ("length_ks", "oov_rate", "text_auc")), (i, result.to_markdown())


def test_quality_incident_is_quarantined_not_drift(pipeline):
    # The incident corrupts rows; the quality rules catch it (reason per kind of damage,
    # quality tests cover the rules themselves). What passes is ordinary traffic, so
    # its drift must not flag: a quality incident must not pass for drift.
    kind_reason = {"null_text": "missing_text", "empty_text": "empty_text", "huge_text": "text_too_long",
                   "unknown_label": "unknown_label", "bad_event_ts": "bad_event_ts",
                   "null_event_ts": "bad_event_ts", "duplicate_event_id": "duplicate_event_id",
                   "mojibake": "mojibake", "wrong_type": "wrong_type"}
    config = alone("quality_incident")
    i = SCHEDULE["quality_incident"].start_day  # a one-day incident
    quality = pipeline.validate(config, _day(i))
    kinds = [info.bad_kind for _, info in generate_day_annotated(config, START, _day(i)) if info.bad_kind]
    assert quality.quarantine.height == len(kinds)
    assert set(quality.reason_counts) == {kind_reason[k] for k in kinds}
    result = pipeline.drift(quality.clean, _day(i))
    assert result.verdict == "stable", result.to_markdown()


def test_stable_stretch_raises_no_flag(pipeline):
    # 30 days of the unchanged world after the reference, each scored as drift_report
    # does (labels as of the day). Measured false alarms at the demo thresholds over
    # 60 stable days per simulator seed: concept_shift 1 day in 360 (6 seeds; 0.3%/day,
    # a day with 7 annotator slips in one class), every other metric 0 in 240 (4 seeds);
    # with all labels in (as the label scenarios above are scored), 0 in 360 for every
    # metric. This seed's worst day: concept_shift 0.161 (threshold 0.18).
    # Calibrated ("auto", budget 1 false drift trigger per 60 stable days at 2 of 3 days):
    # the design allows a flagged day with p = 7.65% (2.3 of 30) but no trigger (0.5 of
    # 30); measured here at 300 rows a day: no flag at all (bench/drift_calibration.py:
    # 2 flagged days and no trigger day in 3 seeds x 60 stable days at 200 rows a day).
    config = sim_config()
    first = (SETTINGS.reference.end - START).days + 1
    flagged = {}
    for i in range(first, first + STABLE_DAYS):
        result = pipeline.drift(pipeline.validate(config, _day(i)).clean, _day(i))
        assert all(result.scores[m] is not None for m in METRICS), (i, result.notes)
        if pipeline.mode == "auto":
            assert all(result.threshold_sources[m] == "calibrated" for m in METRICS), result.threshold_sources
        if result.drifted_metrics:
            flagged[str(_day(i))] = {m: round(result.scores[m], 3) for m in result.drifted_metrics}
    assert not flagged, flagged
