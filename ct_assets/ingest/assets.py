"""Ingest: raw_window -> validated_window (+ quarantined_rows).

Thin wrappers: each unpacks the partition range, calls the pure code in
``ct_assets.ingest`` once per day, and returns ``{partition_key: frame}`` plus metadata.
Looping per day inside one run is what makes a single-run backfill give exactly the
result of day-by-day runs.
"""


from collections.abc import Mapping

import polars as pl
from dagster import (
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
from ct_assets.ingest.expectations import expectations_markdown, validate_clean, warm_up_in_background
from ct_assets.ingest.quality import split_rows
from ct_assets.ingest.resources import RowSource
from ct_assets.orchestration.per_partition import DayCheck, attach_day_metadata, day_checks, failed_checks_of_run
from ct_assets.orchestration.run_tags import tag_run_story
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
            AssetCheckSpec("raw_schema", asset="raw_window", blocking=True, partitions_def=partitions_def,
                           description="the day's rows have the landing row contract's columns and types"),
            AssetCheckSpec("raw_has_rows", asset="raw_window", partitions_def=partitions_def,
                           description="warns when the day has no rows (no file, or empty files)"),
        ],
        automation_condition=auto.get("raw_window"),
        freshness_policy=auto.get("raw_window_freshness"),
    )
    def raw_window(context: AssetExecutionContext, source: RowSource):
        """The day's rows from the source, coerced to the landing row contract."""
        tag_run_story(context)
        frames, per_day, day_metadata = {}, [], {}
        for key in context.partition_keys:
            day = source.fetch_day(day_of(key))
            frame = frames[key] = day.frame
            known = labels_as_of(frame, day_of(key)) if frame.height else frame
            labelled = known.filter(pl.col("label").is_not_null()).height
            label_counts = known["label"].drop_nulls().value_counts() if frame.height else None
            summary = {"partition": key, "rows": frame.height, "files": len(day.files), "bytes": day.bytes_read,
                       "labelled_share": round(labelled / frame.height, 3) if frame.height else 0.0}
            per_day.append(summary)
            # What the reader did not read, or did not keep in its own type: never silent.
            day_metadata[key] = {
                "row_count": frame.height, "labelled_share": summary["labelled_share"], "bytes": day.bytes_read,
                "files": len(day.files),
                "label_counts": MetadataValue.json(
                    {r["label"]: r["count"] for r in label_counts.to_dicts()} if label_counts is not None else {}),
                "skipped_files": MetadataValue.json([{"file": f, "reason": why} for f, why in day.skipped]),
                "json_text_columns": MetadataValue.json(day.json_text_columns or []),
                "renamed_columns": MetadataValue.json(day.renamed_columns or {}),
                "preview": MetadataValue.md(markdown.frame_preview(frame, 5, PREVIEW_COLUMNS)),
            }
            context.log.info(f"raw_window[{key}]: {frame.height} rows from {len(day.files)} file(s) via {source.describe()}")
            for f, why in day.skipped:
                context.log.warning(f"raw_window[{key}]: not read: {f}: {why}")
        attach_day_metadata(context, day_metadata)
        range_metadata = {"range_per_day": MetadataValue.md(markdown.table(per_day))} if len(per_day) > 1 else {}
        yield Output(frames, metadata=range_metadata)
        schema_checks, row_checks = {}, {}
        for key, frame in frames.items():
            problems = [f"{name}: {frame.schema.get(name)} (expected {dtype})"
                        for name, dtype in RAW_SCHEMA.items() if frame.schema.get(name) != dtype]
            schema_checks[key] = DayCheck(not problems, {"problems": MetadataValue.json(problems)})
            row_checks[key] = DayCheck(frame.height > 0, {"rows": frame.height})
        yield from day_checks(context, "raw_window", "raw_schema", schema_checks, AssetCheckSeverity.ERROR)
        yield from day_checks(context, "raw_window", "raw_has_rows", row_checks, AssetCheckSeverity.WARN)

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
                partitions_def=partitions_def,
                description=f"broken-row share <= max_bad_fraction ({quality.max_bad_fraction}); rows of a label "
                "not in `labels` are quarantined but not counted (drift_report reports them)",
            ),
            AssetCheckSpec(
                "great_expectations_suite", asset="validated_window", blocking=True, partitions_def=partitions_def,
                description="the Great Expectations suite passes on the day's clean rows (Data Docs linked)",
            ),
        ],
    )
    def validated_window(context: AssetExecutionContext, raw_window: Mapping[str, pl.DataFrame], state: StateDirs):
        """Clean rows and quarantined rows of the day."""
        tag_run_story(context)
        clean, quarantine, per_day, clean_md, quarantine_md = {}, {}, [], {}, {}
        fraction_checks, gx_checks = {}, {}
        blocked = failed_checks_of_run(context, "raw_window")
        # The GX import and context (seconds, once per process) overlap the first day's split.
        warm_up_in_background(state.data_docs_dir(), labels=labels, max_text_chars=quality.max_text_chars)
        for key in context.partition_keys:
            reason = f"raw_window failed {', '.join(blocked[key])} for {key}" if key in blocked else None
            if reason:
                # A day whose raw rows broke the contract is not split: its rows stay in
                # raw_window, this day's clean and quarantined frames are empty (with their
                # own schemas: the split of no rows), and both checks say why.
                clean_md[key] = quarantine_md[key] = {"blocked": reason}
                fraction_checks[key] = gx_checks[key] = DayCheck(False, {"blocked": reason}, reason)
            result = split_rows(
                pl.DataFrame(schema=RAW_SCHEMA) if reason else raw_window[key],
                day=day_of(key),
                labels=labels,
                max_text_chars=quality.max_text_chars,
                reject_text_chars=quality.reject_text_chars,
                mask_emails=quality.mask_emails,
                mask_phones=quality.mask_phones,
            )
            clean[key], quarantine[key] = result.clean, result.quarantine
            if reason:
                continue
            gx = validate_clean(
                result.clean,
                labels=labels,
                max_text_chars=quality.max_text_chars,
                docs_dir=state.data_docs_dir(),
                run_name=f"validated_window-{key}",
                sample_rows=quality.gx_sample_rows,
            )
            summary = {
                "partition": key,
                "read": result.rows_read,
                "clean": result.clean.height,
                "quarantined": result.quarantine.height,
                "unknown_label": result.unknown_label_rows,
                "rejected_fraction": round(result.rejected_fraction, 4),
                "bad_fraction": round(result.bad_fraction, 4),
                "gx": f"{gx.successful}/{gx.evaluated}",
                "gx_rows": f"{gx.sampled_rows}/{gx.total_rows}",
            }
            per_day.append(summary)
            clean_md[key] = {
                "rows_read": result.rows_read, "rows_clean": result.clean.height,
                "rows_quarantined": result.quarantine.height, "rows_unknown_label": result.unknown_label_rows,
                "rejected_fraction": summary["rejected_fraction"], "bad_fraction": summary["bad_fraction"],
                "great_expectations": MetadataValue.md(expectations_markdown(gx)),
                "gx_rows_validated": gx.sampled_rows,
                **({"data_docs": MetadataValue.url(gx.docs_index.resolve().as_uri())} if gx.docs_index else {}),
                "preview": MetadataValue.md(markdown.frame_preview(result.clean, 5, PREVIEW_COLUMNS)),
            }
            quarantine_md[key] = {"rows_quarantined": result.quarantine.height,
                                  "reason_counts": MetadataValue.md(markdown.counts(result.reason_counts, "reason"))}
            # Rows of a label not in `labels` stay quarantined but do not count as broken: a
            # new class is a signal (drift_report names it), not a reason to stop the data half.
            fraction_checks[key] = DayCheck(result.bad_fraction <= quality.max_bad_fraction, {
                "bad_fraction": summary["bad_fraction"], "max_bad_fraction": quality.max_bad_fraction,
                "unknown_label_rows": result.unknown_label_rows,
                "reason_counts": MetadataValue.json(result.reason_counts)})
            gx_checks[key] = DayCheck(gx.success, {
                "evaluated": gx.evaluated, "successful": gx.successful,
                "rows_validated": gx.sampled_rows, "rows_total": gx.total_rows,
                "failed": MetadataValue.json([r for r in gx.results if not r.get("success")])})
        attach_day_metadata(context, clean_md, asset_key="validated_window")
        attach_day_metadata(context, quarantine_md, asset_key="quarantined_rows")
        range_metadata = {"range_per_day": MetadataValue.md(markdown.table(per_day))} if len(per_day) > 1 else {}
        yield Output(clean, output_name="validated_window", metadata=range_metadata)
        yield Output(quarantine, output_name="quarantined_rows")
        yield from day_checks(context, "validated_window", "rejected_fraction_within_limit", fraction_checks,
                              AssetCheckSeverity.ERROR)
        yield from day_checks(context, "validated_window", "great_expectations_suite", gx_checks,
                              AssetCheckSeverity.ERROR)

    return [raw_window, validated_window]
