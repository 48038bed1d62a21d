"""Which arm answers a request id, and which challenger may answer at all (pure).

The arm is a function of the event id alone: sha256 of the id into ``BUCKETS`` buckets,
and the first ``canary_percent`` of them go to the canary. So a client that retries with
the same id meets the same model, and two server processes route identically without
sharing state. 10,000 buckets give a resolution of 0.01 %, finer than anyone sets
``serving.canary_percent``.
"""

from __future__ import annotations

import hashlib

from ct_assets.registry.records import ModelVersionInfo
from ct_assets.serving.prediction_log import ARMS

CHAMPION_ARM, CANARY_ARM = ARMS
BUCKETS = 10_000


def bucket(event_id: str) -> int:
    """The event id's bucket in [0, BUCKETS): the first 8 bytes of its sha256, modulo BUCKETS."""
    digest = hashlib.sha256(event_id.encode("utf-8", "surrogatepass")).digest()
    # 2**64 is not a multiple of 10,000; the bias that leaves is 10,000 / 2**64, ~5e-16.
    return int.from_bytes(digest[:8], "big") % BUCKETS


def arm_for(event_id: str, canary_percent: float) -> str:
    """CANARY_ARM for the first ``canary_percent`` % of buckets, else CHAMPION_ARM."""
    if not 0.0 <= canary_percent <= 100.0:
        raise ValueError(f"canary_percent must be within [0, 100], got {canary_percent}")
    # 12.5 % -> the first 1,250 of 10,000 buckets; round() so 0.07 * 100 == 7.000000000000001 is 7.
    return CANARY_ARM if bucket(event_id) < round(canary_percent * BUCKETS / 100) else CHAMPION_ARM


def challenger_problem(challenger: ModelVersionInfo | None, champion: int | None) -> str | None:
    """Why ``challenger`` may not serve (canary) or be scored (shadow); None when it may.

    Only a challenger that passed the gate, was never rolled back nor withdrawn (a failed
    canary) and is not the champion itself takes traffic: a failed or unevaluated candidate
    never answers a user."""
    if challenger is None:
        return "no version has alias 'challenger'"
    v = challenger.version
    if v == champion:
        return f"challenger v{v} is the champion"
    for event, what in ((challenger.rollback, "rolled back"), (challenger.withdrawal, "withdrawn")):
        if event is not None:
            return f"challenger v{v} was {what} at {event['ts']} by {event['by']!r}: {event['reason']}"
    record = challenger.evaluation
    if record is None:
        return f"challenger v{v} has no gate verdict yet (eval_report has not judged it)"
    if not record.passed:
        return f"challenger v{v} failed the gate: {'; '.join(record.reasons) or 'no reason recorded'}"
    return None
