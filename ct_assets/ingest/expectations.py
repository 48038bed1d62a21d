"""Great Expectations suite for the clean frame, declared in code, with Data Docs.

GX 1.x has no polars datasource, so the clean frame is validated as pandas (a pyarrow
conversion of a few hundred rows costs well under a millisecond).

Where GX writes: only under ``docs_dir``. The context is ephemeral (in-memory
expectations/checkpoints, no ``gx/`` project folder), the ephemeral default docs site (a
temp dir) is replaced by ours, and validation results are stored as JSON in
``docs_dir/_results``. That last part is not optional: the Data Docs index builder lists
(and *deletes* the HTML of) every validation page whose result is missing from the
results store, so an in-memory store would wipe earlier partitions' pages whenever a new
process (e.g. a Dagster step subprocess) builds the docs.

Caching: importing GX takes ~2-3 s, so it is imported on first use (loading the Dagster
code location stays fast) and one context per ``docs_dir`` is kept per process. Calls
for many partitions reuse it; each call is a separate run (run_name, run_time) in the docs.
``warm_up`` pays that first-call cost ahead of the first day (a Dagster step or worker
calls it once before its partition loop), so no day's GX time includes the import.

Sampling: a clean frame larger than ``quality.gx_sample_rows`` is validated on a seeded
sample of that many rows (the seed is the run name's CRC32, so a rerun of a partition
validates the same rows). The per-row quality rules (``ingest.quality``) already checked
every row; GX is the declarative second opinion, and its cost would otherwise grow with
the day (~2.2 s at 200k rows). The summary records ``sampled_rows`` and ``total_rows``,
and the run name in the Data Docs gets a ``.sample-N-of-M`` suffix, so a reader of
either sees it was a sample. A sample cannot see a duplicate ``event_id`` whose other
copy was not drawn: uniqueness over the whole day is the quality rules' job.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from ct_assets.core import markdown
from ct_assets.core.schema import CLEAN_COLUMNS, RAW_SCHEMA
from ct_assets.core.settings import QualitySettings

# Set before GX is imported anywhere in this process: a pipeline step must not phone
# home (and on air-gapped machines the attempt only adds timeouts).
os.environ["GX_ANALYTICS_ENABLED"] = "false"

SITE_NAME = "ct_data_docs"
SUITE_NAME = "clean_window"
RESULTS_SUBDIR = "_results"
_RUN_NAME = re.compile(r"^\w[\w.=+-]*$")  # it becomes a directory name in the docs
_MAX_EXAMPLES = 5
_DEFAULT_SAMPLE_ROWS = QualitySettings().gx_sample_rows


class GxExecutionError(RuntimeError):
    """GX raised while computing an expectation (GX records it; we refuse to hide it)."""


@dataclass(frozen=True)
class GxSummary:
    success: bool
    evaluated: int
    successful: int
    results: list[dict[str, Any]]  # JSON-safe, one per expectation
    docs_index: Path | None
    seconds: float
    sampled_rows: int = 0  # rows GX validated
    total_rows: int = 0  # rows of the clean frame; > sampled_rows when GX saw a sample

    @property
    def sampled(self) -> bool:
        return self.sampled_rows < self.total_rows


@dataclass
class _Runner:
    context: Any
    batch_definition: Any
    lock: threading.Lock
    params: tuple | None = None
    checkpoint: Any = None
    warmed: bool = False  # warm_up has run a validation in this process


_RUNNERS: dict[Path, _Runner] = {}
_RUNNERS_LOCK = threading.Lock()


def _new_runner(docs_dir: Path) -> _Runner:
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    defaults = InMemoryStoreBackendDefaults(init_temp_docs_sites=False)
    stores = dict(defaults.stores)
    stores[defaults.validation_results_store_name] = {
        "class_name": "ValidationResultsStore",
        "store_backend": {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": str(docs_dir / RESULTS_SUBDIR),
        },
    }
    site = {
        "class_name": "SiteBuilder",
        # No "how to" buttons: they link to GX cloud tutorials, noise for our users.
        "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }
    config = DataContextConfig(
        store_backend_defaults=defaults,
        stores=stores,
        data_docs_sites={SITE_NAME: site},
        analytics_enabled=False,
        # tqdm bars on stderr per validation clutter Dagster's compute logs.
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    asset = context.data_sources.add_pandas("ct").add_dataframe_asset("clean")
    batch_definition = asset.add_batch_definition_whole_dataframe("whole_partition")
    return _Runner(context=context, batch_definition=batch_definition, lock=threading.Lock())


_GX_IMPORT_LOCK = threading.Lock()


def _import_gx() -> None:
    """Import GX (the modules used here) in one thread at a time: the background warm-up and
    a step's first ``validate_clean`` importing it at once saw a half-initialised module
    ("cannot import name 'ExpectationSuite'", GX's own import cycles). Once imported, this
    is a few dict lookups."""
    with _GX_IMPORT_LOCK:
        import great_expectations  # noqa: F401
        import great_expectations.checkpoint  # noqa: F401
        import great_expectations.core.run_identifier  # noqa: F401
        import great_expectations.data_context.types.base  # noqa: F401
        import great_expectations.expectations  # noqa: F401


def _runner(docs_dir: Path) -> _Runner:
    _import_gx()
    key = docs_dir.resolve()
    with _RUNNERS_LOCK:
        if key not in _RUNNERS:
            _RUNNERS[key] = _new_runner(key)
        return _RUNNERS[key]


def build_suite(*, labels: Sequence[str], max_text_chars: int) -> Any:
    """The clean-frame suite (a GX ExpectationSuite, not yet added to a context)."""
    _import_gx()
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name=SUITE_NAME)
    for column in CLEAN_COLUMNS:
        suite.add_expectation(gxe.ExpectColumnToExist(column=column))
    for expectation in (
        gxe.ExpectColumnValuesToNotBeNull(column="event_id"),
        gxe.ExpectColumnValuesToBeUnique(column="event_id"),
        gxe.ExpectColumnValuesToNotBeNull(column="event_ts"),
        gxe.ExpectColumnValuesToNotBeNull(column="text"),
        gxe.ExpectColumnValueLengthsToBeBetween(column="text", min_value=1, max_value=max_text_chars),
        # Map expectations skip nulls: an unlabelled row is fine.
        gxe.ExpectColumnValuesToBeInSet(column="label", value_set=list(labels)),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="label_ts", column_B="event_ts", or_equal=True, ignore_row_if="either_value_is_missing"
        ),
    ):
        suite.add_expectation(expectation)
    return suite


def _checkpoint(runner: _Runner, labels: Sequence[str], max_text_chars: int) -> Any:
    """The checkpoint for these parameters, (re)declared only when they change."""
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction

    params = (tuple(labels), max_text_chars)
    if runner.params != params:
        ctx = runner.context
        # add_or_update: same names on every call, so redeclaring never collides.
        suite = ctx.suites.add_or_update(build_suite(labels=labels, max_text_chars=max_text_chars))
        definition = ctx.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=SUITE_NAME, data=runner.batch_definition, suite=suite)
        )
        runner.checkpoint = ctx.checkpoints.add_or_update(
            gx.Checkpoint(
                name=SUITE_NAME,
                validation_definitions=[definition],
                # site_names: build only our site, never anything GX might add by default.
                actions=[UpdateDataDocsAction(name="update_data_docs", site_names=[SITE_NAME])],
                result_format="SUMMARY",
            )
        )
        runner.params = params
    return runner.checkpoint


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return str(value)


def _summarise(result: Any) -> dict[str, Any]:
    config = result.expectation_config
    kwargs = config.kwargs
    column = kwargs.get("column") or ",".join(
        str(kwargs[k]) for k in ("column_A", "column_B") if kwargs.get(k) is not None
    )
    detail = result.result or {}
    return {
        "expectation": config.type,
        "column": column or None,
        "success": bool(result.success),
        "observed": _json_safe(detail.get("observed_value")),
        "unexpected_count": detail.get("unexpected_count"),
        "unexpected_percent": detail.get("unexpected_percent"),
        "unexpected_examples": _json_safe(list(detail.get("partial_unexpected_list") or [])[:_MAX_EXAMPLES]),
    }


def _raise_on_exceptions(results: Sequence[Any], missing_columns: Sequence[str]) -> None:
    # GX catches metric errors and reports them as a failed expectation; a broken
    # expectation must not look like bad data, so surface it.
    problems = []
    for r in results:
        info = r.exception_info or {}
        infos = [info] if "raised_exception" in info else list(info.values())
        for i in infos:
            if i.get("raised_exception"):
                problems.append(f"{r.expectation_config.type}: {i.get('exception_message')}")
    if problems:
        hint = f" (the clean frame lacks contract columns {list(missing_columns)})" if missing_columns else ""
        raise GxExecutionError("Great Expectations raised while validating" + hint + ": " + "; ".join(problems))


def warm_up(docs_dir: Path, *, labels: Sequence[str], max_text_chars: int) -> float:
    """Import GX, build this process's context for ``docs_dir`` and declare the suite and
    checkpoint for these parameters, so the first ``validate_clean`` costs what later ones
    do. Writes nothing to the Data Docs (no validation is run). Returns the seconds spent
    (~0 once warm)."""
    started = time.perf_counter()
    docs_dir = Path(docs_dir)
    docs_dir.mkdir(parents=True, exist_ok=True)
    runner = _runner(docs_dir)
    with runner.lock:
        _checkpoint(runner, labels, max_text_chars)
        if not runner.warmed:
            # One validation of a one-row frame through the batch (not the checkpoint): it
            # loads GX's metric and pandas-engine code, which the context alone does not,
            # and stores no result, so the Data Docs do not change.
            row = {"event_id": ["warm_up"], "event_ts": [dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)],
                   "text": ["warm up"], "label": [None], "label_ts": [None], "_source_file": [""], "_line": [1]}
            frame = pl.DataFrame(row, schema={c: RAW_SCHEMA[c] for c in CLEAN_COLUMNS}).to_pandas()
            batch = runner.batch_definition.get_batch(batch_parameters={"dataframe": frame})
            batch.validate(runner.context.suites.get(SUITE_NAME))
            runner.warmed = True
    return time.perf_counter() - started


def warm_up_in_background(docs_dir: Path, *, labels: Sequence[str], max_text_chars: int) -> threading.Thread:
    """``warm_up`` in a daemon thread: a step starts it before its first day's split, so the
    GX import (Python, holding the GIL only part of the time) overlaps polars work that
    releases it. Nothing is lost if it fails: ``validate_clean`` builds the same runner
    under the same lock and raises the error itself."""
    thread = threading.Thread(target=warm_up, args=(docs_dir,), kwargs={"labels": list(labels),
                              "max_text_chars": max_text_chars}, name="gx-warm-up", daemon=True)
    thread.start()
    return thread


def sample_for_gx(clean: pl.DataFrame, sample_rows: int, seed: int) -> pl.DataFrame:
    """``clean`` itself when it has at most ``sample_rows`` rows, else a seeded sample of
    that many rows in their original order."""
    if clean.height <= sample_rows:
        return clean
    import numpy as np

    keep = np.sort(np.random.default_rng(seed).choice(clean.height, sample_rows, replace=False))
    return clean[keep]


def validate_clean(
    clean: pl.DataFrame,
    *,
    labels: Sequence[str],
    max_text_chars: int,
    docs_dir: Path,
    run_name: str,
    sample_rows: int = _DEFAULT_SAMPLE_ROWS,
) -> GxSummary:
    """Validate one clean partition (a seeded sample of ``sample_rows`` rows when it is
    larger, ``quality.gx_sample_rows``), add it to the Data Docs under ``docs_dir``."""
    started = time.perf_counter()
    _import_gx()
    from great_expectations.core.run_identifier import RunIdentifier

    if not _RUN_NAME.match(run_name):
        raise ValueError(f"run_name {run_name!r} must match {_RUN_NAME.pattern} (it becomes a path)")
    docs_dir = Path(docs_dir)
    docs_dir.mkdir(parents=True, exist_ok=True)
    # Only contract columns: extras may hold types pandas/GX handle poorly. A missing
    # contract column is still validated (and recorded in the docs) before we raise.
    if sample_rows < 1:
        raise ValueError(f"sample_rows must be >= 1, got {sample_rows}")
    contract = clean.select([c for c in CLEAN_COLUMNS if c in clean.columns])
    sample = sample_for_gx(contract, sample_rows, zlib.crc32(run_name.encode()))
    frame = sample.to_pandas()
    missing = [c for c in CLEAN_COLUMNS if c not in clean.columns]
    if sample.height < clean.height:
        run_name = f"{run_name}.sample-{sample.height}-of-{clean.height}"

    runner = _runner(docs_dir)
    with runner.lock:  # a GX context is not thread-safe
        checkpoint = _checkpoint(runner, labels, max_text_chars)
        # An explicit run_time keeps re-materialisations of a partition as separate runs.
        run_id = RunIdentifier(run_name=run_name, run_time=dt.datetime.now(dt.timezone.utc))
        outcome = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=run_id)

    (validation,) = outcome.run_results.values()
    _raise_on_exceptions(validation.results, missing)
    results = [_summarise(r) for r in validation.results]
    index = docs_dir / "index.html"
    return GxSummary(
        success=bool(validation.success),
        evaluated=len(results),
        successful=sum(r["success"] for r in results),
        results=results,
        docs_index=index if index.is_file() else None,
        seconds=time.perf_counter() - started,
        sampled_rows=sample.height,
        total_rows=clean.height,
    )


def expectations_markdown(summary: GxSummary) -> str:
    """The suite's outcome inline, one row per expectation, for the UI; Data Docs has the rest."""
    head = f"**Great Expectations: {summary.successful}/{summary.evaluated} passed**"
    if summary.sampled:
        head += (f" on a seeded sample of {summary.sampled_rows:,} of {summary.total_rows:,} rows "
                 "(quality.gx_sample_rows; the per-row quality rules checked every row)")
    where = f" (Data Docs: `{summary.docs_index}`)" if summary.docs_index else ""
    rows = [{"expectation": r["expectation"], "column": r["column"] or "-", "success": r["success"],
             "unexpected": r["unexpected_count"] if r["unexpected_count"] is not None else "-",
             "observed": r["observed"] if r["observed"] is not None else "-"} for r in summary.results]
    return head + where + "\n\n" + markdown.table(rows)
