"""The kill test's process factory: imports once, then forks one child per trial.

Why a factory: importing Dagster and building the Definitions takes ~10 s on the shared
CI cores; paying that per trial would put ten trials over two minutes. A fresh Python
process (not the pytest process, which may hold threads and open instances) imports
once; each trial is a forked child that opens the instance itself and materializes the
data half's first two steps over a small day range. The parent SIGKILLs the child.

Protocol on stdin/stdout, one line each: the factory prints ``ready``; for each request
``REJECT_CHARS FIRST LAST`` it prints ``pid N`` once the child runs, then ``exit S`` with
the child's wait status once it is gone (reaped, so its pid no longer looks alive).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ct_assets.core.home import CtHome
from ct_assets.definitions import build_definitions
from ct_assets.orchestration.runner import instance_for, materialize_range
from ct_assets_tests.helpers import small_settings

ASSETS = ("raw_window", "validated_window", "quarantined_rows")
ROWS_PER_DAY = 40


def trial_settings(reject_chars: int):
    # The quarantine threshold differs per trial while raw stays the same, so clean and
    # quarantined files from two different trials cannot add up to raw by accident.
    return small_settings(**{
        "source.simulator.rows_per_day": ROWS_PER_DAY,
        "quality.max_text_chars": reject_chars,
        "quality.reject_text_chars": reject_chars,
        "quality.max_bad_fraction": 1.0,
    })


def _child(home: CtHome, defs, first: str, last: str) -> None:
    try:
        materialize_range(defs, instance_for(home), ASSETS, first, last, console_level="CRITICAL",
                          raise_on_error=False)
    finally:
        os._exit(0)  # no atexit handlers of the parent's copy


def main(root: str) -> None:
    home = CtHome(Path(root)).ensure()
    print("ready", flush=True)
    for line in sys.stdin:
        reject_chars, first, last = line.split()
        defs = build_definitions(trial_settings(int(reject_chars)), home)
        pid = os.fork()
        if pid == 0:
            _child(home, defs, first, last)
        print(f"pid {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"exit {status}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
