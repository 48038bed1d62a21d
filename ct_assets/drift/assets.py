"""Drift: drift_report, the day's drift against the reference, and the champion's accuracy."""

import json
from collections.abc import Mapping

import polars as pl
from dagster import (
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    BackfillPolicy,
    MetadataValue,
    Output,
    asset,
)

from ct_assets.core import markdown
from ct_assets.core.schema import DRIFT_METRICS, drift_columns
from ct_assets.core.settings import Settings
from ct_assets.core.time import day_of, labels_as_of
from ct_assets.drift.daily import drift_of_day
from ct_assets.drift.reference import reference_days, reference_gap
from ct_assets.lake.resources import Lake
from ct_assets.orchestration.per_partition import DayCheck, attach_day_metadata, day_checks, failed_checks_of_run
from ct_assets.orchestration.run_tags import tag_run_story
from ct_assets.orchestration.state import StateDirs
from ct_assets.registry.resources import ModelRegistryResource

GROUP = "data"
# drift_within_policy (WARN) fails on these: a change, a new class, a day the data half
# blocked, or a day with too little data (on either side) to judge at all.
FAILING_VERDICTS = ("drift", "new_class", "blocked", "insufficient_reference", "insufficient_data")
CHECK_DESCRIPTION = ("warns when the day is not judged stable: drift (a metric above its threshold), a new class, "
                     "too little reference or current data to judge, or a day the data half's checks blocked")


def _champion_md(row: dict) -> str:
    if row["champion_version"] is None:
        return "\n\n**Champion:** none yet, so the reference is the configured range."
    acc = row["champion_accuracy"]
    mix = json.loads(row["champion_prediction_mix"])
    ci = (f" (95% CI {row['champion_accuracy_ci_low']}-{row['champion_accuracy_ci_high']})"
          if row["champion_accuracy_ci_low"] is not None else "")
    sampled = row["champion_scored_rows"] < row["champion_total_rows"]
    scored = (f"scored on a label-stratified sample of {row['champion_scored_rows']} of "
              f"{row['champion_total_rows']} rows" if sampled else f"scored on all {row['champion_scored_rows']} rows")
    return (
        f"\n\n**Champion v{row['champion_version']}:** accuracy {acc if acc is not None else 'n/a'}{ci} "
        f"on {row['champion_labelled_rows']} labelled rows; label-free estimate "
        f"{row['champion_estimated_accuracy']}; {scored}\n\n"
        + markdown.counts(mix, "predicted label" + (" (in the sample)" if sampled else ""))
    )


def _day_metadata(row: dict, result, meta: dict) -> dict:
    """What the UI shows for this one day (its own materialization)."""
    md = f"**Reference:** {row['reference']}\n\n" + result.to_markdown() + _champion_md(row)
    metadata = {
        "verdict": row["verdict"],
        "verdict_reason": row["verdict_reason"] or "-",
        "scores": MetadataValue.json(meta["scores"]),
        "flags": MetadataValue.json(meta["flags"]),
        "thresholds": MetadataValue.json(meta["thresholds"]),
        "threshold_sources": MetadataValue.json(meta["threshold_sources"]),
        "p_values": MetadataValue.json(meta["p_values"]),
        "drifted_metrics": MetadataValue.json(meta["drifted_metrics"]),
        "unknown_labels": MetadataValue.json(meta["unknown_labels"]),
        "reference": row["reference"],
        "reference_rows": meta["reference_rows"],
        "current_rows": meta["current_rows"],
        "report": MetadataValue.md(md),
        "champion_version": MetadataValue.text(str(row["champion_version"])),
        "clean_labelled_rows": row["clean_labelled_rows"],
    }
    # Scores as top-level numbers too, so the UI plots each metric across partitions.
    metadata.update({name: value for name, value in meta["scores"].items() if value is not None})
    for key in ("champion_accuracy", "champion_estimated_accuracy", "champion_accuracy_ci_low",
                "champion_accuracy_ci_high", "champion_scored_rows", "champion_total_rows"):
        if row[key] is not None:
            metadata[key] = row[key]
    return metadata


# The champion-scoring columns of a day nobody scored (blocked, or no champion yet).
_NO_SCORING = {"champion_accuracy_ci_low": None, "champion_accuracy_ci_high": None,
               "champion_scored_rows": 0, "champion_total_rows": 0}


def _blocked_row(key: str, checks: list[str]) -> tuple[dict, dict]:
    """A day the data half's ERROR checks failed in this range run: not judged, and said so."""
    reason = (f"validated_window failed {', '.join(checks)} for {key}: fix the day's data and rematerialize "
              "validated_window and drift_report for it")
    row = {"partition": key, "verdict": "blocked", "verdict_reason": reason, "reference": "-",
           "champion_version": None, "champion_accuracy": None, "champion_labelled_rows": 0,
           **_NO_SCORING, "champion_estimated_accuracy": None, "champion_prediction_mix": "{}", "clean_labelled_rows": 0,
           "unknown_labels": "{}", "concept_class": None, "concept_confused_label": None}
    metadata = {"verdict": "blocked", "verdict_reason": reason,
                "report": MetadataValue.md(f"**Verdict: blocked**: {reason}")}
    return row, metadata


