"""The prediction log: every served prediction as a landing-zone contract row (pure, no Dagster).

``ct serve`` appends a row per prediction; a flush writes, per UTC day of ``event_ts``, one
JSONL file ``<landing>/dt=YYYY-MM-DD/served/part-<utc stamp>-<pid>-<seq>.jsonl`` that the
production reader (``ct_assets.ingest.contract``) reads like any other drop. Columns: the
five contract columns (``label`` and ``label_ts`` null until feedback) plus ``SERVED_COLUMNS``
(docs/CONTRACTS.md, "Served rows").

Feedback is a late label of the event's own day: it is written into the event's row, never
as a second row (a second row with the same event_id would be quarantined as
``duplicate_event_id``). A row still buffered gets it in memory; a flushed row gets it by a
rewrite of its file at the next flush, one rewrite per file per flush. The point-in-time cut
(``labels_as_of``) then hides the label from every partition before its ``label_ts``.

Durability: each file is written to a hidden temp file in the same folder (the reader skips
hidden names, with a reason), fsynced, then ``os.replace``d, so a reader sees the old file or
the new one, never half of one. A failed write leaves its rows (or its feedback) pending and
logs the path; nothing is dropped. Rewrites hold an ``fcntl`` lock so two server processes
cannot interleave read-modify-write of one file.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import math
import os
import threading
import uuid
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

SERVED_FOLDER = "served"
# Feedback can reach rows written by an earlier process (a restart) for this many days back:
# the index is rebuilt at start from the served files of the last INDEX_DAYS UTC days (up to
# today, or the newest served day if later). Older feedback raises UnknownEventError; 30 days
# covers the label delays we see (days, not months) and keeps the start-up scan to a month.
INDEX_DAYS = 30
# One lock for all rewrites, at the landing root: the reader only walks dt=*/ folders, so it
# never sees it (a lock beside each file would be listed in every day's skipped_files).
LOCK_NAME = ".prediction_log.lock"
ARMS = ("champion", "canary")
# Served columns, in file order after the contract columns: name -> (types accepted, nullable).
SERVED_COLUMNS: dict[str, tuple[tuple[type, ...], bool]] = {
    "served_version": ((int,), False),
    "arm": ((str,), False),
    "prediction": ((str,), False),
    "confidence": ((float, int), False),
    "latency_ms": ((float, int), False),
    "shadow_version": ((int,), True),
    "shadow_prediction": ((str,), True),
    "shadow_confidence": ((float, int), True),
}
FLOAT_COLUMNS = ("confidence", "latency_ms", "shadow_confidence")


class UnknownEventError(KeyError):
    """Feedback names an event_id this log never wrote (nor found in its recent files)."""

    def __init__(self, event_id: str, landing: Path):
        super().__init__(event_id)
        self.event_id = event_id
        self.message = (f"unknown event_id {event_id!r}: no served row with it in {landing} "
                        f"(this process's rows, or served files of the last {INDEX_DAYS} days)")

    def __str__(self) -> str:
        return self.message


class ServedRowError(ValueError):
    """A row the server passed cannot be written as a contract row; names event_id and key."""


def _iso(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).isoformat()


def _aware(value: object, what: str) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise ServedRowError(f"{what}: expected an aware datetime, got {value!r}")
    return value


def _utf8(value: str, what: str) -> None:
    # A lone surrogate cannot be written as UTF-8; escaped, the reader would reject the whole file.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ServedRowError(f"{what}: not encodable as UTF-8 (an unpaired surrogate)") from None


def contract_row(row: dict) -> dict:
    """The server's row as the JSON record written to the landing zone; ServedRowError if bad."""
    event_id = row.get("event_id")
    if not isinstance(event_id, str) or not event_id:
        raise ServedRowError(f"event_id: expected a non-empty string, got {event_id!r}")
    where = f"served row {event_id!r}"
    _utf8(event_id, f"{where} event_id")
    text = row.get("text")
    if not isinstance(text, str):
        raise ServedRowError(f"{where} text: expected a string, got {type(text).__name__}")
    _utf8(text, f"{where} text")
    out = {"event_id": event_id, "event_ts": _iso(_aware(row.get("event_ts"), f"{where} event_ts")),
           "text": text, "label": None, "label_ts": None}
    for name, (types, nullable) in SERVED_COLUMNS.items():
        value = row.get(name)
        if value is None and nullable:
            out[name] = None
            continue
        # bool is an int to Python but not a version or a score.
        if isinstance(value, bool) or not isinstance(value, types):
            raise ServedRowError(f"{where} {name}: expected {'/'.join(t.__name__ for t in types)}, got {value!r}")
        if name in FLOAT_COLUMNS:
            value = float(value)  # one type per column per day, so the reader keeps it exact
            if not math.isfinite(value):
                raise ServedRowError(f"{where} {name}: {value} is not finite (JSON has no NaN)")
        elif isinstance(value, str):
            _utf8(value, f"{where} {name}")
        out[name] = value
    if out["arm"] not in ARMS:
        raise ServedRowError(f"{where} arm: {out['arm']!r} is not one of {list(ARMS)}")
    return out


