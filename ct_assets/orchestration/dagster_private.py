"""The only imports of Dagster's private modules, each with the reason no public API serves.

When Dagster moves one of these, this file is the one place to fix.
"""

# A check evaluated per partition inside a range run (one AssetCheckEvaluation per day,
# see orchestration.per_partition) names the materialization it judged with this record,
# as Dagster's own AssetCheckResult does for a one-partition run; it is not exported.
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

# A run over a partition range (a single-run backfill) is a run tagged with the range's
# first and last keys; `execute_in_process` takes one partition_key only, and Dagster
# exports no public name for these two tag keys.
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

# The replay evaluates the weekly schedule at the ticks that fall on a simulated day.
# Dagster exposes no public iterator over a cron string's ticks, and croniter is not a
# dependency of the pinned Dagster family; this is the iterator the daemon itself uses.
from dagster._utils.schedules import cron_string_iterator

__all__ = [
    "ASSET_PARTITION_RANGE_END_TAG",
    "ASSET_PARTITION_RANGE_START_TAG",
    "AssetCheckEvaluationTargetMaterializationData",
    "cron_string_iterator",
]
