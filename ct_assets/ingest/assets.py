"""Ingest: raw_window -> validated_window (+ quarantined_rows).

Thin wrappers: each unpacks the partition range, calls the pure code in
``ct_assets.ingest`` once per day, and returns ``{partition_key: frame}`` plus metadata.
Looping per day inside one run is what makes a single-run backfill give exactly the
result of day-by-day runs.
"""


from collections.abc import Mapping

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetOut,
    BackfillPolicy,
    MetadataValue,
    Output,
    asset,
    multi_asset,
)

from ct_assets.core import markdown
from ct_assets.core.schema import RAW_SCHEMA
from ct_assets.core.settings import Settings
from ct_assets.core.time import day_of, labels_as_of
from ct_assets.ingest.expectations import validate_clean
from ct_assets.ingest.quality import split_rows
from ct_assets.ingest.resources import RowSource
from ct_assets.orchestration.state import StateDirs

GROUP = "data"
PREVIEW_COLUMNS = ("event_id", "event_ts", "label", "label_ts", "text")


def build_ingest_assets(settings: Settings, partitions_def, automation=None) -> list:
    """raw_window and validated_window, closed over the loaded settings."""
    labels = list(settings.labels)
    quality = settings.quality
    auto = automation or {}

    @asset(
        partitions_def=partitions_def,
        group_name=GROUP,
        io_manager_key="lake_io",
        backfill_policy=BackfillPolicy.single_run(),
        check_specs=[
            AssetCheckSpec("raw_schema", asset="raw_window", blocking=True, description="the landing row contract holds"),
            AssetCheckSpec("raw_has_rows", asset="raw_window", description="the day has data (warn)"),
        ],
        automation_condition=auto.get("raw_window"),
        freshness_policy=auto.get("raw_window_freshness"),
    )
    def raw_window(context: AssetExecutionContext, source: RowSource):
        """The day's rows from the source, coerced to the landing row contract."""
        frames, per_day, empty_days, files = {}, [], [], 0
        # What the reader did not read, or did not keep in its own type: never silent.
        skipped, json_text, renamed = [], {}, {}
        for key in context.partition_keys:
            day = source.fetch_day(day_of(key))
            frame = day.frame
            frames[key] = frame
            files += len(day.files)
            skipped += [{"partition": key, "file": f, "reason": why} for f, why in day.skipped]
            if day.json_text_columns:
                json_text[key] = day.json_text_columns
            if day.renamed_columns:
                renamed[key] = day.renamed_columns
            known = labels_as_of(frame, day_of(key)) if frame.height else frame
            labelled = known.filter(pl.col("label").is_not_null()).height
            per_day.append({
                "partition": key,
                "rows": frame.height,
                "files": len(day.files),
                "bytes": day.bytes_read,
                "labelled_share": round(labelled / frame.height, 3) if frame.height else 0.0,
            })
            if frame.height == 0:
                empty_days.append(key)
            context.log.info(f"raw_window[{key}]: {frame.height} rows from {len(day.files)} file(s) via {source.describe()}")
            for f, why in day.skipped:
                context.log.warning(f"raw_window[{key}]: not read: {f}: {why}")
        all_rows = pl.concat(list(frames.values()), how="diagonal_relaxed")
        label_counts = labels_as_of(all_rows, day_of(context.partition_keys[-1]))["label"].drop_nulls().value_counts()
        yield Output(
            frames,
            metadata={
                "row_count": all_rows.height,
                "labelled_share": (
                    round(sum(d["labelled_share"] * d["rows"] for d in per_day) / all_rows.height, 3)
                    if all_rows.height else 0.0
                ),
                "label_counts": MetadataValue.json({r["label"]: r["count"] for r in label_counts.to_dicts()}),
                "bytes": sum(d["bytes"] for d in per_day),
                "files": files,
                "skipped_files": MetadataValue.json(skipped),
                "json_text_columns": MetadataValue.json(json_text),
                "renamed_columns": MetadataValue.json(renamed),
                "per_day": MetadataValue.md(markdown.table(per_day)),
                "preview": MetadataValue.md(markdown.frame_preview(all_rows, 5, PREVIEW_COLUMNS)),
            },
        )
        schema_problems = [
            f"{name}: {all_rows.schema.get(name)} (expected {dtype})"
            for name, dtype in RAW_SCHEMA.items()
            if all_rows.schema.get(name) != dtype
        ]
        yield AssetCheckResult(
            check_name="raw_schema",
            passed=not schema_problems,
            severity=AssetCheckSeverity.ERROR,
            metadata={"problems": MetadataValue.json(schema_problems)},
        )
        yield AssetCheckResult(
            check_name="raw_has_rows",
            passed=not empty_days,
            severity=AssetCheckSeverity.WARN,
            metadata={"empty_partitions": MetadataValue.json(empty_days)},
        )

    @multi_asset(
        partitions_def=partitions_def,
        group_name=GROUP,
        backfill_policy=BackfillPolicy.single_run(),
        outs={
            "validated_window": AssetOut(
                io_manager_key="lake_io",
                description="Clean, preprocessed rows of the day.",
                automation_condition=auto.get("validated_window"),
            ),
            "quarantined_rows": AssetOut(
                io_manager_key="lake_io",
                description="Rejected rows of the day, original content plus a reason code.",
                automation_condition=auto.get("validated_window"),
            ),
        },
        check_specs=[
            AssetCheckSpec(
                "rejected_fraction_within_limit",
                asset="validated_window",
                blocking=True,
                description=f"broken-row share <= max_bad_fraction ({quality.max_bad_fraction}); rows of a label "
                "not in `labels` are quarantined but not counted (drift_report reports them)",
            ),
            AssetCheckSpec(
                "great_expectations_suite", asset="validated_window", blocking=True,
                description="the Great Expectations suite passes on the clean rows",
            ),
        ],
    )
    def validated_window(context: AssetExecutionContext, raw_window: Mapping[str, pl.DataFrame], state: StateDirs):
        """Clean rows and quarantined rows of the day."""
        clean, quarantine, per_day, gx_results = {}, {}, [], []
        reasons: dict[str, int] = {}
        for key in context.partition_keys:
            result = split_rows(
                raw_window[key],
                day=day_of(key),
                labels=labels,
                max_text_chars=quality.max_text_chars,
                reject_text_chars=quality.reject_text_chars,
                mask_emails=quality.mask_emails,
                mask_phones=quality.mask_phones,
            )
            clean[key], quarantine[key] = result.clean, result.quarantine
            for reason, n in result.reason_counts.items():
                reasons[reason] = reasons.get(reason, 0) + n
            gx = validate_clean(
                result.clean,
                labels=labels,
                max_text_chars=quality.max_text_chars,
                docs_dir=state.data_docs_dir(),
                run_name=f"validated_window-{key}",
            )
            gx_results.append((key, gx))
            per_day.append({
                "partition": key,
                "read": result.rows_read,
                "clean": result.clean.height,
                "quarantined": result.quarantine.height,
                "unknown_label": result.unknown_label_rows,
                "rejected_fraction": round(result.rejected_fraction, 4),
                "bad_fraction": round(result.bad_fraction, 4),
                "gx": f"{gx.successful}/{gx.evaluated}",
            })
        read = sum(d["read"] for d in per_day)
        n_clean = sum(d["clean"] for d in per_day)
        n_bad = sum(d["quarantined"] for d in per_day)
        # Rows of a label not in `labels` stay quarantined but do not count as broken: a
        # new class is a signal (drift_report names it), not a reason to stop the data half.
        worst = max(per_day, key=lambda d: d["bad_fraction"])
        n_unknown = sum(d["unknown_label"] for d in per_day)
        docs_index = gx_results[-1][1].docs_index
        yield Output(
            clean,
            output_name="validated_window",
            metadata={
                "rows_read": read,
                "rows_clean": n_clean,
                "rows_quarantined": n_bad,
                "rows_unknown_label": n_unknown,
                "rejected_fraction": round(n_bad / read, 4) if read else 0.0,
                "per_day": MetadataValue.md(markdown.table(per_day)),
                "great_expectations": MetadataValue.json([
                    {"partition": k, "success": g.success, "results": g.results} for k, g in gx_results
                ]),
                "data_docs": MetadataValue.path(str(docs_index)) if docs_index else MetadataValue.text("not built"),
                "preview": MetadataValue.md(markdown.frame_preview(pl.concat(list(clean.values()), how="diagonal_relaxed"), 5, PREVIEW_COLUMNS)),
            },
        )
        yield Output(
            quarantine,
            output_name="quarantined_rows",
            metadata={
                "rows_quarantined": n_bad,
                "reason_counts": MetadataValue.md(markdown.counts(reasons, "reason")),
            },
        )
        yield AssetCheckResult(
            check_name="rejected_fraction_within_limit",
            asset_key="validated_window",
            passed=worst["bad_fraction"] <= quality.max_bad_fraction,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "worst_partition": worst["partition"],
                "worst_bad_fraction": worst["bad_fraction"],
                "unknown_label_rows": n_unknown,
                "max_bad_fraction": quality.max_bad_fraction,
                "reason_counts": MetadataValue.json(reasons),
            },
        )
        failed_gx = [k for k, g in gx_results if not g.success]
        yield AssetCheckResult(
            check_name="great_expectations_suite",
            asset_key="validated_window",
            passed=not failed_gx,
            severity=AssetCheckSeverity.ERROR,
            metadata={"failed_partitions": MetadataValue.json(failed_gx)},
        )

    return [raw_window, validated_window]
