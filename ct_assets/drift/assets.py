"""Drift: drift_report, the day's drift against the reference, and the champion's accuracy."""

import json
from collections.abc import Mapping

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    BackfillPolicy,
    MetadataValue,
    Output,
    asset,
)

from ct_assets.core import markdown
from ct_assets.core.schema import drift_columns
from ct_assets.core.settings import Settings
from ct_assets.core.time import day_of, labels_as_of
from ct_assets.drift.daily import drift_of_day
from ct_assets.drift.reference import reference_days
from ct_assets.lake.resources import Lake
from ct_assets.orchestration.state import StateDirs
from ct_assets.registry.resources import ModelRegistryResource

GROUP = "data"
FAILING_VERDICTS = ("drift", "new_class")  # drift_within_policy (WARN) fails on these


def _champion_md(row: dict) -> str:
    if row["champion_version"] is None:
        return "\n\n**Champion:** none yet, so the reference is the configured range."
    acc = row["champion_accuracy"]
    mix = json.loads(row["champion_prediction_mix"])
    return (
        f"\n\n**Champion v{row['champion_version']}:** accuracy {acc if acc is not None else 'n/a'} "
        f"on {row['champion_labelled_rows']} labelled rows; label-free estimate "
        f"{row['champion_estimated_accuracy']}\n\n" + markdown.counts(mix, "predicted label")
    )


def build_drift_assets(settings: Settings, partitions_def, automation=None) -> list:
    labels = list(settings.labels)
    auto = automation or {}

    @asset(
        partitions_def=partitions_def,
        group_name=GROUP,
        io_manager_key="lake_io",
        backfill_policy=BackfillPolicy.single_run(),
        check_specs=[AssetCheckSpec("drift_within_policy", asset="drift_report", blocking=False)],
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
        reports, rows, results = {}, [], {}
        champion = registry.champion_version()
        window = registry.window_of(champion) if champion is not None else None
        # Keyed by the reference's content: a new champion window, a rematerialized
        # reference day or a late label is a new calibration, never a stale one.
        cache = state.cache_dir("drift_calibration")
        for key in context.partition_keys:
            day = day_of(key)
            ref_days, ref_source = reference_days(day, window, settings.reference.days())
            ref_frames = lake.read_many("validated_window", [d.isoformat() for d in ref_days])
            current = labels_as_of(validated_window[key], day)
            reference = labels_as_of(
                pl.concat(list(ref_frames.values()), how="diagonal_relaxed") if ref_frames else current.clear(),
                day,
            )
            result = drift_of_day(reference, current, quarantine=quarantined_rows[key], day=day, labels=labels,
                                  drift=settings.drift, k=settings.triggers.drift_k, n=settings.triggers.drift_n,
                                  cache_dir=cache)
            perf = registry.performance_on(current, champion)
            meta = result.to_metadata()
            row = {
                "partition": key,
                "verdict": result.verdict,
                "reference": ref_source,
                "champion_version": perf.get("version"),
                "champion_accuracy": perf.get("accuracy"),
                "champion_labelled_rows": perf.get("labelled_rows", 0),
                "champion_estimated_accuracy": perf.get("estimated_accuracy"),
                "champion_prediction_mix": json.dumps(perf.get("prediction_mix", {}), sort_keys=True),
                "clean_labelled_rows": current.filter(pl.col("label").is_not_null()).height,
                "unknown_labels": json.dumps(result.unknown_labels, sort_keys=True),
            }
            row.update(drift_columns(result.scores, result.flags, result.thresholds, result.p_values))
            rows.append(row)
            results[key] = (result, meta)
            reports[key] = pl.DataFrame([row])
            context.log.info(f"drift_report[{key}]: {result.verdict} {meta['drifted_metrics']} vs {ref_source}"
                             + (f"; {result.new_class_message()}" if result.new_classes else ""))
        last = rows[-1]
        result, meta = results[last["partition"]]
        md = f"**Reference:** {last['reference']}\n\n" + result.to_markdown() + _champion_md(last)
        metadata = {
            "verdict": last["verdict"],
            "scores": MetadataValue.json(meta["scores"]),
            "flags": MetadataValue.json(meta["flags"]),
            "thresholds": MetadataValue.json(meta["thresholds"]),
            "threshold_sources": MetadataValue.json(meta["threshold_sources"]),
            "p_values": MetadataValue.json(meta["p_values"]),
            "drifted_metrics": MetadataValue.json(meta["drifted_metrics"]),
            "unknown_labels": MetadataValue.json(meta["unknown_labels"]),
            "reference": last["reference"],
            "report": MetadataValue.md(md),
            "champion_version": MetadataValue.text(str(last["champion_version"])),
            "clean_labelled_rows": last["clean_labelled_rows"],
        }
        for key in ("champion_accuracy", "champion_estimated_accuracy"):
            if last[key] is not None:
                metadata[key] = last[key]
        if len(rows) > 1:
            metadata["per_day"] = MetadataValue.md(markdown.table([
                {"partition": r["partition"], "verdict": r["verdict"], "champion_accuracy": r["champion_accuracy"]}
                | {k: r[k] for k in r if k.startswith("score_")}
                for r in rows
            ]))
        yield Output(reports, metadata=metadata)
        drifted = [r["partition"] for r in rows if r["verdict"] == "drift"]
        new_class = [r["partition"] for r in rows if r["verdict"] == "new_class"]
        yield AssetCheckResult(
            check_name="drift_within_policy",
            asset_key="drift_report",
            passed=not any(r["verdict"] in FAILING_VERDICTS for r in rows),
            severity=AssetCheckSeverity.WARN,
            metadata={
                "drifted_partitions": MetadataValue.json(drifted),
                "new_class_partitions": MetadataValue.json(new_class),
                "new_classes": MetadataValue.json(meta["new_classes"]),
                "scores": MetadataValue.json(meta["scores"]),
                "thresholds": MetadataValue.json(meta["thresholds"]),
                "drifted_metrics": MetadataValue.json(meta["drifted_metrics"]),
            },
        )

    return [drift_report]
