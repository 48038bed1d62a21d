"""The step commit journal, crash point by crash point (ct_assets.lake.commit)."""

from __future__ import annotations

import json
import os

import polars as pl
from upath import UPath

from ct_assets.lake.commit import JOURNAL, STAGING, StepWrite, collect_garbage, write_bytes_atomic
from ct_assets.lake.parquet import partition_path, write_parquet_atomic
from ct_assets.lake.resources import Lake

KEYS = ("2026-09-01", "2026-09-02")


def _setup(tmp_path):
    base = UPath(tmp_path / "lake")
    for asset in ("a", "b"):
        for key in KEYS:
            write_parquet_atomic(pl.DataFrame({"v": ["old"]}), partition_path(base, [asset], key))
    write = StepWrite(base, "run-1", "step[x]")
    for asset in ("a", "b"):
        for key in KEYS:
            write.stage(pl.DataFrame({"v": ["new"]}), partition_path(base, [asset], key))
    return base, write, Lake(base_path=str(base))


def _values(lake):
    return {(a, k): lake.read(a, k)["v"][0] for a in ("a", "b") for k in KEYS}


def test_staged_but_uncommitted_files_are_never_read_and_dead_runs_are_collected(tmp_path):
    base, write, lake = _setup(tmp_path)
    assert set(_values(lake).values()) == {"old"}
    assert collect_garbage(base, lambda run: False) == []  # maybe alive: kept
    assert collect_garbage(base, lambda run: run == "run-1")
    assert not list((base / STAGING).iterdir())


def test_a_crash_midway_through_apply_is_rolled_forward_by_the_next_reader(tmp_path):
    base, write, lake = _setup(tmp_path)

    write_bytes_atomic(write.folder / JOURNAL, json.dumps({"run_id": "run-1", "step": "s", "files": write.files}).encode())
    first = write.files[0]  # the kill came after one move
    os.replace((write.folder / "files" / first).path, (base / first).path)
    assert set(_values(lake).values()) == {"new"}
    assert not (base / STAGING / "run-1").exists()


def test_commit_moves_everything_and_removes_orphan_temp_files(tmp_path):
    base, write, lake = _setup(tmp_path)
    orphan = base / "a" / "2026-09-01.parquet.0123abcd.tmp"  # a writer before pids were recorded
    orphan.write_bytes(b"")
    write.commit(lambda run: True)
    assert set(_values(lake).values()) == {"new"}
    assert not orphan.exists() and not list((base / STAGING).iterdir())
