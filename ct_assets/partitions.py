"""Daily UTC partitions; the partition key is the date d."""

from __future__ import annotations

import datetime as dt

from dagster import DailyPartitionsDefinition


def daily_partitions(start_date: dt.date) -> DailyPartitionsDefinition:
    return DailyPartitionsDefinition(start_date=start_date.isoformat(), timezone="UTC")


def day_of(partition_key: str) -> dt.date:
    return dt.date.fromisoformat(partition_key)


def end_of_day(day: dt.date) -> dt.datetime:
    """Exclusive end of d: everything known as of d happened strictly before this."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc)
