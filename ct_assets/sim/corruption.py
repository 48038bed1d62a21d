"""quality_incident: how the simulator breaks rows, one kind of bad input after another."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

BAD_KINDS = ("null_text", "empty_text", "huge_text", "unknown_label", "bad_event_ts",
             "null_event_ts", "duplicate_event_id", "mojibake", "wrong_type")
UNKNOWN_LABELS = ("billling", "other")
BAD_TIMESTAMPS = ("not-a-date", "2026-13-45T99:00:00Z")
HUGE_TEXT_CHARS = 100_000


def _mojibake(text: str) -> str:
    """UTF-8 bytes read as cp1252 (latin-1 for bytes cp1252 lacks): ’ -> â€™, é -> Ã©."""
    # Make sure there is an ’ or é to garble (what detectors look for: â€™, Ã©), the
    # way a phone keyboard or a customer's name would bring one in.
    if "\u2019" not in text and "é" not in text:
        text = text.replace("'", "\u2019") if "'" in text else "Renée here \u2014 " + text
    return "".join(bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in text.encode("utf-8"))


def corrupt(rows: list, rng: np.random.Generator, share: float) -> list:
    """quality_incident: replace ``share`` of rows with bad ones, cycling through BAD_KINDS
    so every kind appears. Row count and positions stay the same."""
    n = len(rows)
    positions = rng.permutation(n)[: int(round(share * n))].tolist()
    good = sorted(set(range(n)) - set(positions)) or list(range(n))
    out = list(rows)
    for k, pos in enumerate(positions):
        kind = BAD_KINDS[k % len(BAD_KINDS)]
        row, info = dict(rows[pos][0]), replace(rows[pos][1], bad_kind=kind)
        if kind == "null_text":
            row["text"] = None
        elif kind == "empty_text":
            row["text"] = ""
        elif kind == "huge_text":  # a pasted log file
            row["text"] = (row["text"] + " | log: " + "x" * 64 + "\n") * (HUGE_TEXT_CHARS // 80 + 1)
            row["text"] = row["text"][:HUGE_TEXT_CHARS]
        elif kind == "unknown_label":
            row["label"] = UNKNOWN_LABELS[k % len(UNKNOWN_LABELS)]
            row["label_ts"] = row["label_ts"] or row["event_ts"][:11] + "23:59:59Z"
        elif kind == "bad_event_ts":
            row["event_ts"] = BAD_TIMESTAMPS[(k // len(BAD_KINDS)) % len(BAD_TIMESTAMPS)]
        elif kind == "null_event_ts":
            row["event_ts"] = None
        elif kind == "duplicate_event_id":  # an exact copy of another (good) row
            src = good[int(rng.integers(len(good)))]
            row, info = dict(rows[src][0]), replace(rows[src][1], bad_kind=kind)
        elif kind == "mojibake":
            row["text"] = _mojibake(row["text"])
        elif kind == "wrong_type":  # a number where text belongs
            row["text"] = int(rng.integers(10_000, 100_000))
        out[pos] = (row, info)
    return out
