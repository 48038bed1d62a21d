"""Micro-batching merges concurrent requests, never exceeds max_batch, and gives every
request exactly its own results back, in order; a failed batch fails only its requests.

The predictor is a plain recording object: the batcher is what is under test, and its
contract with a predictor is one method, ``predict(texts) -> .labels, .confidence``.
Batch boundaries are forced by holding the worker inside a batch (an Event), never by
sleeping, so no test depends on the machine's speed.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pytest

from ct_assets.serving.batching import BatcherClosedError, MicroBatcher

WAIT = 60  # seconds: only a hung batcher ever waits this long


class RecordingPredictor:
    """Labels each text by itself, so a result that went to the wrong request shows."""

    def __init__(self, hold_first: bool = False, fail_on: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.entered, self.release = threading.Event(), threading.Event()
        self.hold_first, self.fail_on = hold_first, fail_on
        if not hold_first:
            self.release.set()

    def predict(self, texts):
        self.batches.append(list(texts))
        self.entered.set()
        assert self.release.wait(WAIT), "the test never released the batch"
        if self.fail_on is not None and self.fail_on in texts:
            raise RuntimeError(f"cannot score {self.fail_on!r}")
        return SimpleNamespace(labels=[f"label:{t}" for t in texts],
                               confidence=np.array([len(t) / 100 for t in texts], dtype=np.float32))


@pytest.fixture
def batchers():
    made = []

    def make(predictor, **kw) -> MicroBatcher:
        made.append(MicroBatcher(predictor, name="test", **kw))
        return made[-1]

    yield make
    for b in made:
        b.close()
        assert b.join(WAIT)


def _check(result, texts):
    assert result.labels == [f"label:{t}" for t in texts]
    assert result.confidence == pytest.approx([len(t) / 100 for t in texts])
    assert len(result.latency_ms) == len(texts) and all(ms >= 0 for ms in result.latency_ms)


def test_concurrent_submits_from_threads_are_merged_into_one_batch(batchers):
    # A long max_wait: the worker waits for max_batch texts, which the 4 threads bring.
    predictor = RecordingPredictor()
    batcher = batchers(predictor, max_batch=4, max_wait_ms=10_000)
    texts = [f"t{i}" for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        futures = list(pool.map(lambda t: batcher.submit([t]), texts))
    for text, future in zip(texts, futures):
        _check(future.result(WAIT), [text])
    assert len(predictor.batches) == 1 and sorted(predictor.batches[0]) == texts


def test_requests_queued_behind_a_batch_are_merged_and_no_batch_exceeds_max_batch(batchers):
    predictor = RecordingPredictor(hold_first=True)
    batcher = batchers(predictor, max_batch=8, max_wait_ms=0)
    first = batcher.submit(["first"])
    assert predictor.entered.wait(WAIT)  # the worker is inside batch 1; the rest queue up
    requests = [[f"r{r}-{k}" for k in range(3)] for r in range(10)]  # 30 texts
    futures = [batcher.submit(texts) for texts in requests]
    predictor.release.set()
    _check(first.result(WAIT), ["first"])
    for texts, future in zip(requests, futures):
        _check(future.result(WAIT), texts)
    sizes = [len(b) for b in predictor.batches]
    assert sizes == [1, 8, 8, 8, 6], sizes  # 30 queued texts, cut at max_batch, across requests
    assert len({t.split("-")[0] for t in predictor.batches[1]}) == 3  # one batch, three requests


def test_a_request_larger_than_a_batch_is_split_and_reassembled_in_order(batchers):
    predictor = RecordingPredictor()
    batcher = batchers(predictor, max_batch=4, max_wait_ms=0)
    texts = [f"text number {i}" for i in range(10)]
    _check(batcher.submit(texts).result(WAIT), texts)
    assert [len(b) for b in predictor.batches] == [4, 4, 2]
    assert batcher.submit([]).result(WAIT).labels == []  # nothing to score: no batch at all
    assert len(predictor.batches) == 3


def test_a_failed_batch_fails_its_requests_only_and_skips_their_remaining_texts(batchers):
    predictor = RecordingPredictor(hold_first=True, fail_on="boom")
    batcher = batchers(predictor, max_batch=1, max_wait_ms=0)
    ok_before = batcher.submit(["fine"])
    assert predictor.entered.wait(WAIT)
    doomed = batcher.submit(["boom", "never scored"])
    ok_after = batcher.submit(["also fine"])
    predictor.release.set()
    _check(ok_before.result(WAIT), ["fine"])
    with pytest.raises(RuntimeError, match="cannot score 'boom'"):
        doomed.result(WAIT)
    _check(ok_after.result(WAIT), ["also fine"])
    assert ["never scored"] not in predictor.batches


def test_close_drains_what_is_queued_and_refuses_new_texts(batchers):
    predictor = RecordingPredictor(hold_first=True)
    batcher = batchers(predictor, max_batch=2, max_wait_ms=0)
    first = batcher.submit(["a"])
    assert predictor.entered.wait(WAIT)
    queued = batcher.submit(["b", "c", "d"])
    batcher.close()
    with pytest.raises(BatcherClosedError, match="batcher test is closed"):
        batcher.submit(["late"])
    predictor.release.set()
    _check(first.result(WAIT), ["a"])
    _check(queued.result(WAIT), ["b", "c", "d"])  # in-flight work finishes on the old model
    assert batcher.join(WAIT)


def test_each_batch_is_reported_with_its_size(batchers):
    seen = []
    batcher = batchers(RecordingPredictor(), max_batch=3, max_wait_ms=0,
                       on_batch=lambda n, seconds: seen.append((n, seconds >= 0)))
    batcher.submit(list("abcde")).result(WAIT)
    assert seen == [(3, True), (2, True)]


@pytest.mark.parametrize("kw, message", [
    ({"max_batch": 0, "max_wait_ms": 1}, "max_batch must be >= 1, got 0"),
    ({"max_batch": 1, "max_wait_ms": -1}, "max_wait_ms must be >= 0, got -1"),
])
def test_bad_limits_are_refused_naming_them(kw, message):
    with pytest.raises(ValueError, match=message):
        MicroBatcher(RecordingPredictor(), name="bad", **kw)
