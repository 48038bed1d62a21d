"""Deterministic simulator of a drifting stream of customer-support tickets.

One call produces one day of landing rows (docs/CONTRACTS.md row contract plus a
``channel`` extra). Everything is a pure function of (config, start_date, day): each
concern (times, intents, label arrival, texts, corruption) draws from its own numpy
stream seeded by (seed, day.toordinal(), stream id), and every row's text from its own
stream, so a day never depends on which other days were generated, and switching a
scenario on changes only what that scenario is about.

Named drift scenarios (see ``SCENARIO_NAMES``) switch on by day index; the words they
introduce are listed in ``simulator_text`` (``LAUNCH_NAMES``, ``LAUNCH_MARKERS``,
``SLANG_MARKERS``) so drift tests can target them. The quality incident lives in
``_corrupt``, the seasonal absence of one class in ``seasonal``, what concept_change
relabels and label_shift's outage wording in ``scenario_rules``. Wording lives in
``simulator_text``.

CLI (``sim/cli.py``): ``python -m ct_assets.sim.cli golden > ct_assets/sim/golden/golden_v1.jsonl``
and ``python -m ct_assets.sim.cli write --start 2026-09-01 --days 3 --landing DIR``.
"""

from __future__ import annotations

import json
import os
import tempfile
import zlib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from pathlib import Path

import numpy as np

from ct_assets.core.settings import SimulatorSettings
from ct_assets.sim import render, seasonal
from ct_assets.sim import scenario_rules as rules
from ct_assets.sim import vocabulary as txt
from ct_assets.sim.corruption import BAD_KINDS, corrupt
from ct_assets.sim.vocabulary import (
    CONCEPT_CHANGE_SUBINTENT,
    DEFAULT_LABELS,
    VAGUE_SUBINTENT,
)

__all__ = [
    "CONCEPT_CHANGE_SUBINTENT", "DEFAULT_LABELS", "GOLDEN_PATH", "SCENARIO_NAMES", "BAD_KINDS",
    "RowInfo", "Scenario", "SimulatorConfig", "active_scenarios", "generate_day",
    "generate_day_annotated", "golden_rows", "golden_rows_annotated", "load_golden", "write_day",
    "dumps_rows",
]

SCENARIO_NAMES = ("product_launch", "slang_shift", "label_shift", "concept_change", "quality_incident",
                  seasonal.NAME)
CONCEPT_FROM, CONCEPT_TO = "cancellation", "refund"

# Realistic, not uniform, traffic mix; labels outside this table get the mean weight.
BASE_PRIOR = {"billing": 0.20, "refund": 0.14, "shipping": 0.22, "account_access": 0.14,
              "technical_issue": 0.17, "cancellation": 0.13}
# label_shift at strength 1 (an outage): these labels take 60% of traffic.
OUTAGE_SHARES = {"technical_issue": 0.40, "account_access": 0.20}
CHANNELS, CHANNEL_P = ("email", "chat", "web"), (0.30, 0.45, 0.25)

# Irreducible error, so a small classifier lands near 90% rather than 100%.
LABEL_NOISE = 0.03
VAGUE_SHARE = 0.05
TYPO_RATE = 0.008
# Scenario intensities at strength 1.
LAUNCH_SLOT_SHARE = 0.6  # a product/plan mention names a launch product
LAUNCH_TEMPLATE_SHARE = 0.25  # the whole text is launch wording ("preorder", "eSIM")
SLANG_SHARE = 0.7
BAD_SHARE = 0.3


GOLDEN_SEED = 20260801  # separate from any stream seed: golden texts differ from daily ones
GOLDEN_PER_LABEL = 60
GOLDEN_DATE = date(2026, 8, 1)
GOLDEN_PATH = Path(__file__).resolve().parent / "golden" / "golden_v1.jsonl"

