"""Micro-batching across concurrent requests, one worker thread per loaded model (pure).

A request's texts join the model's queue; the worker takes up to ``max_batch`` queued
texts (from as many requests as it takes, splitting a request larger than a batch) once
``max_batch`` are waiting or the oldest has waited ``max_wait_ms``, runs them as one
``predict`` call and hands every request its own slice. A thread, not the event loop:
torch releases the GIL inside the forward pass, so the loop keeps accepting requests
while a batch runs, and the requests that arrive meanwhile form the next batch.

Why batch at all: a forward pass over 32 short texts costs about as much as over one on
a GPU (and a few times one on a CPU), so under load batching is most of the throughput.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scored:
    """One request's results, in the order of its texts."""

    labels: list[str]
    confidence: list[float]
    latency_ms: list[float]  # per text: the model time of the batch the text ran in


class BatcherClosedError(RuntimeError):
    """A text was submitted to a batcher whose model has been swapped out and closed."""


class _Job:
    """One request's texts; filled slice by slice as batches finish."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = list(texts)
        n = len(self.texts)
        self.labels: list[str | None] = [None] * n
        self.confidence: list[float] = [0.0] * n
        self.latency_ms: list[float] = [0.0] * n
        self.taken = 0  # texts handed to a batch so far
        self.scored = 0  # texts whose batch finished
        self.started = False  # the future was moved to RUNNING (it can no longer be cancelled)
        self.future: Future[Scored] = Future()
        self.enqueued = time.monotonic()


BatchObserver = Callable[[int, float], None]  # (texts in the batch, model seconds)


class MicroBatcher:
    """``submit(texts)`` from any thread; a Future of ``Scored`` comes back."""

    def __init__(self, predictor, *, max_batch: int, max_wait_ms: float, name: str,
                 on_batch: BatchObserver | None = None) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.predictor, self.name = predictor, name
        self.max_batch, self.max_wait_s = max_batch, max_wait_ms / 1000.0
        self._on_batch = on_batch
        self._queue: deque[_Job] = deque()
        self._queued_texts = 0  # queued and not yet taken into a batch
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    def submit(self, texts: Sequence[str]) -> Future[Scored]:
        job = _Job(texts)
        if not job.texts:
            job.future.set_result(Scored([], [], []))
            return job.future
        with self._cond:
            if self._closed:
                raise BatcherClosedError(f"batcher {self.name} is closed (its model was swapped out)")
            self._queue.append(job)
            self._queued_texts += len(job.texts)
            self._cond.notify()
        return job.future

    def close(self) -> None:
        """Refuse new texts; the worker finishes what is queued, then exits. Does not block."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker to drain and exit (after ``close``); True if it did."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- the worker ---------------------------------------------------------------------
    def _take(self) -> list[tuple[_Job, int, int]] | None:
        """The next batch as (job, start, end) slices; None once closed and drained."""
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            deadline = self._queue[0].enqueued + self.max_wait_s if self._queue else 0.0
            while self._queue and self._queued_texts < self.max_batch and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            parts: list[tuple[_Job, int, int]] = []
            room = self.max_batch
            while self._queue and room:
                job = self._queue[0]
                if not job.started:
                    job.started = True
                    if not job.future.set_running_or_notify_cancel():  # the caller gave up on it
                        self._drop_head(job)
                        continue
                if job.future.done():  # an earlier slice of it failed: skip the rest
                    self._drop_head(job)
                    continue
                n = min(room, len(job.texts) - job.taken)
                parts.append((job, job.taken, job.taken + n))
                job.taken += n
                self._queued_texts -= n
                room -= n
                if job.taken == len(job.texts):
                    self._queue.popleft()
            if not parts and self._closed and not self._queue:
                return None
            return parts

    def _drop_head(self, job: _Job) -> None:
        self._queue.popleft()
        self._queued_texts -= len(job.texts) - job.taken

    def _run(self) -> None:
        try:
            while (parts := self._take()) is not None:
                if parts:
                    self._score(parts)
        finally:
            # Only reached early by a bug in this class: no request may wait forever on it.
            with self._cond:
                self._closed = True
                stranded, self._queue = list(self._queue), deque()
            for job in stranded:
                if not job.future.done() and (job.started or job.future.set_running_or_notify_cancel()):
                    job.future.set_exception(BatcherClosedError(f"batcher {self.name} stopped"))

    def _score(self, parts: list[tuple[_Job, int, int]]) -> None:
        texts = [t for job, start, end in parts for t in job.texts[start:end]]
        started = time.perf_counter()
        try:
            pred = self.predictor.predict(texts)
        except Exception as err:  # handed to every request of this batch, not swallowed
            log.exception("batcher %s: predict failed on a batch of %d texts", self.name, len(texts))
            for job, _, _ in parts:
                if not job.future.done():
                    job.future.set_exception(err)
            return
        seconds = time.perf_counter() - started
        offset = 0
        for job, start, end in parts:
            n = end - start
            job.labels[start:end] = pred.labels[offset:offset + n]
            job.confidence[start:end] = [float(c) for c in pred.confidence[offset:offset + n]]
            job.latency_ms[start:end] = [seconds * 1000.0] * n
            job.scored += n
            offset += n
            if job.scored == len(job.texts) and not job.future.done():
                job.future.set_result(Scored(list(job.labels), job.confidence, job.latency_ms))
        if self._on_batch is not None:
            self._on_batch(len(texts), seconds)
