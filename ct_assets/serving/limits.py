"""What a request may carry, and the refusal that names the limit it broke (pure).

Bodies are read here, not by FastAPI, so the size limit holds on the bytes actually
received: a client may declare a small Content-Length and stream more, or send chunked
with no length at all. Each refusal is a ``Refused(status, message)`` whose message
names the key, the value and the limit (``serving.*`` in ct.yaml) so the client can fix
its request without reading the server's code. Text numbers are 0-based positions in
``texts``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictStr, ValidationError

from ct_assets.core.model_settings import ServingSettings

TIMESTAMPS_FLAG = "--accept-client-timestamps"
_SHOWN_CHARS = 80  # of a bad value echoed back in a 422


class Refused(Exception):
    """A request the server will not run; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class PredictRequest(BaseModel):
    # extra="forbid": a misspelt key ("id" for "ids") is refused instead of silently ignored.
    model_config = ConfigDict(extra="forbid")
    texts: list[StrictStr]
    ids: list[StrictStr] | None = None
    event_ts: AwareDatetime | None = None


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_id: StrictStr = Field(min_length=1)
    label: StrictStr = Field(min_length=1)
    label_ts: AwareDatetime | None = None


async def read_body(chunks: AsyncIterator[bytes], content_length: str | None, max_bytes: int) -> bytes:
    """The whole body, refused with 413 as soon as it is known to exceed ``max_bytes``:
    from the declared Content-Length before reading, or from the bytes read so far."""
    limit = f"serving.max_body_bytes is {max_bytes}"
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise Refused(400, f"Content-Length {content_length!r} is not a number of bytes") from None
        if declared > max_bytes:
            raise Refused(413, f"request body has {declared} bytes (Content-Length); {limit}")
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > max_bytes:
            raise Refused(413, f"request body exceeds {max_bytes} bytes ({len(body)} read so far); {limit}")
    return bytes(body)


def parse(model: type[BaseModel], body: bytes) -> BaseModel:
    """The body as ``model``; a 422 naming each bad key otherwise."""
    try:
        return model.model_validate_json(body)
    except ValidationError as err:
        raise Refused(422, "; ".join(_describe(e) for e in err.errors())) from None


def _describe(error: dict) -> str:
    key = ".".join(str(p) for p in error["loc"]) or "body"
    if error["type"] == "json_invalid":  # the input is the whole body: not worth echoing
        return f"{key}: {error['msg']}"
    shown = repr(error.get("input"))
    if len(shown) > _SHOWN_CHARS:
        shown = shown[:_SHOWN_CHARS] + "..."
    return f"{key}: {error['msg']} (got {shown})"


def _client_timestamp(key: str, value: dt.datetime | None, accepted: bool) -> dt.datetime:
    if value is None:
        return dt.datetime.now(dt.UTC)
    if not accepted:
        raise Refused(422, f"{key} is accepted only when ct serve runs with {TIMESTAMPS_FLAG} (replay and demo "
                           "mode); without it the server stamps the time itself")
    return value.astimezone(dt.UTC)


def check_predict(req: PredictRequest, limits: ServingSettings, accept_client_timestamps: bool) -> dt.datetime:
    """Refuse a /predict body over the limits; its event_ts (the client's, or now) otherwise."""
    texts = req.texts
    if not texts:
        raise Refused(422, "texts is empty; send at least one text")
    if len(texts) > limits.max_texts:
        raise Refused(422, f"request has {len(texts)} texts; serving.max_texts is {limits.max_texts}")
    for i, text in enumerate(texts):
        if len(text) > limits.max_text_chars:
            raise Refused(422, f"text {i} has {len(text)} characters; serving.max_text_chars is "
                               f"{limits.max_text_chars}")
    if req.ids is not None:
        _check_ids(req.ids, len(texts))
    return _client_timestamp("event_ts", req.event_ts, accept_client_timestamps)


def _check_ids(ids: Sequence[str], n_texts: int) -> None:
    if len(ids) != n_texts:
        raise Refused(422, f"ids has {len(ids)} entries for {n_texts} texts; give one id per text, or none")
    first: dict[str, int] = {}
    for i, event_id in enumerate(ids):
        if not event_id:
            raise Refused(422, f"ids.{i} is empty; an event id is a non-empty string")
        j = first.setdefault(event_id, i)
        if j != i:
            raise Refused(422, f"ids.{i} {event_id!r} repeats ids.{j}; event ids must be unique")


def check_feedback(req: FeedbackRequest, labels: Sequence[str], accept_client_timestamps: bool) -> dt.datetime:
    """Refuse a label that is a known one mistyped; the label_ts (the client's, or now) otherwise.

    A label outside the label set is kept: it may be a class that is emerging, which
    drift_report reports as "new class emerging" (validation quarantines the row as
    unknown_label, with its label kept). One that differs from a known label only in case
    or surrounding spaces is a client bug, refused now rather than read as a new class."""
    if req.label not in labels:
        near = [known for known in labels if known.casefold() == req.label.strip().casefold()]
        if near:
            raise Refused(422, f"label {req.label!r} differs from the label {near[0]!r} only in case or spaces "
                               f"(ct.yaml `labels`: {list(labels)})")
    return _client_timestamp("label_ts", req.label_ts, accept_client_timestamps)


def feedback_note(label: str, labels: Sequence[str]) -> str | None:
    """What the client should know about an accepted label outside the label set."""
    if label in labels:
        return None
    return (f"label {label!r} is not in labels {list(labels)}: kept, quarantined as unknown_label, and counted "
            "by drift_report as a new class emerging; add it to `labels` to train it")