_TIMES, _INTENTS, _LABELS, _TEXT, _QUALITY, _GOLDEN, _SEASONAL, _OUTAGE = range(8)  # stream ids
_DAY_SECONDS = 86_400
# Support traffic follows the working day (UTC hours weights).
_HOUR_WEIGHTS = np.array([1, 1, 1, 1, 1, 2, 3, 5, 8, 10, 10, 10, 9, 9, 10, 10, 9, 8, 6, 5, 4, 3, 2, 1], float)


@dataclass(frozen=True)
class Scenario:
    name: str
    start_day: int
    end_day: int | None = None  # inclusive; None = forever
    strength: float = 1.0
    # seasonal_class only: the class that leaves (end_day None = it never returns).
    # Refused elsewhere rather than ignored: a label on another scenario is a mistake.
    label: str | None = None

    def __post_init__(self) -> None:
        if self.name not in SCENARIO_NAMES:
            raise ValueError(f"scenario name: {self.name!r} is not one of {SCENARIO_NAMES}")
        if (self.name == seasonal.NAME) != (self.label is not None):
            need = "needs a label (the class that leaves)" if self.label is None else "takes no label"
            raise ValueError(f"scenario {self.name}: label {self.label!r}: {self.name} {need}")
        if self.end_day is not None and self.end_day < self.start_day:
            raise ValueError(f"scenario {self.name}: end_day {self.end_day} < start_day {self.start_day}")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"scenario {self.name}: strength {self.strength} not in [0, 1]")

    def active(self, day_index: int) -> bool:
        return self.start_day <= day_index and (self.end_day is None or day_index <= self.end_day)


_DEFAULTS = SimulatorSettings()


@dataclass(frozen=True)
class SimulatorConfig:
    labels: tuple[str, ...]
    # Defaults are the settings' own (source.simulator.*): one source for each number.
    seed: int = _DEFAULTS.seed
    rows_per_day: int = _DEFAULTS.rows_per_day
    same_day_label_share: float = _DEFAULTS.same_day_label_share
    max_label_delay_days: int = _DEFAULTS.max_label_delay_days
    never_labelled_share: float = _DEFAULTS.never_labelled_share
    scenarios: tuple[Scenario, ...] = ()

    def __post_init__(self) -> None:
        # Lists (from YAML/JSON) become tuples: the config stays hashable and immutable.
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "scenarios", tuple(self.scenarios))
        # Fail at construction with the field name, not deep inside a day's generation.
        if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels: need at least 2 distinct labels, got {list(self.labels)}")
        if self.seed < 0 or self.rows_per_day < 1 or self.max_label_delay_days < 0:
            raise ValueError("seed and max_label_delay_days must be >= 0, rows_per_day >= 1")
        for key in ("same_day_label_share", "never_labelled_share"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ValueError(f"{key}: {getattr(self, key)} not in [0, 1]")
        names = {s.name for s in self.scenarios}
        if "concept_change" in names and not {CONCEPT_FROM, CONCEPT_TO} <= set(self.labels):
            raise ValueError(f"concept_change needs labels {CONCEPT_FROM!r} and {CONCEPT_TO!r}")
        if "label_shift" in names and not set(OUTAGE_SHARES) & set(self.labels):
            raise ValueError(f"label_shift needs one of the labels {sorted(OUTAGE_SHARES)}")
        for s in self.scenarios:
            if s.label is not None and s.label not in self.labels:
                raise ValueError(f"scenario {s.name}: label {s.label!r} is not one of labels {list(self.labels)}")


@dataclass(frozen=True)
class RowInfo:
    """Ground truth behind a row, for tests and drift experiments (not written out)."""

    intent: str  # the intent that generated the text
    sub_intent: str
    true_label: str  # label before label noise (after the concept-change rule)
    slang: bool = False
    launch: bool = False  # a launch product or launch wording appears in the text
    bad_kind: str | None = None  # quality-incident corruption, one of BAD_KINDS
    outage: bool = False  # label_shift's outage wording, shared by both outage classes


Annotated = list[tuple[dict, RowInfo]]  # rows, each with the truth behind it


def active_scenarios(config: SimulatorConfig, day_index: int) -> list[Scenario]:
    return [s for s in config.scenarios if s.active(day_index)]


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(list(key)))


