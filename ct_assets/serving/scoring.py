"""The /predict and /feedback work behind the HTTP layer: route, score, log (pure).

A request reads ``ModelSlots.slots`` once and submits every text to its arm's batcher,
and every off-path scoring (shadow, canary baseline) to the other model's batcher, in
the same step, without yielding to the event loop in between: a reload cannot close
those batchers before the texts are queued, and batchers drain before they stop. The
response waits only for the serving arms. An asyncio task then waits for the off-path
results and appends the rows to the prediction log; an off-path failure is logged and
counted, and the rows go in with the shadow fields None.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from ct_assets.core.model_settings import ServingSettings
from ct_assets.serving.batching import Scored
from ct_assets.serving.metrics import ServingMetrics
from ct_assets.serving.models import LoadedModel, ModelSlots
from ct_assets.serving.prediction_log import PredictionLog
from ct_assets.serving.routing import CANARY_ARM, arm_for

log = logging.getLogger(__name__)

SHADOW_ROLE = "shadow"  # the gated challenger scoring champion-arm texts (serving.shadow)
BASELINE_ROLE = "canary_baseline"  # the champion scoring canary-arm texts, so agreement can be measured
# Feedback for an event whose row still waits on its shadow result waits this long for it.
# Off-path scoring is one more batch on an idle model (milliseconds); 30 s is a stalled model.
PENDING_ROW_WAIT_S = 30.0


class NotReadyError(RuntimeError):
    """No champion is loaded; the message says why (as /readyz does)."""


class DuplicateEventError(ValueError):
    """A request reuses an event id that already has a served row (refused before scoring)."""


class ModelFailedError(RuntimeError):
    """The serving model raised on this request's texts."""


class CountedPredictionLog(PredictionLog):
    """The prediction log, reporting each flush (the background one too) to the metrics."""

    def __init__(self, landing: Path, *, flush_rows: int, flush_seconds: float, metrics: ServingMetrics) -> None:
        super().__init__(landing, flush_rows=flush_rows, flush_seconds=flush_seconds)
        self.metrics = metrics

    def flush(self) -> list[Path]:
        written = super().flush()
        self.metrics.flushed(len(written))
        return written


