"""The lake: Parquet, one file per asset and partition, on any UPath (local or s3://).

Built on dagster's own ``UPathIOManager`` rather than dagster-polars: dagster-polars
0.27.12 calls ``scan_parquet(rechunk=...)``, which polars 2 removed.

Partitioned outputs are always ``{partition_key: DataFrame}``, also for one partition:
a single-run backfill hands an asset a whole range, and one contract for both cases
means a backfill runs exactly the code a daily run does. Partitioned inputs are loaded
the same way, as a dict.

A step's lake files land all together or not at all (``ct_assets.lake.commit`` explains
the journal and what a crash at each point leaves): every output is staged, and after
the step's last lake output (its required, selected outputs on this IO manager, known
from the step context) one journal commits them. Every load, and every ``Lake`` read,
first rolls committed journals forward, so no reader sees half a commit, and staged
files are never read. Caveat: Dagster records an output's materialization right after
``handle_output``, so a run killed between two outputs has a materialization event for
the first one whose data never landed; the run itself is then failed (run_sweep).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import polars as pl
from dagster import (
    ConfigurableIOManagerFactory,
    ConfigurableResource,
    DagsterInvariantViolationError,
    InputContext,
    OutputContext,
    UPathIOManager,
)
from upath import UPath

from ct_assets.lake.commit import StepWrite, recover
from ct_assets.lake.parquet import (
    EXTENSION,
    partition_path,
    read_parquet,
    safe_partition_name,
    write_parquet_atomic,
)
from ct_assets.orchestration.run_sweep import run_is_dead

# The resource key every lake output names (`io_manager_key="lake_io"` in the assets):
# the IO manager needs it to know which of a step's outputs it will be handed.
LAKE_IO_KEY = "lake_io"


def _keep_everything(run_id: str) -> bool:
    return False


class PolarsParquetIOManager(UPathIOManager):
    extension = EXTENSION

    def __init__(self, base_path: UPath, io_manager_key: str = LAKE_IO_KEY):
        super().__init__(base_path=base_path)
        self._key = io_manager_key
        # (run_id, step_key) -> the step's open write and the outputs it has staged.
        self._open: dict[tuple[str, str], tuple[StepWrite, set[str]]] = {}

    def make_safe_partition_path(self, base_path: UPath, partition: str) -> UPath:
        return base_path / safe_partition_name(partition)

    def dump_to_path(self, context: OutputContext, obj: pl.DataFrame, path: UPath) -> None:
        # Required by UPathIOManager; handle_output stages and commits instead, so this
        # single-file write is only reached by code calling it directly.
        write_parquet_atomic(obj, path)

    def load_from_path(self, context: InputContext, path: UPath) -> pl.DataFrame:
        return read_parquet(path)

    def load_input(self, context: InputContext):
        recover(self._base_path)  # a committed journal not yet applied is applied first
        return super().load_input(context)

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

    def _files(self, context: OutputContext, obj: object) -> list[tuple[UPath, pl.DataFrame]]:
        name = context.asset_key.to_user_string()
        if not context.has_asset_partitions:
            items = [(self._get_path(context), obj)]
        else:
            if not isinstance(obj, Mapping):
                raise TypeError(f"{name}: a partitioned output must be {{partition_key: DataFrame}}, "
                                f"got {type(obj).__name__}")
            expected = set(context.asset_partition_keys)
            if set(obj) != expected:
                raise ValueError(f"{name}: output partitions {sorted(obj)} differ from the run's "
                                 f"partitions {sorted(expected)}")
            asset_dir = self._get_path_without_extension(context)
            items = [(self._with_extension(self.get_path_for_partition(context, asset_dir, key)), frame)
                     for key, frame in obj.items()]
        for path, frame in items:
            if not isinstance(frame, pl.DataFrame):
                raise TypeError(f"{name}: expected a polars DataFrame for {path.name}, got {type(frame).__name__}")
        return items

    def _step_outputs(self, context: OutputContext) -> tuple[set[str] | None, Callable[[str], bool]]:
        """The outputs of this step this IO manager will be handed, and a test for dead
        runs. Without a step (a hand-built context) each output commits on its own and no
        other run's staging is touched."""
        try:
            step = context.step_context
        except DagsterInvariantViolationError:
            return None, _keep_everything
        selected = step.selected_output_names
        outputs = {o.name for o in context.op_def.output_defs
                   if o.io_manager_key == self._key and o.is_required and o.name in selected}
        instance = step.instance
        return outputs, lambda run_id: run_is_dead(instance, run_id)

    def handle_output(self, context: OutputContext, obj: object) -> None:
        files = self._files(context, obj)
        expected, is_dead = self._step_outputs(context)
        key = (context.run_id, context.step_key)
        write, done = self._open.get(key, (None, set()))
        if write is None or context.name in done:
            # First output of this step attempt (a retried step hands an output again).
            write, done = StepWrite(self._base_path, context.run_id, context.step_key), set()
        for path, frame in files:
            write.stage(frame, path)
        done.add(context.name)
        if expected is None or expected <= done:
            self._open.pop(key, None)
            write.commit(is_dead)
        else:
            self._open[key] = (write, done)
        context.add_output_metadata({
            "lake_path": str(self._get_path_without_extension(context)),
            "rows_written": sum(frame.height for _, frame in files),
        })


class LakeIOManager(ConfigurableIOManagerFactory):
    """Parquet lake under ``base_path`` (CT_HOME/lake by default; any UPath works)."""

    base_path: str

    def create_io_manager(self, context) -> PolarsParquetIOManager:
        return PolarsParquetIOManager(base_path=UPath(self.base_path), io_manager_key=LAKE_IO_KEY)


class Lake(ConfigurableResource):
    """Read access to stored partitions outside an asset's declared inputs.

    The drift reference (the champion's training window, or ``reference`` days) and the
    replay pool are chosen at run time, so they cannot be static asset dependencies.
    """

    base_path: str

    def path(self, asset: str, partition_key: str) -> UPath:
        return partition_path(UPath(self.base_path), [asset], partition_key)

    def _committed(self, asset: str, partition_key: str) -> pl.DataFrame | None:
        path = self.path(asset, partition_key)
        if not path.exists():
            return None
        return read_parquet(path)

    def read(self, asset: str, partition_key: str) -> pl.DataFrame | None:
        recover(UPath(self.base_path))  # never half of a commit (ct_assets.lake.commit)
        return self._committed(asset, partition_key)

    def partitions(self, asset: str) -> list[str]:
        """Stored partition keys of an asset, sorted (daily keys sort by date)."""
        recover(UPath(self.base_path))
        folder = UPath(self.base_path) / asset
        if not folder.exists():
            return []
        return sorted(p.name[: -len(EXTENSION)] for p in folder.iterdir() if p.name.endswith(EXTENSION))

    def read_many(self, asset: str, partition_keys: Sequence[str]) -> dict[str, pl.DataFrame]:
        recover(UPath(self.base_path))
        out = {}
        for key in partition_keys:
            frame = self._committed(asset, key)
            if frame is not None:
                out[key] = frame
        return out
