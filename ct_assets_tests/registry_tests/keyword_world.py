"""A world the tiny model can learn, in a landing zone, for the model chain's policy tests.

Why not the simulator: its tickets are phrase-level and the tiny random BERT learns
nothing from them within a test's budget (holdout accuracy stays at chance and every
prediction is one class), so neither "a clearly worse challenger" nor "a challenger that
disagrees with the champion" can be made for real on it. Here each label has its own
keywords: the tiny base learns them in two epochs, and a model trained on days whose
labels were permuted (a labelling bug) really learns the wrong mapping.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterable
from pathlib import Path

import pytest

from ct_assets.sim.vocabulary import DEFAULT_LABELS
from ct_assets_tests.helpers import START, model_settings

LABELS = DEFAULT_LABELS
KEYWORDS = {
    "billing": ("invoice", "charged", "payment", "card"),
    "refund": ("refund", "reimburse", "return", "money"),
    "shipping": ("package", "delivery", "courier", "parcel"),
    "account_access": ("password", "signin", "username", "locked"),
    "technical_issue": ("crash", "error", "freezes", "broken"),
    "cancellation": ("cancel", "terminate", "unsubscribe", "close"),
}
FILLER = ("hi", "hello", "please", "help", "my", "the", "is", "not", "since", "yesterday", "with", "order",
          "account", "thanks", "today", "can", "you", "look", "at", "this", "urgent")
ROWS_PER_DAY = 120
GOLDEN_PER_LABEL = 20


def mislabel(label: str) -> str:
    """The labelling bug: every label shifted to the next one, so no class keeps its own."""
    return LABELS[(LABELS.index(label) + 1) % len(LABELS)]


def tickets(n: int, seed: int) -> list[tuple[str, str]]:
    """n (text, label) pairs, labels balanced: 1-3 of the label's keywords among 0-8 fillers."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = LABELS[i % len(LABELS)]
        words = [rng.choice(KEYWORDS[label]) for _ in range(rng.randint(1, 3))]
        words += [rng.choice(FILLER) for _ in range(rng.randint(0, 8))]
        rng.shuffle(words)
        out.append((" ".join(words), label))
    rng.shuffle(out)
    return out


def write_landing(landing: Path, days: Iterable[int], *, mislabelled: Iterable[int] = ()) -> None:
    """One JSONL file per day index, every row labelled the same day (labels known at once)."""
    mislabelled = set(mislabelled)
    for i in days:
        day = START + dt.timedelta(days=i)
        folder = landing / f"dt={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for n, (text, label) in enumerate(tickets(ROWS_PER_DAY, seed=1000 + i)):
            ts = dt.datetime.combine(day, dt.time(8), dt.UTC) + dt.timedelta(minutes=n)
            lines.append(json.dumps({
                "event_id": f"{day:%Y%m%d}-{n:04d}", "event_ts": ts.isoformat(), "text": text,
                "label": mislabel(label) if i in mislabelled else label, "label_ts": ts.isoformat()}))
        (folder / "events.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_golden(path: Path) -> None:
    """The curated set: true labels, GOLDEN_PER_LABEL rows of every label."""
    rows = tickets(GOLDEN_PER_LABEL * len(LABELS), seed=7)
    path.write_text("".join(json.dumps({"event_id": f"golden-{n}", "text": t, "label": y}) + "\n"
                            for n, (t, y) in enumerate(rows)), encoding="utf-8")


@pytest.fixture(scope="session")
def keyword_base_dir(tmp_path_factory) -> Path:
    """A tiny random BERT whose WordPiece vocabulary holds every keyword and filler."""
    from ct_assets.training.base_model import build_tiny_model

    texts = [t for t, _ in tickets(600, seed=0)]
    return build_tiny_model(tmp_path_factory.mktemp("tiny_keyword_base"), texts)


def keyword_world(home_root: Path, base_dir: Path, days: Iterable[int], *, mislabelled: Iterable[int] = (),
                  **overrides):
    """Landing files and golden set under CT_HOME, and model settings reading them. The
    gate keeps its real rules (CI check on, min_improvement 0, max_forgetting 0.05) and
    the shadow its real thresholds (the settings' defaults), unless ``overrides`` say so."""
    landing, golden = home_root / "landing", home_root / "golden.jsonl"
    write_landing(landing, days, mislabelled=mislabelled)
    write_golden(golden)
    # Absolute: settings resolve relative paths under the session's CT_HOME, not this one.
    return model_settings(base_dir, **{
        "source.kind": "landing_zone", "source.path": str(landing),
        "golden.path": str(golden), "golden.min_per_label": GOLDEN_PER_LABEL,
        "gate.min_improvement": 0.0, "gate.require_ci_above_zero": True, "gate.max_forgetting": 0.05,
        "promotion.min_shadow_agreement": 0.5, "promotion.max_shadow_accuracy_drop": 0.02,
        **overrides})
