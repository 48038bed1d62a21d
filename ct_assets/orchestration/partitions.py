"""Daily UTC partitions; the partition key is the date d (see ct_assets.core.time)."""

from __future__ import annotations

import datetime as dt

from dagster import AssetIn, DailyPartitionsDefinition, TimeWindowPartitionMapping


def daily_partitions(start_date: dt.date) -> DailyPartitionsDefinition:
    return DailyPartitionsDefinition(start_date=start_date.isoformat(), timezone="UTC")


def trailing_days(days: int) -> AssetIn:
    """An input of the ``days`` partitions up to and including d; days that do not exist
    (before the first partition, or never materialized) are left out, not an error."""
    return AssetIn(
        partition_mapping=TimeWindowPartitionMapping(
            start_offset=-(days - 1), end_offset=0, allow_nonexistent_upstream_partitions=True),
        metadata={"allow_missing_partitions": True},
    )


def only_partition(context) -> str:
    """The one partition of a model-asset run.

    Model assets run one partition per run (a multi-run backfill): each day is its own
    training, with its own MLflow run and registered version.
    """
    keys = context.partition_keys
    if len(keys) != 1:
        raise ValueError(f"{context.asset_key.to_user_string()} runs one partition per run, got {keys}")
    return keys[0]


def single_row(frames, key: str, asset: str) -> dict:
    """The one-row record an upstream model asset stored for ``key``."""
    if key not in frames or frames[key].height == 0:
        raise ValueError(f"{asset}[{key}] is missing: materialize it first")
    return frames[key].to_dicts()[0]
