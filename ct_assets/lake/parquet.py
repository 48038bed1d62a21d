"""The lake's files (pure): Parquet, one file per asset and partition, on any UPath.

Partition keys are daily dates. A key that would leave the asset's folder (a ``/``, a
``..`` segment) is refused with an error naming it, rather than escaped: no partition of
this product can look like that, so one that does is a bug upstream.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import polars as pl
from upath import UPath

from ct_assets.lake.commit import is_local as _is_local
from ct_assets.lake.commit import tmp_name

EXTENSION = ".parquet"
_SAFE_KEY = re.compile(r"^[\w][\w.=+-]*$")


def safe_partition_name(partition_key: str) -> str:
    if not _SAFE_KEY.match(partition_key) or ".." in partition_key:
        raise ValueError(f"partition key {partition_key!r} cannot name a lake file (expected e.g. 2026-09-01)")
    return partition_key


def partition_path(base: UPath, asset_path: Sequence[str], partition_key: str) -> UPath:
    folder = base.joinpath(*asset_path)
    return folder / (safe_partition_name(partition_key) + EXTENSION)


def read_parquet(path: UPath) -> pl.DataFrame:
    if _is_local(path):
        return pl.read_parquet(path.path)
    with path.open("rb") as fh:
        return pl.read_parquet(fh)


def write_parquet_atomic(frame: pl.DataFrame, path: UPath) -> None:
    """Readers never see half a file: write beside it, then rename over it.

    Atomic for this one file only; the IO manager commits a step's files together
    (``ct_assets.lake.commit``). The temp name carries the pid so the next write can
    remove it once its writer is dead. On an object store a single PUT is already
    atomic, so it is written directly.
    """
    if _is_local(path):
        local = path.path
        os.makedirs(os.path.dirname(local), exist_ok=True)
        tmp = os.path.join(os.path.dirname(local), tmp_name(os.path.basename(local)))
        try:
            frame.write_parquet(tmp)
            os.replace(tmp, local)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    else:
        with path.open("wb") as fh:
            frame.write_parquet(fh)