def build_drift_assets(settings: Settings, partitions_def, automation=None) -> list:
    labels = list(settings.labels)
    auto = automation or {}

    @asset(
        partitions_def=partitions_def,
        group_name=GROUP,
        io_manager_key="lake_io",
        backfill_policy=BackfillPolicy.single_run(),
        check_specs=[AssetCheckSpec("drift_within_policy", asset="drift_report", blocking=False,
                                    partitions_def=partitions_def, description=CHECK_DESCRIPTION)],
        automation_condition=auto.get("drift_report"),
    )
    def drift_report(
        context: AssetExecutionContext,
        validated_window: Mapping[str, pl.DataFrame],
        quarantined_rows: Mapping[str, pl.DataFrame],
        lake: Lake,
        registry: ModelRegistryResource,
        state: StateDirs,
    ):
        """The day's drift against the reference (thresholds calibrated on it where they are
        "auto"), its unknown labels, the champion's accuracy, and a verdict."""
        tag_run_story(context)
        reports, rows, day_metadata, checks = {}, [], {}, {}
        champion = registry.champion_version()
        window = registry.window_of(champion) if champion is not None else None
        # Keyed by the reference's content: a new champion window, a rematerialized
        # reference day or a late label is a new calibration, never a stale one.
        cache = state.cache_dir("drift_calibration")
        blocked = failed_checks_of_run(context, "validated_window")
        for key in context.partition_keys:
            if key in blocked:
                row, day_metadata[key] = _blocked_row(key, blocked[key])
                rows.append(row)
                reports[key] = pl.DataFrame([row | drift_columns(dict.fromkeys(DRIFT_METRICS), dict.fromkeys(DRIFT_METRICS, False))])
                checks[key] = DayCheck(False, {"verdict": "blocked"}, row["verdict_reason"])
                context.log.warning(f"drift_report[{key}]: {row['verdict_reason']}")
                continue
            day = day_of(key)
            ref_days, ref_source = reference_days(day, window, settings.reference.days())
            ref_frames = lake.read_many("validated_window", [d.isoformat() for d in ref_days])
            gap = reference_gap(day, ref_days, {day_of(k) for k in ref_frames}, ref_source)
            current = labels_as_of(validated_window[key], day)
            reference = labels_as_of(
                pl.concat(list(ref_frames.values()), how="diagonal_relaxed") if ref_frames else current.clear(),
                day,
            )
            result = drift_of_day(reference, current, quarantine=quarantined_rows[key], day=day, labels=labels,
                                  drift=settings.drift, k=settings.triggers.drift_k, n=settings.triggers.drift_n,
                                  cache_dir=cache, reference_gap=gap)
            # A big day is scored on a seeded sample (keyed by the day, so a rerun scores the same rows).
            perf = registry.performance_on(current, champion, sample_rows=settings.drift.monitoring_sample_rows,
                                           seed=key)
            meta = result.to_metadata()
            row = {
                "partition": key,
                "verdict": result.verdict,
                "verdict_reason": result.verdict_reason,
                "reference": ref_source,
                "champion_version": perf.get("version"),
                "champion_accuracy": perf.get("accuracy"),
                "champion_labelled_rows": perf.get("labelled_rows", 0),
                "champion_accuracy_ci_low": perf.get("accuracy_ci_low"),
                "champion_accuracy_ci_high": perf.get("accuracy_ci_high"),
                "champion_scored_rows": perf.get("scored_rows", 0),
                "champion_total_rows": perf.get("total_rows", 0),
                "champion_estimated_accuracy": perf.get("estimated_accuracy"),
                "champion_prediction_mix": json.dumps(perf.get("prediction_mix", {}), sort_keys=True),
                "clean_labelled_rows": current.filter(pl.col("label").is_not_null()).height,
                "unknown_labels": json.dumps(result.unknown_labels, sort_keys=True),
                # Which class's meaning moved (eval_report's gate leaves its golden rows out of forgetting).
                "concept_class": result.concept_detail.get("class"),
                "concept_confused_label": result.concept_detail.get("confused_label"),
            }
            row.update(drift_columns(result.scores, result.flags, result.thresholds, result.p_values))
            rows.append(row)
            reports[key] = pl.DataFrame([row])
            day_metadata[key] = _day_metadata(row, result, meta)
            checks[key] = DayCheck(
                passed=result.verdict not in FAILING_VERDICTS,
                metadata={"verdict": result.verdict, "drifted_metrics": MetadataValue.json(meta["drifted_metrics"]),
                          "new_classes": MetadataValue.json(meta["new_classes"]),
                          "scores": MetadataValue.json(meta["scores"]),
                          "thresholds": MetadataValue.json(meta["thresholds"])},
                description=result.verdict_reason or None,
            )
            context.log.info(f"drift_report[{key}]: {result.verdict} {meta['drifted_metrics']} vs {ref_source}"
                             + (f"; {result.new_class_message()}" if result.new_classes else "")
                             + (f"; {result.verdict_reason}" if result.verdict_reason else ""))
        attach_day_metadata(context, day_metadata)
        # The range's summary (the same on every day of a backfill, so it says it is the range's).
        summary = {}
        if len(rows) > 1:
            summary["range_summary"] = MetadataValue.md(markdown.table([
                {"partition": r["partition"], "verdict": r["verdict"], "champion_accuracy": r["champion_accuracy"]}
                | {k: r[k] for k in r if k.startswith("score_")}
                for r in rows
            ]))
        yield Output(reports, metadata=summary)
        yield from day_checks(context, "drift_report", "drift_within_policy", checks, AssetCheckSeverity.WARN)

    return [drift_report]