class PendingRows:
    """Answered event ids whose rows are not in the prediction log yet."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def add(self, event_ids: Sequence[str]) -> asyncio.Event:
        logged = asyncio.Event()
        self._events.update((e, logged) for e in event_ids)
        return logged

    def done(self, event_ids: Sequence[str], logged: asyncio.Event) -> None:
        for e in event_ids:
            if self._events.get(e) is logged:
                del self._events[e]
        logged.set()

    def has(self, event_id: str) -> bool:
        return event_id in self._events

    async def wait(self, event_id: str, timeout: float) -> None:
        logged = self._events.get(event_id)
        if logged is not None:
            try:
                await asyncio.wait_for(logged.wait(), timeout)
            except TimeoutError:
                log.warning("feedback for %r: its row is still not logged after %.0f s", event_id, timeout)


@dataclass
class _Route:
    """The texts of one request that one arm answers."""

    arm: str
    model: LoadedModel
    indices: list[int]
    served: Future[Scored]
    shadow: LoadedModel | None = None
    shadow_role: str | None = None
    shadow_future: Future[Scored] | None = None
    result: Scored | None = None


class Scorer:
    def __init__(self, models: ModelSlots, prediction_log: PredictionLog, metrics: ServingMetrics,
                 limits: ServingSettings) -> None:
        self.models, self.log, self.metrics, self.limits = models, prediction_log, metrics, limits
        self.pending = PendingRows()
        self._tasks: set[asyncio.Task] = set()

    async def predict(self, texts: Sequence[str], ids: Sequence[str] | None, event_ts: dt.datetime) -> list[dict]:
        started = time.perf_counter()
        event_ids = list(ids) if ids is not None else [uuid.uuid4().hex for _ in texts]
        # Refused up front, while the client can still be told: after the response the row
        # could only be dropped (it would be a second landing-zone row for that id).
        reused = [e for e in event_ids if self.pending.has(e)] + self.log.already_logged(event_ids)
        if reused:
            raise DuplicateEventError(f"event_id {reused[0]!r} was already served ({len(reused)} reused id(s)); "
                                      "each served prediction is one landing-zone row, so ids must be unique")
        routes = self._submit(texts, event_ids)  # no await before this: see the module doc
        logged = self.pending.add(event_ids)
        try:
            await asyncio.gather(*(self._serve(route, started) for route in routes))
        except BaseException:
            self.pending.done(event_ids, logged)
            raise
        task = asyncio.create_task(self._log_rows(routes, texts, event_ids, event_ts, logged))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        answers: list[dict | None] = [None] * len(texts)
        for route in routes:
            for k, i in enumerate(route.indices):
                answers[i] = {"event_id": event_ids[i], "label": route.result.labels[k],
                              "confidence": route.result.confidence[k], "version": route.model.version,
                              "arm": route.arm}
        return answers

    def _submit(self, texts: Sequence[str], event_ids: list[str]) -> list[_Route]:
        slots = self.models.slots
        champion, challenger = slots.champion, slots.challenger
        if champion is None:
            raise NotReadyError(f"no champion loaded: {slots.champion_problem}")
        share = self.limits.canary_percent if challenger is not None else 0.0
        by_arm: dict[str, list[int]] = {}
        for i, event_id in enumerate(event_ids):
            by_arm.setdefault(arm_for(event_id, share), []).append(i)
        routes = []
        for arm, indices in by_arm.items():
            chunk = [texts[i] for i in indices]
            if arm == CANARY_ARM:
                route = _Route(arm, challenger, indices, challenger.batcher.submit(chunk), champion, BASELINE_ROLE)
            else:
                shadow = challenger if self.limits.shadow else None
                route = _Route(arm, champion, indices, champion.batcher.submit(chunk), shadow,
                               SHADOW_ROLE if shadow is not None else None)
            if route.shadow is not None:
                route.shadow_future = route.shadow.batcher.submit(chunk)
            routes.append(route)
        return routes

    async def _serve(self, route: _Route, started: float) -> None:
        try:
            route.result = await asyncio.wrap_future(route.served)
        except Exception as err:
            raise ModelFailedError(f"model v{route.model.version} ({route.arm} arm) failed on "
                                   f"{len(route.indices)} text(s): {type(err).__name__}: {err}") from err
        self.metrics.answered(route.arm, route.model.version, len(route.indices), time.perf_counter() - started)

    async def _shadow_result(self, route: _Route) -> Scored | None:
        if route.shadow_future is None:
            return None
        labels = {"role": route.shadow_role, "version": str(route.shadow.version)}
        try:
            result = await asyncio.wrap_future(route.shadow_future)
        except Exception as err:  # noqa: BLE001 - off the response path: never fails the request
            log.warning("%s scoring on v%s failed for %d text(s) (rows logged without it): %s: %s",
                        route.shadow_role, route.shadow.version, len(route.indices), type(err).__name__, err)
            self.metrics.shadow_scorings.labels(**labels, outcome="failed").inc()
            return None
        self.metrics.shadow_scorings.labels(**labels, outcome="ok").inc()
        return result

    async def _log_rows(self, routes: list[_Route], texts: Sequence[str], event_ids: list[str],
                        event_ts: dt.datetime, logged: asyncio.Event) -> None:
        try:
            rows: list[tuple[int, dict]] = []
            for route in routes:
                shadow = await self._shadow_result(route)
                for k, i in enumerate(route.indices):
                    rows.append((i, _row(event_ids[i], event_ts, texts[i], route, k, shadow)))
            ordered = [row for _, row in sorted(rows, key=lambda pair: pair[0])]
            try:
                await asyncio.to_thread(self.log.append, ordered)
            except Exception:  # after the response: the client cannot be told; logged, counted
                log.exception("prediction log refused %d row(s) (event ids %s)", len(ordered), event_ids[:5])
                self.metrics.log_rows.labels(outcome="refused").inc(len(ordered))
                return
            self.metrics.log_rows.labels(outcome="appended").inc(len(ordered))
        finally:
            self.pending.done(event_ids, logged)

    async def feedback(self, event_id: str, label: str, label_ts: dt.datetime) -> None:
        """Hand the label to the prediction log (UnknownEventError if it never logged the id)."""
        await self.pending.wait(event_id, PENDING_ROW_WAIT_S)
        await asyncio.to_thread(self.log.record_feedback, event_id, label, label_ts)

    async def drain(self) -> None:
        """Wait for every row still waiting on its off-path result to reach the log."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _row(event_id: str, event_ts: dt.datetime, text: str, route: _Route, k: int, shadow: Scored | None) -> dict:
    result = route.result
    return {
        "event_id": event_id, "event_ts": event_ts, "text": text,
        "served_version": route.model.version, "arm": route.arm,
        "prediction": result.labels[k], "confidence": result.confidence[k], "latency_ms": result.latency_ms[k],
        "shadow_version": route.shadow.version if shadow is not None else None,
        "shadow_prediction": shadow.labels[k] if shadow is not None else None,
        "shadow_confidence": shadow.confidence[k] if shadow is not None else None,
    }

