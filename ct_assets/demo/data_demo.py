"""The data half of the demo: simulate the stream, then backfill the data assets.

Simulated days land in the landing zone first, exactly as files from production
would; then one single-run backfill materializes raw_window -> validated_window ->
drift_report day by day through the real Definitions and instance, as daily
automation would. (A single-run backfill over a range is the other way, from the UI or
`dagster asset materialize --partition-range`; a blocking check failing on any day of
such a range blocks the whole range's downstream step, loudly.)
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ct_assets.core.home import CtHome
from ct_assets.core.schema import MANUAL, REASON_TAG, TRIGGER_TAG, DayObservation
from ct_assets.core.settings import Settings
from ct_assets.demo.timeline import format_table
from ct_assets.ingest.resources import SimulatorSource
from ct_assets.lake.resources import Lake
from ct_assets.orchestration.runner import instance_for, materialize_range
from ct_assets.sim.simulator import write_day

DATA_ASSETS = ("raw_window", "validated_window", "quarantined_rows", "drift_report")


def simulate_days(source: SimulatorSource, start: dt.date, days: int) -> list[dt.date]:
    config = source.simulator_config()
    first = dt.date.fromisoformat(source.start_date)
    out = []
    for i in range(days):
        day = start + dt.timedelta(days=i)
        write_day(config, first, day, Path(source.path))
        out.append(day)
    return out


def data_summary(lake: Lake, days: list[dt.date]) -> list[dict]:
    rows = []
    for day in days:
        key = day.isoformat()
        clean = lake.read("validated_window", key)
        bad = lake.read("quarantined_rows", key)
        drift = lake.read("drift_report", key)
        obs = DayObservation.from_frame(drift) if drift is not None else None
        reasons = (
            ",".join(f"{r}:{n}" for r, n in bad["reason"].value_counts(sort=True).iter_rows())
            if bad is not None and bad.height else ""
        )
        rows.append({
            "day": key,
            "clean": clean.height if clean is not None else "-",
            "quarantined": bad.height if bad is not None else "-",
            "reasons": reasons[:40],
            "drift": obs.verdict if obs else "blocked",
            "metrics": ",".join(obs.drifted_metrics) if obs else "",
        })
    return rows


def run_data_demo(settings: Settings, home: CtHome, defs, days: int) -> str:
    from ct_assets.orchestration.resources import build_source

    source = build_source(settings, home)
    start = settings.partitions.start_date
    if isinstance(source, SimulatorSource):
        simulated = simulate_days(source, start, days)
    else:
        simulated = [start + dt.timedelta(days=i) for i in range(days)]
    instance = instance_for(home)
    failed = []
    for day in simulated:
        result = materialize_range(
            defs, instance, DATA_ASSETS, day.isoformat(), day.isoformat(),
            tags={TRIGGER_TAG: MANUAL, REASON_TAG: f"demo: data half for {day}"}, raise_on_error=False,
        )
        if not result.success:
            failed.append(day.isoformat())
    rows = data_summary(Lake(base_path=home.lake_url), simulated)
    status = f"; runs with a failed step: {failed}" if failed else ""
    return f"Data half over {days} days{status}\n" + format_table(rows)
