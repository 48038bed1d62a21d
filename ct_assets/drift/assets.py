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
from ct_assets.drift.reference import reference_days
from ct_assets.drift.statistics import compute_drift
from ct_assets.lake.resources import Lake
from ct_assets.registry.resources import ModelRegistryResource

GROUP = "data"


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
        lake: Lake,
        registry: ModelRegistryResource,
    ):
        """The day's drift against the reference, the champion's accuracy, and a verdict."""
        reports, rows, results = {}, [], {}
        champion = registry.champion_version()
        window = registry.window_of(champion) if champion is not None else None
        for key in context.partition_keys:
            day = day_of(key)
            ref_days, ref_source = reference_days(day, window, settings.reference.days())
            ref_frames = lake.read_many("validated_window", [d.isoformat() for d in ref_days])
            current = labels_as_of(validated_window[key], day)
            reference = labels_as_of(
                pl.concat(list(ref_frames.values()), how="diagonal_relaxed") if ref_frames else current.clear(),
                day,
            )
            result = compute_drift(
                reference, current,
                labels=labels,
                thresholds=settings.drift.thresholds.model_dump(),
                top_new_terms=settings.drift.top_new_terms,
                min_term_count=settings.drift.min_term_count,
                sample_rows=settings.drift.sample_rows,
                seed=day.toordinal(),
            )
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
            }
            row.update(drift_columns(result.scores, result.flags))
            rows.append(row)
            results[key] = (result, meta)
            reports[key] = pl.DataFrame([row])
            context.log.info(f"drift_report[{key}]: {result.verdict} {meta['drifted_metrics']} vs {ref_source}")
        last = rows[-1]
        result, meta = results[last["partition"]]
        md = f"**Reference:** {last['reference']}\n\n" + result.to_markdown() + _champion_md(last)
        metadata = {
            "verdict": last["verdict"],
            "scores": MetadataValue.json(meta["scores"]),
            "flags": MetadataValue.json(meta["flags"]),
            "drifted_metrics": MetadataValue.json(meta["drifted_metrics"]),
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
        yield AssetCheckResult(
            check_name="drift_within_policy",
            asset_key="drift_report",
            passed=not drifted,
            severity=AssetCheckSeverity.WARN,
            metadata={
                "drifted_partitions": MetadataValue.json(drifted),
                "scores": MetadataValue.json(meta["scores"]),
                "thresholds": MetadataValue.json(meta["thresholds"]),
                "drifted_metrics": MetadataValue.json(meta["drifted_metrics"]),
            },
        )

    return [drift_report]
