"""Training window, replay sample and train/val/holdout splits (pure, no Dagster).

``build_training_set`` turns the last ``window_days`` validated frames into the data a
training run sees as of day ``as_of``. Every rule here guards against a way continuous
training quietly lies to itself:

* point in time - a label counts only if ``label_ts`` is before the end of ``as_of``
  (docs/CONTRACTS.md); a frame for a day after ``as_of`` is an upstream bug and raises.
* leakage - rows that are in the golden evaluation set (same event_id, or the same text
  after lowercasing and collapsing whitespace) are removed and counted.
* forgetting - a small replay sample from before the window, stratified by label and
  deterministic per (seed, as_of), keeps old behaviour in the training mix.
* honest evaluation - the last ``holdout_days`` calendar days are a holdout of window rows
  only; validation membership is a hash of event_id, so a row never hops between train
  and val as the window slides.

Randomness comes from blake2b hashes of event_id rather than an RNG over row positions, so
results do not depend on frame row order, process or polars version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import polars as pl

from ct_assets.core.schema import CONTRACT_SCHEMA
from ct_assets.core.time import end_of_day, labels_as_of

SCHEMA = CONTRACT_SCHEMA
OUTPUT_COLUMNS: tuple[str, ...] = (*SCHEMA, "_origin", "_day")
# training_dataset stores the three splits in one frame; this column says which is which.
SPLIT = "_split"
# training_dataset also carries the window it was built on (fixed | since_change, first day).
WINDOW_MODE_COLUMN, WINDOW_START_COLUMN = "_window_mode", "_window_start"
# Fixed salt (not the training seed): a row's val membership must survive config changes
# to the seed as well as the window sliding.
_VAL_SALT = "ct-val-v1"


def dataset_window(frame: pl.DataFrame, default_start: str) -> tuple[str, str]:
    """(mode, first day) a training_dataset frame was built on; a frame written before the
    columns existed was a fixed window starting at ``default_start``."""
    if frame.height and WINDOW_START_COLUMN in frame.columns:
        return str(frame[WINDOW_MODE_COLUMN][0]), str(frame[WINDOW_START_COLUMN][0])
    return "fixed", default_start


@dataclass(frozen=True)
class TrainingSet:
    train: pl.DataFrame
    val: pl.DataFrame
    holdout: pl.DataFrame
    stats: dict

    def to_metadata(self) -> dict:
        """Plain JSON-able values (stats is built from ints, strings and dicts only)."""
        return dict(self.stats)

    def combined(self) -> pl.DataFrame:
        """The three splits in one frame, told apart by the ``SPLIT`` column."""
        return pl.concat([
            self.train.with_columns(pl.lit("train").alias(SPLIT)),
            self.val.with_columns(pl.lit("val").alias(SPLIT)),
            self.holdout.with_columns(pl.lit("holdout").alias(SPLIT)),
        ], how="diagonal_relaxed")


def matching_key(text: str) -> str:
    """The golden-set matching key: lowercase, whitespace runs collapsed, ends stripped."""
    return " ".join(text.lower().split())


def _normalized_text_expr() -> pl.Expr:
    # Same rule as matching_key, vectorised; \s is Unicode-aware in both engines.
    return pl.col("text").str.to_lowercase().str.replace_all(r"\s+", " ").str.strip_chars()


def _golden_mask(golden_ids: set[str], golden_texts: set[str]) -> pl.Expr:
    ids = pl.Series(sorted(golden_ids), dtype=pl.String)
    texts = pl.Series(sorted({matching_key(t) for t in golden_texts}), dtype=pl.String)
    return (
        pl.col("event_id").is_in(ids.implode()).fill_null(False)
        | _normalized_text_expr().is_in(texts.implode()).fill_null(False)
    )


def golden_overlap(frame: pl.DataFrame, golden_ids: set[str], golden_texts: set[str]) -> int:
    """Rows of ``frame`` that are in the golden set; the leakage check expects 0."""
    if frame.height == 0:
        return 0
    return frame.filter(_golden_mask(golden_ids, golden_texts)).height


def _unit_hash(salt: str, values: list[str]) -> list[float]:
    """Deterministic pseudo-uniform [0, 1) per value, stable across processes and versions."""
    out = []
    for value in values:
        digest = hashlib.blake2b(f"{salt}:{value}".encode(), digest_size=8).digest()
        out.append(int.from_bytes(digest, "big") / 2**64)
    return out


def _with_hash(frame: pl.DataFrame, salt: str) -> pl.DataFrame:
    values = _unit_hash(salt, frame.get_column("event_id").to_list())
    return frame.with_columns(pl.Series("_h", values, dtype=pl.Float64))


def _core(frame: pl.DataFrame, where: str) -> pl.DataFrame:
    core = frame.select([pl.col(name).cast(dtype) for name, dtype in SCHEMA.items()])
    if core.get_column("event_id").null_count():
        raise ValueError(f"{where}: clean frame has null event_id values (validation should reject them)")
    return core


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema=SCHEMA)


def _as_date(key: dt.date | str) -> dt.date:
    # Dagster hands multi-partition inputs over keyed by partition key strings.
    return dt.date.fromisoformat(key) if isinstance(key, str) else key


def _point_in_time(frame: pl.DataFrame, as_of: dt.date) -> tuple[pl.DataFrame, dict[str, int]]:
    """Training rows as of ``as_of``: labelled by then (``labels_as_of``, the one point-in-time
    rule) and happened by then; with a count of each reason a row was left out."""
    cutoff = end_of_day(as_of)
    labelled = pl.col("label").is_not_null() & pl.col("label_ts").is_not_null()
    known = labels_as_of(frame.with_columns(_labelled=labelled), as_of)
    happened = pl.col("event_ts").is_not_null() & (pl.col("event_ts") < cutoff)
    label_known = pl.col("label").is_not_null()
    counts = known.select(
        unlabelled=(~pl.col("_labelled")).sum(),
        label_after_as_of=(pl.col("_labelled") & ~label_known).sum(),
        event_after_as_of=(label_known & ~happened).sum(),
    ).row(0, named=True)
    kept = known.filter(label_known & happened).drop("_labelled")
    return kept, {k: int(v or 0) for k, v in counts.items()}


def _allocate(counts: dict[str, int], size: int) -> dict[str, int]:
    """Per-label sample sizes: proportional to counts, >= 1 per label when size allows.

    Largest-remainder rounding; ties broken by label name so the result is deterministic.
    """
    total = sum(counts.values())
    quota = {label: size * n / total for label, n in counts.items()}
    floor_min = 1 if size >= len(counts) else 0
    alloc = {label: min(counts[label], max(floor_min, math.floor(q))) for label, q in quota.items()}
    while sum(alloc.values()) > size:  # the >= 1 minimum overshot: trim the most over-served
        label = max((lb for lb in alloc if alloc[lb] > 1), key=lambda lb: (alloc[lb] - quota[lb], lb))
        alloc[label] -= 1
    while sum(alloc.values()) < size:  # hand out the remainder to the most under-served
        open_labels = [lb for lb in alloc if alloc[lb] < counts[lb]]
        label = max(open_labels, key=lambda lb: (quota[lb] - alloc[lb], lb))
        alloc[label] += 1
    return alloc


def _replay_sample(pool: pl.DataFrame, size: int, seed: int, as_of: dt.date) -> pl.DataFrame:
    if size <= 0 or pool.height == 0:
        return pool.clear()
    counts = dict(pool.group_by("label").len().iter_rows())
    alloc = _allocate(counts, min(size, pool.height))
    ranked = _with_hash(pool, f"replay:{seed}:{as_of.isoformat()}").sort(["_h", "event_id"])
    ranked = ranked.with_columns(_rank=pl.int_range(pl.len()).over("label"))
    quota = pl.col("label").replace_strict(alloc, return_dtype=pl.Int64)
    return ranked.filter(pl.col("_rank") < quota).drop("_h", "_rank")


def build_training_set(
    frames_by_day: Mapping[dt.date, pl.DataFrame],
    *,
    as_of: dt.date,
    window_days: int,
    replay_pool: pl.DataFrame,
    replay_fraction: float,
    val_fraction: float,
    holdout_days: int,
    golden_ids: set[str],
    golden_texts: set[str],
    seed: int,
    replay_filter: Callable[[pl.DataFrame, pl.DataFrame], tuple[pl.DataFrame, dict]] | None = None,
    window_info: Mapping | None = None,
) -> TrainingSet:
    """``replay_filter(pool, window) -> (pool, counts)`` runs on the replay pool before the
    sample is drawn (change_window.contradicted_replay); ``window_info`` is merged into
    stats["window"] (the mode and where the window starts)."""
    if not 1 <= holdout_days < window_days:
        raise ValueError(f"holdout_days {holdout_days} must be >= 1 and < window_days {window_days}")
    if not 0.0 < val_fraction < 1.0 or not 0.0 <= replay_fraction <= 1.0:
        raise ValueError(f"val_fraction {val_fraction} / replay_fraction {replay_fraction} out of range")
    start = as_of - dt.timedelta(days=window_days - 1)

    parts = []
    for key, frame in sorted(frames_by_day.items(), key=lambda kv: _as_date(kv[0])):
        day = _as_date(key)
        if not start <= day <= as_of:
            raise ValueError(f"frame for day {day} is outside the window {start}..{as_of} (as_of {as_of})")
        if frame.height:
            parts.append(_core(frame, f"frame {day}"))
    window = pl.concat(parts) if parts else _empty()
    window, dropped = _point_in_time(window, as_of)

    golden = _golden_mask(golden_ids, golden_texts)
    leaked_window = window.filter(golden).height
    window = window.filter(~golden)
    before = window.height
    # A late re-delivery can land the same event in two days; keep its newest version so it
    # cannot sit in holdout and train at once.
    window = window.sort(["event_id", "event_ts", "label_ts"]).unique("event_id", keep="last")
    duplicates = before - window.height

    pool = _core(replay_pool, "replay_pool") if replay_pool.height else _empty()
    pool, _ = _point_in_time(pool, as_of)
    leaked_pool = pool.filter(golden).height
    pool = pool.filter(~golden).join(window.select("event_id"), on="event_id", how="anti")
    holdout_start = as_of - dt.timedelta(days=holdout_days - 1)
    filtered = None
    if replay_filter is not None:
        # Judged by the training days only: the holdout's labels must not shape what trains.
        pool, filtered = replay_filter(pool, window.filter(pl.col("event_ts").dt.date() < holdout_start))
    size = math.floor(replay_fraction * window.height + 0.5)  # round half up, not banker's
    replay = _replay_sample(pool, size, seed, as_of)

    day_expr = pl.col("event_ts").dt.date().alias("_day")
    window = window.with_columns(_origin=pl.lit("window"), _day=day_expr)
    replay = replay.with_columns(_origin=pl.lit("replay"), _day=day_expr)
    holdout = window.filter(pl.col("_day") >= holdout_start)
    rest = _with_hash(pl.concat([window.filter(pl.col("_day") < holdout_start), replay]), _VAL_SALT)
    val = rest.filter(pl.col("_h") < val_fraction).drop("_h")
    train = rest.filter(pl.col("_h") >= val_fraction).drop("_h")

    def tidy(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.select(OUTPUT_COLUMNS).sort(["_day", "event_id"])

    train, val, holdout = tidy(train), tidy(val), tidy(holdout)
    per_day = {(start + dt.timedelta(days=i)).isoformat(): 0 for i in range(window_days)}
    per_day.update({d.isoformat(): int(n) for d, n in window.group_by("_day").len().iter_rows()})
    everything = pl.concat([train, val, holdout])
    stats = {
        "window": {"mode": "fixed", "start": start.isoformat(), "end": as_of.isoformat(), **(window_info or {})},
        "rows_per_day": dict(sorted(per_day.items())),
        "rows_per_label": _label_counts(everything),
        "train_rows_per_label": _label_counts(train),
        "split_rows": {"train": train.height, "val": val.height, "holdout": holdout.height},
        "window_rows": window.height,
        "replay_rows": replay.height,
        "replay_pool_rows": pool.height,
        "replay_share": replay.height / (train.height + val.height) if train.height + val.height else 0.0,
        "leaked_removed": leaked_window + leaked_pool,
        "duplicates_removed": duplicates,
        "dropped": dropped,
        **({"replay_contradicted": filtered} if filtered is not None else {}),
    }
    return TrainingSet(train=train, val=val, holdout=holdout, stats=stats)


def _label_counts(frame: pl.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in frame.group_by("label").len().sort("label").iter_rows()}
