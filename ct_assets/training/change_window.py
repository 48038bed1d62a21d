"""The change-aware training window (``training.window_mode: since_change``; pure, no Dagster).

After a concept change a 14-day sliding window is mostly pre-change rows, and the replay
sample adds old rows whose label the change has contradicted: both teach the old meaning.
With ``since_change`` the window starts at the latest change point the drift reports
marked inside it; the days before it join the replay pool, and the replay leaves out old
rows the post-change data contradicts.

Change point
  A day is *changed* when its drift_report verdict is ``drift`` or ``new_class``. The
  change point is the latest changed day of the window whose previous day is in the window
  and not changed (a stable, blocked or missing report): the onset of the latest drift
  episode. A window whose first day is already changed has no change point inside it (the
  episode began earlier or cannot be dated), so it trains as ``fixed``. Missing reports are
  listed, never guessed.

Clamp
  The post-change part keeps at least ``holdout_days + 1`` days, so there is a training
  day before the holdout: a later change point starts the window at ``as_of - holdout_days``
  and the stats say it was clamped.

Contradiction filter (replay rows only; window rows are the new truth)
  * same text: the row's normalized text (``window.matching_key``) occurs after the change
    with another label;
  * neighbours: of its ``NEIGHBOURS`` most similar post-change rows (TF-IDF character
    n-grams, cosine), at least ``MIN_VOTES`` reach ``MIN_SIMILARITY`` and their majority
    label is another one. Post-change rows used as neighbours are capped at
    ``MAX_NEIGHBOUR_ROWS`` (a seeded sample), replay rows are scored in chunks, so memory
    stays bounded on a large day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import polars as pl
from sklearn.feature_extraction.text import TfidfVectorizer

from ct_assets.training.window import _normalized_text_expr

CHANGE_VERDICTS = ("drift", "new_class")
# 5 neighbours with 3 votes: one near-duplicate cannot overrule a row on its own, a clear
# local majority can. 0.5 cosine on char 3-5-grams is "about the same wording" on ticket
# text; below it, neighbours are topical at best and say nothing about the label.
NEIGHBOURS, MIN_VOTES, MIN_SIMILARITY = 5, 3, 0.5
MAX_NEIGHBOUR_ROWS = 5000
_CHUNK = 2000


@dataclass(frozen=True)
class ChangePoint:
    day: dt.date | None  # the onset found inside the window, None when there is none
    start: dt.date  # where the training window starts (after the clamp)
    clamped: bool
    missing_days: tuple[str, ...]

    def to_stats(self, mode: str) -> dict:
        return {"mode": mode, "change_point": self.day.isoformat() if self.day else None,
                "start": self.start.isoformat(), "clamped": self.clamped,
                "missing_drift_days": list(self.missing_days)}


def find_change_point(verdicts: Mapping[str, str | None], *, as_of: dt.date, window_days: int,
                      holdout_days: int) -> ChangePoint:
    """The change point of the window ending ``as_of`` from each day's drift_report verdict
    (ISO day -> verdict; a missing day or None verdict is "not changed" and listed)."""
    start = as_of - dt.timedelta(days=window_days - 1)
    days = [start + dt.timedelta(days=i) for i in range(window_days)]
    missing = tuple(d.isoformat() for d in days if verdicts.get(d.isoformat()) is None)
    changed = [verdicts.get(d.isoformat()) in CHANGE_VERDICTS for d in days]
    onset = next((days[i] for i in range(len(days) - 1, 0, -1) if changed[i] and not changed[i - 1]), None)
    if onset is None:
        return ChangePoint(None, start, False, missing)
    latest_start = as_of - dt.timedelta(days=holdout_days)
    return ChangePoint(onset, min(onset, latest_start), onset > latest_start, missing)


@dataclass(frozen=True)
class WindowPlan:
    """What build_training_set is called with: the window's days, the replay pool's days,
    the window length, the replay filter and the stats on where the window starts."""

    window: dict[str, pl.DataFrame]
    pool: dict[str, pl.DataFrame]
    window_days: int
    replay_filter: Callable[[pl.DataFrame, pl.DataFrame], tuple[pl.DataFrame, dict]] | None
    info: dict | None
    missing_days: tuple[str, ...] = ()


def plan_window(window: Mapping[str, pl.DataFrame], pool: Mapping[str, pl.DataFrame], *, mode: str,
                as_of: dt.date, window_days: int, holdout_days: int, seed: int,
                verdicts: Mapping[str, str | None] | None = None) -> WindowPlan:
    """``window``/``pool``: validated frames by ISO day, inside / before the fixed window;
    ``verdicts``: drift_report verdict by ISO day of the window (since_change only). With a
    change point the pre-change window days move into the pool and the replay is filtered."""
    if mode == "fixed":
        return WindowPlan(dict(window), dict(pool), window_days, None, None)
    if mode != "since_change":
        raise ValueError(f"training.window_mode must be fixed or since_change, got {mode!r}")
    cp = find_change_point(verdicts or {}, as_of=as_of, window_days=window_days, holdout_days=holdout_days)
    if cp.day is None:
        return WindowPlan(dict(window), dict(pool), window_days, None, cp.to_stats(mode), cp.missing_days)
    first = cp.start.isoformat()  # ISO days order as dates
    return WindowPlan({k: f for k, f in window.items() if k >= first},
                      {**pool, **{k: f for k, f in window.items() if k < first}},
                      (as_of - cp.start).days + 1, partial(contradicted_replay, seed=seed), cp.to_stats(mode),
                      cp.missing_days)


def contradicted_replay(pool: pl.DataFrame, post: pl.DataFrame, *, seed: int) -> tuple[pl.DataFrame, dict]:
    """``pool`` without the rows ``post`` (labelled post-change rows) contradicts, and a
    count per reason (module doc)."""
    counts = {"same_text": 0, "neighbours": 0, "kept": pool.height, "neighbour_rows": 0}
    if pool.height == 0 or post.height == 0:
        return pool, counts
    key = _normalized_text_expr().alias("_key")
    post_labels = post.select(key, "label").unique()
    pool = pool.with_columns(key)
    clash = (pool.select("_key", "label").unique()
             .join(post_labels, on="_key", how="inner", suffix="_post")
             .filter(pl.col("label") != pl.col("label_post"))
             .select("_key", "label").unique())
    same_text = pool.join(clash, on=["_key", "label"], how="semi")
    pool = pool.join(clash, on=["_key", "label"], how="anti").drop("_key")
    counts["same_text"] = same_text.height

    # Sorted first: the window's dedup does not keep row order, and a seeded sample of an
    # unordered frame would pick different neighbours on a rerun.
    post = post.sort("event_id")
    neighbours = post if post.height <= MAX_NEIGHBOUR_ROWS else post.sample(MAX_NEIGHBOUR_ROWS, seed=seed)
    counts["neighbour_rows"] = neighbours.height
    drop = _neighbour_votes(pool["text"].to_list(), pool["label"].to_list(),
                            neighbours["text"].to_list(), neighbours["label"].to_list())
    if drop is None:  # said, not hidden: the neighbour rule could not judge anything
        counts["neighbours_skipped"] = "no comparable post-change text (only empty or too-short texts)"
        drop = np.zeros(pool.height, dtype=bool)
    counts["neighbours"] = int(drop.sum())
    pool = pool.filter(pl.Series(~drop))
    counts["kept"] = pool.height
    return pool, counts


def _neighbour_votes(texts: Sequence[str], labels: Sequence[str], ref_texts: Sequence[str],
                     ref_labels: Sequence[str]) -> np.ndarray | None:
    """True where the row's close post-change neighbours mostly carry another label; None
    when the post-change texts give the vectorizer no vocabulary (nothing to compare to)."""
    out = np.zeros(len(texts), dtype=bool)
    if not texts or not ref_texts:
        return out
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), lowercase=True, sublinear_tf=True)
    try:
        ref = vectorizer.fit_transform(ref_texts)
    except ValueError:  # only empty / too-short texts after the change: nothing to compare to
        return None
    # Labels as codes so the vote is array arithmetic, not a Python loop per replay row.
    names, ref_codes = np.unique(np.asarray(ref_labels, dtype=object).astype(str), return_inverse=True)
    index = {name: i for i, name in enumerate(names)}
    own = np.array([index.get(str(y), -1) for y in labels])  # -1: a label nobody uses after the change
    k = min(NEIGHBOURS, ref.shape[0])
    for lo in range(0, len(texts), _CHUNK):
        sims = (vectorizer.transform(texts[lo:lo + _CHUNK]) @ ref.T).toarray()  # rows are L2-normalised
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        close = np.take_along_axis(sims, top, axis=1) >= MIN_SIMILARITY
        codes = np.where(close, ref_codes[top], -1)
        votes = np.stack([(codes == c).sum(axis=1) for c in range(len(names))], axis=1)
        # MIN_VOTES (3) of NEIGHBOURS (5) is a strict majority, so the winner is unique.
        winner, top_votes = votes.argmax(axis=1), votes.max(axis=1)
        out[lo:lo + len(top)] = (top_votes >= MIN_VOTES) & (winner != own[lo:lo + len(top)])
    return out