def _strengths(config: SimulatorConfig, day_index: int) -> dict[str, float]:
    # Overlapping scenarios of the same name: the strongest wins.
    out: dict[str, float] = {}
    for s in active_scenarios(config, day_index):
        out[s.name] = max(out.get(s.name, 0.0), s.strength)
    return out


def label_prior(labels: tuple[str, ...], outage: float = 0.0) -> np.ndarray:
    """Traffic share per label; ``outage`` (label_shift strength) moves it towards
    OUTAGE_SHARES, the other labels keeping their relative sizes."""
    mean = float(np.mean(list(BASE_PRIOR.values())))
    base = np.array([BASE_PRIOR.get(l, mean) for l in labels])
    base /= base.sum()
    if outage <= 0:
        return base
    hit = np.array([l in OUTAGE_SHARES for l in labels])
    targets = np.array([OUTAGE_SHARES.get(l, 0.0) for l in labels])
    targets *= sum(OUTAGE_SHARES.values()) / targets.sum()  # one outage label alone still gets 60%
    rest = np.where(hit, 0.0, base)
    if rest.sum() > 0:
        shifted = targets + rest / rest.sum() * (1.0 - targets.sum())
    else:  # every label is an outage label
        shifted = targets / targets.sum()
    return (1 - outage) * base + outage * shifted


@lru_cache(maxsize=None)
def _subintents(intent: str) -> tuple[tuple[str, ...], np.ndarray]:
    subs = tuple(txt.INTENT_TEMPLATES.get(intent, {"generic": ()}))
    w = np.array([txt.SUBINTENT_WEIGHTS.get(s, 1.0) for s in subs])
    return subs, np.cumsum(w / w.sum())


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(rng: np.random.Generator, intent: str, sub: str, channel: str, *, slang: bool,
          launch: float, launch_template: bool, outage: bool = False) -> tuple[str, bool]:
    """Render one ticket text; ``launch`` is the share of launch products in slots."""
    if sub == VAGUE_SUBINTENT:
        body = render.pick(rng, txt.VAGUE_TEMPLATES)
    elif outage:  # label_shift: wording shared by both outage classes (scenario_rules)
        body = render.pick(rng, rules.OUTAGE_TEMPLATES)
    elif intent not in txt.INTENT_TEMPLATES:
        body = render.pick(rng, txt.GENERIC_TEMPLATES)
    elif slang:
        pool = txt.SLANG_CONCEPT_TEMPLATES if sub == CONCEPT_CHANGE_SUBINTENT else txt.SLANG_TEMPLATES[intent]
        body = render.pick(rng, pool)
    elif launch_template:
        body, launch = render.pick(rng, txt.LAUNCH_TEMPLATES[intent]), 1.0
    else:
        body = render.pick(rng, txt.INTENT_TEMPLATES[intent][sub])
    template = render.compose(rng, body, channel, slang=slang)
    lowercase = not slang and rng.random() < render.LOWERCASE_P[channel]
    text, used = render.render(rng, template, launch_p=launch, typo_rate=TYPO_RATE, lowercase=lowercase,
                            extra={"topic": intent.replace("_", " ")})
    if rng.random() < render.CURLY_APOSTROPHE_P:
        text = text.replace("'", "\u2019")
    return text, used


def _truth(u: np.ndarray, intent: str, labels: tuple[str, ...], concept: float) -> tuple[str, str, str]:
    """(sub-intent, true label, annotated label) from one row's fixed uniforms."""
    subs, sub_cum = _subintents(intent)
    if u[1] < VAGUE_SHARE:
        sub = VAGUE_SUBINTENT
    else:
        sub = subs[min(int(np.searchsorted(sub_cum, u[2], side="right")), len(subs) - 1)]
    moved = intent == CONCEPT_FROM and sub in rules.CONCEPT_SUBINTENTS  # the refund policy's reach
    true_label = CONCEPT_TO if moved and u[3] < concept else intent
    label = true_label
    if u[4] < LABEL_NOISE:  # annotator mistakes: any other label
        others = [l for l in labels if l != true_label]
        label = others[min(int(u[5] * len(others)), len(others) - 1)]
    return sub, true_label, label


