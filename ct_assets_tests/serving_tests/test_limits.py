"""Each request limit refuses with the status the issue asks for and a message naming the
limit and the value; a body is measured by the bytes that arrive, not only by the header
the client chose to send. (The server tests check the same refusals over HTTP.)"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from ct_assets.core.model_settings import ServingSettings
from ct_assets.serving.limits import (
    FeedbackRequest,
    PredictRequest,
    Refused,
    check_feedback,
    feedback_note,
    check_predict,
    parse,
    read_body,
)

LIMITS = ServingSettings(max_body_bytes=1_000, max_texts=3, max_text_chars=10)
LABELS = ("billing", "refund")


async def _chunks(*parts: bytes):
    for part in parts:
        yield part


def _read(content_length: str | None, *parts: bytes) -> bytes:
    return asyncio.run(read_body(_chunks(*parts), content_length, LIMITS.max_body_bytes))


@pytest.mark.parametrize("content_length, parts, message", [
    # the header alone is enough to refuse: nothing is read
    ("5000", [b"x" * 10], "request body has 5000 bytes (Content-Length); serving.max_body_bytes is 1000"),
    # chunked, no header: refused once the bytes read pass the limit
    (None, [b"x" * 600, b"x" * 600], "request body exceeds 1000 bytes (1200 read so far); serving.max_body_bytes"),
    # a header that understates the body does not get it past the limit
    ("10", [b"x" * 1001], "request body exceeds 1000 bytes (1001 read so far)"),
])
def test_oversized_bodies_are_refused_with_413(content_length, parts, message):
    with pytest.raises(Refused) as err:
        _read(content_length, *parts)
    assert err.value.status == 413 and err.value.message.startswith(message), err.value.message


def test_a_body_within_the_limit_is_read_whole():
    assert _read("1000", b"a" * 400, b"b" * 600) == b"a" * 400 + b"b" * 600
    with pytest.raises(Refused, match="Content-Length 'lots' is not a number of bytes"):
        _read("lots", b"{}")


def _predict(body: str, accept: bool = False) -> dt.datetime:
    return check_predict(parse(PredictRequest, body.encode()), LIMITS, accept)


@pytest.mark.parametrize("body, message", [
    ('{"texts": ["a", "b", "c", "d"]}', "request has 4 texts; serving.max_texts is 3"),
    # text numbers are 0-based positions in texts
    ('{"texts": ["short", "01234567890"]}', "text 1 has 11 characters; serving.max_text_chars is 10"),
    ('{"texts": []}', "texts is empty; send at least one text"),
    ('{"texts": ["a", 5]}', "texts.1: Input should be a valid string (got 5)"),
    ('{"texts": ["a"], "ids": ["x", "y"]}', "ids has 2 entries for 1 texts; give one id per text, or none"),
    ('{"texts": ["a", "b"], "ids": ["x", "x"]}', "ids.1 'x' repeats ids.0; event ids must be unique"),
    ('{"texts": ["a"], "ids": [""]}', "ids.0 is empty"),
    ('{"text": ["a"]}', "texts: Field required"),  # a misspelt key is not silently ignored
    ('{"texts": ["a"], "event_ts": "2026-09-03T10:00:00Z"}',
     "event_ts is accepted only when ct serve runs with --accept-client-timestamps"),
    ('{"texts": [', "body: Invalid JSON"),
])
def test_bad_predict_bodies_are_refused_with_422_naming_the_limit(body, message):
    with pytest.raises(Refused) as err:
        _predict(body)
    assert err.value.status == 422 and message in err.value.message, err.value.message


def test_client_timestamps_with_the_flag_are_taken_in_utc():
    assert _predict('{"texts": ["a"], "event_ts": "2026-09-03T12:00:00+02:00"}', accept=True) == dt.datetime(
        2026, 9, 3, 10, tzinfo=dt.UTC)
    with pytest.raises(Refused, match="event_ts: Input should have timezone info"):
        _predict('{"texts": ["a"], "event_ts": "2026-09-03T12:00:00"}', accept=True)
    before = dt.datetime.now(dt.UTC)
    assert before <= _predict('{"texts": ["a"]}') <= dt.datetime.now(dt.UTC)  # no flag, no ts: the server's clock


def test_a_new_label_is_kept_with_a_note_for_the_client():
    # A class that is emerging must reach drift_report ("new class emerging"), not be refused.
    req = parse(FeedbackRequest, b'{"event_id": "e1", "label": "baggage"}')
    check_feedback(req, LABELS, False)
    assert "new class emerging" in feedback_note("baggage", LABELS)
    assert feedback_note("refund", LABELS) is None


@pytest.mark.parametrize("body, message", [
    ('{"event_id": "e1", "label": ""}', "label: String should have at least 1 character"),
    ('{"event_id": "e1", "label": 3}', "label: Input should be a valid string (got 3)"),
    ('{"event_id": "e1", "label": "Billing"}', "label 'Billing' differs from the label 'billing' only in case"),
    ('{"event_id": "e1", "label": " refund"}', "label ' refund' differs from the label 'refund' only in case"),
    ('{"event_id": "e1", "label": "refund", "label_ts": "2026-09-03T10:00:00Z"}', "label_ts is accepted only"),
])
def test_bad_feedback_is_refused_with_422(body, message):
    with pytest.raises(Refused) as err:
        check_feedback(parse(FeedbackRequest, body.encode()), LABELS, False)
    assert err.value.status == 422 and message in err.value.message, err.value.message
