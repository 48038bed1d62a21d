"""The lake: Parquet, one file per asset and partition, on any UPath (local or s3://).

Built on dagster's own ``UPathIOManager`` rather than dagster-polars: dagster-polars
0.27.12 calls ``scan_parquet(rechunk=...)``, which polars 2 removed.

Partitioned outputs are always ``{partition_key: DataFrame}``, also for one partition:
a single-run backfill hands an asset a whole range, and one contract for both cases
means a backfill runs exactly the code a daily run does. Partitioned inputs are loaded
the same way, as a dict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl
from dagster import (
    ConfigurableIOManagerFactory,
    ConfigurableResource,
    InputContext,
    OutputContext,
    UPathIOManager,
)
from upath import UPath

from ct_assets.lake.parquet import (
    EXTENSION,
    partition_path,
    read_parquet,
    safe_partition_name,
    write_parquet_atomic,
)


class PolarsParquetIOManager(UPathIOManager):
    extension = EXTENSION

    def make_safe_partition_path(self, base_path: UPath, partition: str) -> UPath:
        return base_path / safe_partition_name(partition)

    def dump_to_path(self, context: OutputContext, obj: pl.DataFrame, path: UPath) -> None:
        if not isinstance(obj, pl.DataFrame):
            raise TypeError(f"{context.asset_key.to_user_string()}: expected a polars DataFrame, got {type(obj).__name__}")
        write_parquet_atomic(obj, path)

    def load_from_path(self, context: InputContext, path: UPath) -> pl.DataFrame:
        return read_parquet(path)

    def load_partitions(self, context: InputContext) -> dict[str, pl.DataFrame]:
        """Every requested partition that exists. A missing one is an error naming it,
        unless the input allows missing partitions (a trailing window over days that were
        never materialized): then the gaps are listed once, not warned about per day as
        UPathIOManager does (90 warnings per champion run drowned the real ones)."""
        asset_dir = self._get_path_without_extension(context)
        allow_missing = bool((context.definition_metadata or {}).get("allow_missing_partitions"))
        loaded, missing = {}, []
        for key in context.asset_partition_keys:
            path = self._with_extension(self.get_path_for_partition(context, asset_dir, key))
            if path.exists():
                loaded[key] = self.load_from_path(context, path)
            elif allow_missing:
                missing.append(key)
            else:
                raise FileNotFoundError(f"{context.asset_key.to_user_string()}[{key}]: no lake file at {path}; "
                                        "materialize that partition first")
        if missing:
            context.log.debug(f"{context.asset_key.to_user_string()}: {len(missing)} of "
                              f"{len(context.asset_partition_keys)} partitions not materialized (allowed): {missing}")
        return loaded

    def handle_output(self, context: OutputContext, obj: object) -> None:
        if not context.has_asset_partitions:
            return super().handle_output(context, obj)
        if not isinstance(obj, Mapping):
            raise TypeError(
                f"{context.asset_key.to_user_string()}: a partitioned output must be "
                f"{{partition_key: DataFrame}}, got {type(obj).__name__}"
            )
        expected = set(context.asset_partition_keys)
        if set(obj) != expected:
            raise ValueError(
                f"{context.asset_key.to_user_string()}: output partitions {sorted(obj)} "
                f"differ from the run's partitions {sorted(expected)}"
            )
        asset_dir = self._get_path_without_extension(context)
        rows = 0
        for key, frame in obj.items():
            path = self._with_extension(self.get_path_for_partition(context, asset_dir, key))
            self.make_directory(path.parent)
            self.dump_to_path(context, frame, path)
            rows += frame.height
        context.add_output_metadata({"lake_path": str(asset_dir), "rows_written": rows})


class LakeIOManager(ConfigurableIOManagerFactory):
    """Parquet lake under ``base_path`` (CT_HOME/lake by default; any UPath works)."""

    base_path: str

    def create_io_manager(self, context) -> PolarsParquetIOManager:
        return PolarsParquetIOManager(base_path=UPath(self.base_path))


class Lake(ConfigurableResource):
    """Read access to stored partitions outside an asset's declared inputs.

    The drift reference (the champion's training window, or ``reference`` days) and the
    replay pool are chosen at run time, so they cannot be static asset dependencies.
    """

    base_path: str

    def path(self, asset: str, partition_key: str) -> UPath:
        return partition_path(UPath(self.base_path), [asset], partition_key)

    def read(self, asset: str, partition_key: str) -> pl.DataFrame | None:
        path = self.path(asset, partition_key)
        if not path.exists():
            return None
        return read_parquet(path)

    def partitions(self, asset: str) -> list[str]:
        """Stored partition keys of an asset, sorted (daily keys sort by date)."""
        folder = UPath(self.base_path) / asset
        if not folder.exists():
            return []
        return sorted(p.name[: -len(EXTENSION)] for p in folder.iterdir() if p.name.endswith(EXTENSION))

    def read_many(self, asset: str, partition_keys: Sequence[str]) -> dict[str, pl.DataFrame]:
        out = {}
        for key in partition_keys:
            frame = self.read(asset, key)
            if frame is not None:
                out[key] = frame
        return out