def _label_ts(v: np.ndarray, sec: int, day0: datetime, never: float, same: float,
              max_delay: int) -> datetime | None:
    """When the label arrives: never, later the same day, or 1..max_delay days later."""
    if v[0] < never:
        return None
    if v[0] < never + same:  # skewed towards soon after the event; sec <= 86398
        left = _DAY_SECONDS - 1 - sec
        return day0 + timedelta(seconds=sec + 1 + int(v[1] ** 2 * (left - 1)))
    delay = 1 + min(int(v[1] * max_delay), max_delay - 1)
    return day0 + timedelta(days=delay, seconds=int(v[2] * _DAY_SECONDS))


def generate_day_annotated(config: SimulatorConfig, start_date: date, day: date) -> Annotated:
    """One day's rows, each with the ground truth that produced it."""
    day_index = (day - start_date).days
    if day_index < 0:
        raise ValueError(f"day {day} is before start_date {start_date}")
    power = _strengths(config, day_index)
    n, labels, key = config.rows_per_day, config.labels, (config.seed, day.toordinal())

    # Event times: diurnal hours, sorted so event_id order is time order. The last
    # second of the day is kept free so a same-day label can always come later.
    r = _rng(*key, _TIMES)
    hours = r.choice(24, size=n, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
    secs = np.sort(np.minimum(hours * 3600 + r.integers(0, 3600, size=n), _DAY_SECONDS - 2))

    # Intents and label arrival: a fixed number of uniforms per row, so a scenario
    # changes what it is about (the prior, the concept rule) and never other draws.
    u = _rng(*key, _INTENTS).random((n, 6))
    prior = label_prior(labels, power.get("label_shift", 0.0))
    intent_idx = np.minimum(np.searchsorted(np.cumsum(prior), u[:, 0], side="right"), len(labels) - 1)
    away = seasonal.absences(config.scenarios, day_index)
    if away:  # on top of any outage; only the absent class's rows move, from their own stream
        target = seasonal.without_absent(prior, labels, away, day_index)
        intent_idx = seasonal.reassign(intent_idx, prior, target, _rng(*key, _SEASONAL))
    v = _rng(*key, _LABELS).random((n, 3))
    never = config.never_labelled_share
    same = 1.0 - never if config.max_label_delay_days == 0 else min(config.same_day_label_share, 1.0 - never)

    launch = LAUNCH_SLOT_SHARE * power.get("product_launch", 0.0)
    outage_p = rules.OUTAGE_TEXT_SHARE * power.get("label_shift", 0.0)
    w = _rng(*key, _OUTAGE).random(n) if outage_p > 0 else np.ones(n)  # own stream: no other draw moves
    day0 = datetime.combine(day, time(), tzinfo=timezone.utc)
    out: Annotated = []
    for i in range(n):
        intent = labels[intent_idx[i]]
        sub, true_label, label = _truth(u[i], intent, labels, power.get("concept_change", 0.0))
        label_ts = _label_ts(v[i], int(secs[i]), day0, never, same, config.max_label_delay_days)

        tr = _rng(*key, _TEXT, i)  # per row: one row's wording never shifts another's
        channel = CHANNELS[int(np.searchsorted(np.cumsum(CHANNEL_P), tr.random(), side="right"))]
        slang = tr.random() < SLANG_SHARE * power.get("slang_shift", 0.0)
        outage = not slang and intent in OUTAGE_SHARES and sub != VAGUE_SUBINTENT and w[i] < outage_p
        launch_template = (launch > 0 and not outage and sub not in (VAGUE_SUBINTENT, CONCEPT_CHANGE_SUBINTENT)
                           and intent in txt.LAUNCH_TEMPLATES
                           and tr.random() < LAUNCH_TEMPLATE_SHARE * power["product_launch"])
        text, used_launch = _text(tr, intent, sub, channel, slang=slang, launch=launch,
                                  launch_template=launch_template, outage=outage)

        row = {"event_id": f"{day:%Y%m%d}-{i:05d}", "event_ts": _iso(day0 + timedelta(seconds=int(secs[i]))),
               "text": text, "label": label if label_ts else None,
               "label_ts": _iso(label_ts) if label_ts else None, "channel": channel}
        info = RowInfo(intent, sub, true_label, slang=slang, launch=used_launch or launch_template, outage=outage)
        out.append((row, info))

    if power.get("quality_incident", 0.0) > 0:
        out = corrupt(out, _rng(*key, _QUALITY), BAD_SHARE * power["quality_incident"])
    return out


def generate_day(config: SimulatorConfig, start_date: date, day: date) -> list[dict]:
    return [row for row, _ in generate_day_annotated(config, start_date, day)]


def dumps_rows(rows: list[dict]) -> bytes:
    """JSONL bytes, UTF-8 (non-ASCII kept as characters), fixed key order."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def write_day(config: SimulatorConfig, start_date: date, day: date, landing_dir: Path) -> Path:
    """Write ``<landing_dir>/dt=YYYY-MM-DD/events.jsonl`` atomically; re-running replaces it.

    The temp file lives in the same directory (same filesystem, so os.replace is atomic)
    and has a non-.jsonl suffix so a reader listing *.jsonl never sees a half file.
    """
    data = dumps_rows(generate_day(config, start_date, day))
    if not isinstance(landing_dir, (str, Path)):  # an object store (UPath): one PUT is atomic
        target = landing_dir / f"dt={day:%Y-%m-%d}" / "events.jsonl"
        target.write_bytes(data)
        return target
    target = Path(landing_dir) / f"dt={day:%Y-%m-%d}" / "events.jsonl"
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".events.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the file from other readers
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def golden_rows_annotated(labels: tuple[str, ...] = DEFAULT_LABELS, seed: int = GOLDEN_SEED) -> Annotated:
    """The golden set: GOLDEN_PER_LABEL rows per label, old world only, true labels.

    No scenarios, no label noise, no vague texts, and never the concept-change
    sub-intent (its truth changes over time). Each label has its own stream (keyed by
    the label's crc32), so adding a label does not change the others' rows.
    """
    per_label: list[list[tuple[str, str, str]]] = []
    for label in labels:
        keep = [s for s in _subintents(label)[0] if s != CONCEPT_CHANGE_SUBINTENT]
        items = []
        for k in range(GOLDEN_PER_LABEL):
            r = _rng(seed, zlib.crc32(label.encode()), _GOLDEN, k)
            sub = keep[int(r.integers(len(keep)))]
            channel = CHANNELS[int(np.searchsorted(np.cumsum(CHANNEL_P), r.random(), side="right"))]
            text, _ = _text(r, label, sub, channel, slang=False, launch=0.0, launch_template=False)
            items.append((text, channel, sub))
        per_label.append(items)
    day0 = datetime.combine(GOLDEN_DATE, time(), tzinfo=timezone.utc)
    out: Annotated = []
    for k in range(GOLDEN_PER_LABEL):  # round-robin over labels: any prefix is balanced
        for label, items in zip(labels, per_label):
            ts = day0 + timedelta(seconds=200 * len(out))
            text, channel, sub = items[k]
            row = {"event_id": f"golden-{len(out):04d}", "event_ts": _iso(ts), "text": text, "label": label,
                   "label_ts": _iso(ts + timedelta(minutes=10)), "channel": channel}
            out.append((row, RowInfo(label, sub, label)))
    return out


def golden_rows(labels: tuple[str, ...] = DEFAULT_LABELS, seed: int = GOLDEN_SEED) -> list[dict]:
    """What ``GOLDEN_PATH`` holds (for the default labels and seed)."""
    return [row for row, _ in golden_rows_annotated(labels, seed)]


def load_golden(path: Path = GOLDEN_PATH) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
