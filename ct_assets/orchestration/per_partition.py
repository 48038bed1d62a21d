"""Each day's own truth in a multi-partition run: metadata and check results per partition.

A single-run backfill materializes every day of a range in one step. Dagster records one
materialization per day, but metadata given to ``Output`` is copied onto all of them, and an
``AssetCheckResult`` is one result for the whole range: the UI would show the last day's
figures, and one bad day's check, on every day. These helpers attach each day's metadata to
that day's materialization (``add_asset_metadata(partition_key=...)``) and emit one
partitioned check evaluation per day.

Blocking: in a one-day run a failed ERROR check blocks downstream natively (Dagster stops
the run's later steps). In a range run that would stop every day of the range for one bad
day, so the evaluations are recorded non-blocking and the downstream asset of the same run
asks ``failed_checks_of_run`` which days failed and leaves them out itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckSeverity,
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    Output,
)

from ct_assets.orchestration.dagster_private import AssetCheckEvaluationTargetMaterializationData


@dataclass(frozen=True)
class DayCheck:
    """One day's outcome of one check."""

    passed: bool
    metadata: dict = field(default_factory=dict)
    description: str | None = None


def attach_day_metadata(context, per_day: Mapping[str, Mapping], asset_key: str | None = None) -> None:
    """Each day's metadata onto that day's materialization only."""
    for key, metadata in per_day.items():
        context.add_asset_metadata(dict(metadata), asset_key=asset_key, partition_key=key)


def day_checks(context, asset_key: str, check_name: str, per_day: Mapping[str, DayCheck],
               severity: AssetCheckSeverity) -> Iterator:
    """One evaluation of ``check_name`` per day (plus the check's step output, which
    Dagster expects once per run). Yield these after the asset's own Output."""
    check_key = AssetCheckKey(AssetKey(asset_key), check_name)
    spec = context.assets_def.get_spec_for_check_key(check_key)
    yield Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(check_key))
    # Native blocking only where it blocks nothing but the day itself (see module doc).
    blocking = spec.blocking and len(context.partition_keys) == 1
    for key, result in per_day.items():
        yield AssetCheckEvaluation(
            asset_key=check_key.asset_key, check_name=check_name, passed=result.passed,
            metadata=result.metadata, severity=severity, description=result.description or spec.description,
            partition=key, blocking=blocking,
            target_materialization_data=_latest_materialization(context.instance, check_key.asset_key, key),
        )


def failed_checks_of_run(context, asset_key: str) -> dict[str, list[str]]:
    """Day -> names of the ERROR checks on ``asset_key`` that failed for it in this run."""
    records = context.instance.get_records_for_run(
        context.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records
    failed: dict[str, list[str]] = {}
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if (evaluation.asset_key == AssetKey(asset_key) and not evaluation.passed
                and evaluation.severity == AssetCheckSeverity.ERROR and evaluation.partition):
            failed.setdefault(evaluation.partition, []).append(evaluation.check_name)
    return failed


def _latest_materialization(instance, asset_key: AssetKey, partition: str):
    """The materialization a day's check judged, so the UI ties the check to it."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition]), limit=1).records
    if not records:
        return None
    latest = records[0]
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=latest.storage_id, run_id=latest.event_log_entry.run_id, timestamp=latest.timestamp)
