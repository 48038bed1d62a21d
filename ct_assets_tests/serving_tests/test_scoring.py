"""The request path off the HTTP layer: an off-path (shadow) failure never fails the
request, is counted, and its rows still land, with the shadow fields empty; feedback that
arrives before its row has left the shadow wait is held for it, not refused.

The predictors are plain recording objects (the server tests run the real model); the
prediction log is the real one, writing into a temporary landing zone.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from ct_assets.core.model_settings import ServingSettings
from ct_assets.serving.batching import MicroBatcher
from ct_assets.serving.metrics import ServingMetrics
from ct_assets.serving.models import LoadedModel, ModelSlots, Slots
from ct_assets.serving.prediction_log import PredictionLog, read_records
from ct_assets.serving.routing import CHAMPION_ARM
from ct_assets.serving.scoring import NotReadyError, Scorer

WAIT = 60  # seconds: only a hung test waits this long


class ConstantPredictor:
    def __init__(self, label: str, fail: bool = False) -> None:
        self.label, self.fail = label, fail
        self.release = threading.Event()
        self.release.set()

    def predict(self, texts):
        assert self.release.wait(WAIT)
        if self.fail:
            raise RuntimeError("challenger out of memory")
        return SimpleNamespace(labels=[self.label] * len(texts), confidence=np.full(len(texts), 0.75))


@pytest.fixture
def make_scorer(tmp_path):
    """(Scorer, its PredictionLog, its metrics) over champion v1 and gated challenger v2, shadow on."""
    batchers: list[MicroBatcher] = []

    def make(champion, challenger) -> tuple[Scorer, PredictionLog, ServingMetrics]:
        metrics = ServingMetrics()
        models = ModelSlots(source=None, limits=ServingSettings(), metrics=metrics)
        made = [MicroBatcher(p, max_batch=8, max_wait_ms=0, name=f"v{v}") for v, p in ((1, champion), (2, challenger))]
        batchers.extend(made)
        models.slots = Slots(LoadedModel(1, made[0]), LoadedModel(2, made[1]), None, None)
        log = PredictionLog(tmp_path / "landing", flush_rows=1000, flush_seconds=60)
        return Scorer(models, log, metrics, ServingSettings(shadow=True)), log, metrics

    yield make
    for batcher in batchers:
        batcher.close()
        assert batcher.join(WAIT)


def _rows(log: PredictionLog) -> dict[str, dict]:
    return {r["event_id"]: r for path in log.flush() for r in read_records(path)}


def test_a_failed_shadow_never_fails_the_request_and_its_rows_still_land(make_scorer):
    scorer, log, metrics = make_scorer(ConstantPredictor("billing"), ConstantPredictor("refund", fail=True))
    now = dt.datetime.now(dt.UTC)

    async def run():
        answers = await scorer.predict(["a", "b"], ["e1", "e2"], now)
        await scorer.drain()
        return answers

    answers = asyncio.run(run())
    assert [(a["label"], a["version"], a["arm"]) for a in answers] == [("billing", 1, CHAMPION_ARM)] * 2
    rows = _rows(log)
    assert set(rows) == {"e1", "e2"}
    assert all(r["served_version"] == 1 and r["shadow_version"] is None and r["shadow_prediction"] is None
               and r["shadow_confidence"] is None for r in rows.values())
    labels = {"role": "shadow", "version": "2", "outcome": "failed"}
    assert metrics.registry.get_sample_value("ct_serve_shadow_scorings_total", labels) == 1


def test_feedback_waits_for_a_row_still_waiting_on_its_shadow(make_scorer):
    challenger = ConstantPredictor("refund")
    challenger.release.clear()  # the shadow result is held back: the row cannot be logged yet
    scorer, log, _ = make_scorer(ConstantPredictor("billing"), challenger)

    async def run():
        await scorer.predict(["where is my money"], ["e1"], dt.datetime.now(dt.UTC))
        feedback = asyncio.create_task(scorer.feedback("e1", "refund", dt.datetime.now(dt.UTC)))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not feedback.done(), "feedback went ahead of its row (it would have been a 404)"
        challenger.release.set()
        await asyncio.wait_for(feedback, WAIT)
        await scorer.drain()

    asyncio.run(run())
    row = _rows(log)["e1"]
    assert (row["label"], row["shadow_prediction"], row["shadow_version"]) == ("refund", "refund", 2)


def test_no_champion_is_not_ready_with_the_reason(make_scorer):
    scorer, _, _ = make_scorer(ConstantPredictor("billing"), ConstantPredictor("refund"))
    scorer.models.slots = Slots(champion_problem="model m: no version has alias 'champion'")
    with pytest.raises(NotReadyError, match="no champion loaded: model m: no version has alias 'champion'"):
        asyncio.run(scorer.predict(["a"], None, dt.datetime.now(dt.UTC)))
