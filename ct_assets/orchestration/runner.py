"""Run asset selections in-process on the real Dagster instance under CT_HOME.

Used by the CLI and the demo: the same Definitions the UI loads, executed through
Dagster (runs, event log, checks), not by calling asset functions directly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from dagster import AssetKey, DagsterInstance, Definitions

from ct_assets.core.home import CtHome
from ct_assets.orchestration.dagster_private import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from ct_assets.orchestration.run_sweep import process_tags, sweep_dead_runs


def instance_for(home: CtHome) -> DagsterInstance:
    """The persistent instance in CT_HOME/dagster, the one `make dev` shows."""
    os.environ["DAGSTER_HOME"] = str(home.dagster)
    return DagsterInstance.get()


def materialize_range(
    defs: Definitions,
    instance: DagsterInstance,
    assets: Sequence[str],
    first: str,
    last: str,
    tags: Mapping[str, str] | None = None,
    raise_on_error: bool = True,
    console_level: str = "INFO",
):
    """One run over partitions first..last (a single-run backfill) of ``assets``.

    ``console_level`` only quiets the terminal; the event log keeps everything.
    Runs of processes that were killed are marked failed first (run_sweep: nothing
    else marks an in-process run), and this run is tagged so the next one can tell.
    """
    sweep_dead_runs(instance)
    job = defs.resolve_implicit_global_asset_job_def()
    run_tags = {**(tags or {}), **process_tags()}
    run_config = {"loggers": {"console": {"config": {"log_level": console_level}}}}
    selection = [AssetKey(a) for a in assets]
    if first == last:
        return job.execute_in_process(
            run_config=run_config, instance=instance, partition_key=first, asset_selection=selection,
            tags=run_tags, raise_on_error=raise_on_error,
        )
    run_tags.update({ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last})
    return job.execute_in_process(
        run_config=run_config, instance=instance, asset_selection=selection, tags=run_tags,
        raise_on_error=raise_on_error,
    )
