"""Kill a data-half materialization at random points; the lake must stay whole.

Why: the lake used to be atomic per file only. A kill between ``validated_window`` and
``quarantined_rows`` (one multi_asset step) or between partitions of a single-run
backfill left a mix of new and old files, so on disk clean + quarantined != raw, and the
killed runs stayed STARTED forever. Each trial here is a forked child process running a
real three-day run on a persistent CT_HOME instance, SIGKILLed after a seeded random
delay; each trial uses a different quarantine threshold, so files of two trials cannot
add up by accident.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from ct_assets.core.home import CtHome
from ct_assets.ingest.quality import split_rows
from ct_assets.lake.commit import STAGING
from ct_assets.lake.resources import Lake
from ct_assets.orchestration.run_sweep import sweep_dead_runs
from ct_assets_tests.helpers import day
from ct_assets_tests.lake_tests.kill_worker import trial_settings

TRIALS = 10
SEED = 20260901
DAYS = [day(0), day(1), day(2)]
THRESHOLDS = [60 + 7 * i for i in range(TRIALS)]


class Factory:
    def __init__(self, root):
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        self.proc = subprocess.Popen([sys.executable, "-m", "ct_assets_tests.lake_tests.kill_worker", str(root)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        assert self._line() == "ready"

    def _line(self) -> str:
        line = self.proc.stdout.readline().strip()
        assert line, f"kill_worker factory died (rc {self.proc.poll()})"
        return line

    def trial(self, reject_chars: int, kill_after: float | None) -> int:
        """Run one child; SIGKILL it after ``kill_after`` s (None: let it finish). Its wait status."""
        self.proc.stdin.write(f"{reject_chars} {DAYS[0]} {DAYS[-1]}\n")
        self.proc.stdin.flush()
        pid = int(self._line().split()[1])
        if kill_after is not None:
            time.sleep(kill_after)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # finished first: a trial that shows a clean run leaves the lake whole
        return int(self._line().split()[1])

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def _ids(frame) -> list:
    return sorted(frame["event_id"].to_list(), key=str)


def _expected_quarantine(raw, key: str, reject_chars: int) -> list:
    s = trial_settings(reject_chars)
    q = s.quality
    result = split_rows(raw, day=dt.date.fromisoformat(key), labels=s.labels, max_text_chars=q.max_text_chars,
                        reject_text_chars=q.reject_text_chars, mask_emails=q.mask_emails, mask_phones=q.mask_phones)
    return _ids(result.quarantine)


def _check_lake(lake: Lake) -> None:
    """For every partition a reader sees: clean + quarantined = raw, row for row, and all
    partitions of both outputs come from one and the same committed run (threshold)."""
    seen = lake.partitions("validated_window")
    assert seen == lake.partitions("quarantined_rows")
    candidates = set(THRESHOLDS)
    for key in seen:
        raw, clean, bad = (lake.read(a, key) for a in ("raw_window", "validated_window", "quarantined_rows"))
        assert raw is not None, f"validated_window[{key}] exists without raw_window[{key}]"
        assert clean.height + bad.height == raw.height, f"[{key}] {clean.height} + {bad.height} != {raw.height}"
        assert sorted(_ids(clean) + _ids(bad), key=str) == _ids(raw), f"[{key}] rows lost or doubled"
        candidates &= {t for t in candidates if _expected_quarantine(raw, key, t) == _ids(bad)}
        assert candidates, f"[{key}]: partitions of validated_window come from different runs"


def _open_runs(instance: DagsterInstance) -> list:
    return instance.get_run_records(filters=RunsFilter(statuses=[
        DagsterRunStatus.STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.NOT_STARTED]))


def test_killed_materializations_leave_every_partition_whole(tmp_path):
    root = tmp_path / "ct_home"
    home = CtHome(root).ensure()
    rng = random.Random(SEED)
    factory = Factory(root)
    outcomes = []
    try:
        for i, threshold in enumerate(THRESHOLDS):
            # Delays cover the whole run (imports are done): before raw, between steps,
            # between the two outputs, mid-commit, after the end.
            delay = rng.uniform(0.05, 5.0)
            status = factory.trial(threshold, delay)
            outcomes.append((round(delay, 2), "killed" if os.WIFSIGNALED(status) else "finished"))
            _check_lake(Lake(base_path=str(home.lake)))
        print("kill trials (delay s, outcome):", outcomes)
        staged_before = list((home.lake / STAGING).glob("*"))
        # One more run, not killed: the next write removes the dead runs' leftovers.
        assert factory.trial(THRESHOLDS[0], None) == 0
    finally:
        factory.close()
    lake = Lake(base_path=str(home.lake))
    _check_lake(lake)
    assert not list((home.lake / STAGING).glob("*")), f"staged leftovers remain (were {staged_before})"
    assert not list(home.lake.rglob("*.tmp"))
    instance = DagsterInstance.from_config(str(home.dagster))
    try:
        sweep_dead_runs(instance)  # the sweep every materialize_range starts with
        assert not _open_runs(instance), "a killed run stays STARTED"
    finally:
        instance.dispose()
