"""``python -m ct_assets.sim.cli``: print the golden set, or write simulated days."""

from __future__ import annotations

import argparse
import sys
from datetime import date, timedelta
from pathlib import Path

from ct_assets.core.settings import SimulatorSettings
from ct_assets.sim.simulator import (
    DEFAULT_LABELS,
    Scenario,
    SimulatorConfig,
    dumps_rows,
    golden_rows,
    write_day,
)

_DEFAULTS = SimulatorSettings()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ct_assets.sim.cli")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("golden", help="print the golden set (JSONL) to stdout")
    w = sub.add_parser("write", help="write simulated days into a landing zone")
    w.add_argument("--start", type=date.fromisoformat, required=True)
    w.add_argument("--days", type=int, default=1)
    w.add_argument("--landing", type=Path, required=True)
    w.add_argument("--seed", type=int, default=_DEFAULTS.seed)
    w.add_argument("--rows", type=int, default=_DEFAULTS.rows_per_day)
    w.add_argument("--labels", default=",".join(DEFAULT_LABELS))
    w.add_argument("--scenario", action="append", default=[], metavar="NAME:START[:END[:STRENGTH[:LABEL]]]")
    a = p.parse_args(argv)
    if a.cmd == "golden":
        sys.stdout.buffer.write(dumps_rows(golden_rows()))  # bytes: independent of the locale
        return 0
    scenarios = []
    for spec in a.scenario:
        name, start, *rest = spec.split(":")
        end = int(rest[0]) if rest and rest[0] else None
        strength = float(rest[1]) if len(rest) > 1 and rest[1] else 1.0
        # LABEL: the class a seasonal_class scenario takes out of the traffic.
        scenarios.append(Scenario(name, int(start), end, strength, rest[2] if len(rest) > 2 else None))
    config = SimulatorConfig(labels=tuple(a.labels.split(",")), seed=a.seed, rows_per_day=a.rows,
                             scenarios=tuple(scenarios))
    for d in range(a.days):
        print(write_day(config, a.start, a.start + timedelta(days=d), a.landing))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