def _is_date(text: str) -> bool:
    try:
        return dt.date.fromisoformat(text).isoformat() == text
    except ValueError:
        return False


def _dumps(records: Sequence[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in records).encode("utf-8")


def write_atomically(path: Path, data: bytes) -> None:
    """Hidden temp file in the same folder, fsync, os.replace, fsync the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself survives a power cut
    finally:
        os.close(folder)


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


class PredictionLog:
    """Buffered, thread-safe writer of served rows and their feedback into the landing zone."""

    def __init__(self, landing: Path, *, flush_rows: int, flush_seconds: float):
        if flush_rows < 1:
            raise ValueError(f"flush_rows: expected >= 1, got {flush_rows}")
        if not flush_seconds > 0:
            raise ValueError(f"flush_seconds: expected > 0, got {flush_seconds}")
        self.landing = Path(landing)
        self.flush_rows, self.flush_seconds = flush_rows, flush_seconds
        self._lock = threading.Lock()  # buffer, index, pending feedback
        self._flush_lock = threading.Lock()  # one flush at a time
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None
        self._buffer: dict[str, dict] = {}  # event_id -> record, in arrival order
        self._in_flight: dict[str, dict] = {}  # being written by a flush right now
        self._in_flight_feedback: dict[str, tuple[str, str]] = {}
        self._index: dict[str, Path] = {}  # event_id -> its served file
        self._pending: dict[Path, dict[str, tuple[str, str]]] = {}  # file -> event_id -> (label, label_ts)
        self._scanned: set[Path] = set()
        self._seq = 0
        self._scan()

    # -- index -----------------------------------------------------------------------
    def _served_files(self) -> list[Path]:
        days = sorted(p.parent.name[3:] for p in self.landing.glob(f"dt=*/{SERVED_FOLDER}")
                      if p.is_dir() and _is_date(p.parent.name[3:]))
        # Anchored on the newest served day when that is after today (a replay serves simulated
        # days), else today; days before the window are not indexed.
        newest = max([dt.datetime.now(dt.UTC).date().isoformat(), *days[-1:]])
        first = (dt.date.fromisoformat(newest) - dt.timedelta(days=INDEX_DAYS)).isoformat()
        return [p for d in days if first <= d for p in sorted((self.landing / f"dt={d}" / SERVED_FOLDER).glob("*.jsonl"))
                if not p.name.startswith(".")]

    def _scan(self) -> None:
        """Index the served files not scanned yet (another process's, or an earlier run's)."""
        for path in self._served_files():
            if path in self._scanned:
                continue
            try:
                ids = [r.get("event_id") for r in read_records(path)]
            except (OSError, ValueError) as err:
                log.warning("prediction log: cannot index %s (feedback for its rows will be refused): %s", path, err)
                continue
            with self._lock:
                self._scanned.add(path)
                for event_id in ids:
                    if isinstance(event_id, str):
                        self._index.setdefault(event_id, path)

    # -- the interface ---------------------------------------------------------------
    def start(self) -> None:
        """The background flusher: every flush_seconds, or sooner when flush_rows are buffered."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="prediction-log-flusher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the thread must outlive one bad flush; flush logs what failed
                log.exception("prediction log: flush failed under %s; rows stay buffered", self.landing)

    def append(self, rows: Sequence[dict]) -> None:
        """Buffer rows (all or none: one bad row refuses the batch with a ServedRowError)."""
        records = [contract_row(r) for r in rows]
        with self._lock:
            seen: set[str] = set()
            for rec in records:
                event_id = rec["event_id"]
                # A second row would be quarantined as duplicate_event_id, and feedback ambiguous.
                if event_id in seen or event_id in self._index or event_id in self._in_flight or event_id in self._buffer:
                    raise ServedRowError(f"served row {event_id!r}: event_id already logged (it must be unique)")
                seen.add(event_id)
            self._buffer.update((r["event_id"], r) for r in records)
            full = len(self._buffer) >= self.flush_rows
        if full:
            if self._thread is not None:
                self._wake.set()  # the flusher writes; the request thread does not wait on disk
            else:
                self.flush()

    def already_logged(self, event_ids: Sequence[str]) -> list[str]:
        """The ids among ``event_ids`` that already have a row (written, being written or
        buffered): a second one would be quarantined as duplicate_event_id downstream."""
        with self._lock:
            return [e for e in event_ids if e in self._index or e in self._in_flight or e in self._buffer]

    def record_feedback(self, event_id: str, label: str, label_ts: dt.datetime) -> None:
        """Set the label of a logged event (the later feedback wins); UnknownEventError if unknown."""
        if not isinstance(label, str) or not label:
            raise ServedRowError(f"feedback for {event_id!r}: label must be a non-empty string, got {label!r}")
        _utf8(label, f"feedback for {event_id!r} label")
        value = (label, _iso(_aware(label_ts, f"feedback for {event_id!r} label_ts")))
        if self._apply_feedback(event_id, value):
            return
        self._scan()  # a row another process (or an earlier run) flushed since the last scan
        if not self._apply_feedback(event_id, value):
            raise UnknownEventError(event_id, self.landing)

    def _apply_feedback(self, event_id: str, value: tuple[str, str]) -> bool:
        with self._lock:
            if event_id in self._buffer:
                rec = self._buffer[event_id]
                rec["label"], rec["label_ts"] = value
                return True
            if event_id in self._in_flight:
                self._in_flight_feedback[event_id] = value
                return True
            path = self._index.get(event_id)
            if path is None:
                return False
            self._pending.setdefault(path, {})[event_id] = value
            return True

    def flush(self) -> list[Path]:
        """Write buffered rows and pending feedback; the paths written. Failures stay pending."""
        with self._flush_lock:
            return self._write_rows() + self._write_feedback()

    def close(self) -> None:
        """Stop the flusher and flush; raises if rows could not be written (they would be lost)."""
        if self._thread is not None:
            self._stop.set()
            self._wake.set()
            self._thread.join()
            self._thread = None
        self.flush()
        with self._lock:
            rows, feedback = len(self._buffer), sum(len(v) for v in self._pending.values())
        if rows or feedback:
            raise OSError(f"prediction log {self.landing}: {rows} row(s) and {feedback} feedback(s) "
                          "could not be written at close (see the logged errors for the paths)")

    @property
    def pending_rows(self) -> int:
        with self._lock:
            return len(self._buffer)

    # -- writing -----------------------------------------------------------------------
    def _file_name(self) -> str:
        self._seq += 1
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        return f"part-{stamp}-{os.getpid()}-{self._seq:06d}.jsonl"

    def _write_rows(self) -> list[Path]:
        with self._lock:
            self._in_flight, self._buffer = self._buffer, {}
            batch = list(self._in_flight.values())
        by_day: dict[str, list[dict]] = {}
        for rec in batch:
            by_day.setdefault(dt.datetime.fromisoformat(rec["event_ts"]).date().isoformat(), []).append(rec)
        written: list[Path] = []
        done: set[str] = set()
        try:
            for day, records in sorted(by_day.items()):
                path = self.landing / f"dt={day}" / SERVED_FOLDER / self._file_name()
                try:
                    write_atomically(path, _dumps(records))
                except OSError as err:
                    log.error("prediction log: cannot write %d row(s) to %s (kept buffered): %s",
                              len(records), path, err)
                    continue
                written.append(path)
                with self._lock:
                    self._scanned.add(path)
                    for rec in records:
                        self._index[rec["event_id"]] = path
                        done.add(rec["event_id"])
        finally:
            # Even on an unexpected error: rows not written go back to the front of the buffer.
            self._settle(done)
        return written

    def _settle(self, done: set[str]) -> None:
        """After a write: unwritten rows back into the buffer, feedback that came meanwhile placed."""
        with self._lock:
            back = {k: r for k, r in self._in_flight.items() if k not in done}
            for event_id, value in self._in_flight_feedback.items():
                if event_id in back:
                    back[event_id]["label"], back[event_id]["label_ts"] = value
                else:
                    self._pending.setdefault(self._index[event_id], {})[event_id] = value
            self._buffer = {**back, **self._buffer}  # first in, first out again
            self._in_flight, self._in_flight_feedback = {}, {}

    def _write_feedback(self) -> list[Path]:
        with self._lock:
            pending, self._pending = self._pending, {}
        written: list[Path] = []
        for path, labels in pending.items():
            try:
                self._rewrite(path, labels)
            except (OSError, ValueError) as err:
                log.error("prediction log: cannot write feedback for %d event(s) into %s (kept pending): %s",
                          len(labels), path, err)
                with self._lock:
                    # Feedback recorded meanwhile is newer: it wins over the retried one.
                    self._pending[path] = {**labels, **self._pending.get(path, {})}
                continue
            written.append(path)
        return written

    @contextmanager
    def _file_lock(self):
        self.landing.mkdir(parents=True, exist_ok=True)
        with open(self.landing / LOCK_NAME, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _rewrite(self, path: Path, labels: dict[str, tuple[str, str]]) -> None:
        # Read under the lock: another process may have rewritten the file since we indexed it.
        with self._file_lock():
            records = read_records(path)
            found = set()
            for rec in records:
                value = labels.get(rec.get("event_id"))
                if value is not None:
                    rec["label"], rec["label_ts"] = value
                    found.add(rec["event_id"])
            write_atomically(path, _dumps(records))
        for event_id in sorted(set(labels) - found):
            log.error("prediction log: feedback for %r not written: %s no longer holds that event", event_id, path)

