"""`ct demo --serve`: each simulated day's traffic goes through a real `ct serve`.

Instead of the simulator writing the landing zone, the replay starts `ct serve` (a
subprocess on a free localhost port, ``--accept-client-timestamps`` so a replayed day
keeps its own clock) and, for each day:
  1. waits until the server has loaded the registry's current champion and challenger;
  2. posts the day's texts to ``/predict`` with their event ids and times; the server
     routes a canary share to a gated challenger and writes every prediction to the
     landing zone (serving/prediction_log.py);
  3. posts ``/feedback`` for every row the simulator labels, with the simulator's
     ``label_ts`` (often days later: a late label, hidden until then by the point-in-time
     rules);
  4. waits until the landing zone holds every row and label, then the replay reads the
     day through the production reader as usual.
Rows the server cannot take (before the first model exists, or rows the quality incident
corrupted into non-text) land as the simulator wrote them, so nothing is lost and the
validation still sees the incident.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests
import yaml

from ct_assets.core.home import CtHome
from ct_assets.core.settings import Settings
from ct_assets.ingest.contract import parse_timestamp, read_landing_day
from ct_assets.sim.simulator import dumps_rows, generate_day

READY_DEADLINE_S = 600  # a cold MiniLM load on a busy 2-core box
LANDED_DEADLINE_S = 120
CLIENTS = 8


class ServedTrafficError(RuntimeError):
    """The demo's `ct serve` did not start, answer or write what it was sent."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _id_key(row: dict) -> str:
    return json.dumps(row.get("event_id"), sort_keys=True, default=str)  # a corrupt id may be any JSON value


def _servable(row: dict, max_chars: int) -> bool:
    """A row a client could send: text, an id, and an event time (the quality incident's
    corrupt rows are not; they land as written, for validation to quarantine)."""
    text, label_ts = row.get("text"), row.get("label_ts")
    return (isinstance(text, str) and 0 < len(text) <= max_chars and isinstance(row.get("event_id"), str)
            and bool(row["event_id"]) and parse_timestamp(row.get("event_ts")) is not None
            and (label_ts is None or parse_timestamp(label_ts) is not None)
            and (row.get("label") is None or isinstance(row["label"], str) and bool(row["label"].strip())))


class ServedTraffic:
    def __init__(self, settings: Settings, home: CtHome) -> None:
        self.settings, self.home = settings, home
        self.landing = home.resolve(settings.source.path, "source.path")
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The server reads the replay's own settings (the demo may have changed them: --fast).
        raw = settings.model_dump(mode="json")
        raw["source"]["kind"] = "landing_zone"
        raw["serving"] = {**raw["serving"], "reload_seconds": 1.0, "log_flush_seconds": 0.5}
        self.config = home.root / "ct_serve_demo.yaml"
        self.config.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
        self.log_path = home.root / "logs" / "ct_serve_demo.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.session = requests.Session()  # thread-safe enough for one connection pool per client thread
        self.session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=CLIENTS))
        self.days: list[dict] = []

    # -- process ----------------------------------------------------------------------------
    def start(self) -> "ServedTraffic":
        env = {**os.environ, "CT_HOME": str(self.home.root), "CT_CONFIG": str(self.config)}
        cmd = [sys.executable, "-m", "ct_assets.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
               "--accept-client-timestamps"]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self._poll(lambda: self._get("/healthz") is not None, READY_DEADLINE_S, "answer /healthz")
        return self

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 5)):  # SIGTERM: the log flushes on shutdown
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                return

    def __enter__(self) -> "ServedTraffic":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""

    def _poll(self, ready, deadline_s: float, what: str) -> None:
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServedTrafficError(f"ct serve exited {self.proc.returncode}: {self._tail()}")
            if ready():
                return
            time.sleep(0.3)
        raise ServedTrafficError(f"ct serve did not {what} within {deadline_s:.0f} s; log {self.log_path}:\n{self._tail()}")

    def _get(self, path: str) -> dict | None:
        try:
            response = self.session.get(self.url + path, timeout=10)
        except requests.RequestException:
            return None
        return response.json() if response.headers.get("content-type", "").startswith("application/json") else {}

    def _post(self, path: str, body: dict) -> dict:
        response = self.session.post(self.url + path, json=body, timeout=120)
        if response.status_code >= 300:
            raise ServedTrafficError(f"POST {path} answered {response.status_code}: {response.text[:500]}")
        return response.json() if response.content else {}

    # -- a day ------------------------------------------------------------------------------
    def wait_for(self, champion: int | None, challenger: int | None) -> bool:
        """True once the server serves ``champion`` and ``challenger`` (the one that may take
        traffic, or None); False when there is no champion to serve yet."""
        if champion is None:
            return False

        def loaded() -> bool:
            ready = self._get("/readyz") or {}
            return ready.get("champion") == champion and ready.get("challenger") == challenger

        self._poll(loaded, READY_DEADLINE_S, f"load champion v{champion} (challenger v{challenger})")
        return True

    def send_day(self, day: dt.date, *, serving: bool) -> dict:
        from ct_assets.orchestration.resources import build_source

        # The configured simulator (the replay's settings keep source.kind: simulator).
        config = build_source(self.settings, self.home).simulator_config()
        rows = generate_day(config, self.settings.partitions.start_date, day)
        limits = self.settings.serving
        ids = Counter(_id_key(r) for r in rows)
        # A repeated id (the incident's duplicate rows) is one served row at most: the copies
        # land as written, and validation quarantines them as duplicate_event_id.
        seen: set = set()
        served, direct = [], []
        for r in rows:
            ok = serving and _servable(r, limits.max_text_chars) and (ids[_id_key(r)] == 1 or _id_key(r) not in seen)
            (served if ok else direct).append(r)
            seen.add(_id_key(r))
        if direct:
            self._write_direct(day, direct)
        # One request per event, from a few concurrent clients (each keeps its own event
        # time; the server micro-batches across them, as it would for real users).
        with ThreadPoolExecutor(CLIENTS) as pool:
            answers = list(pool.map(lambda r: self._post("/predict", {
                "texts": [r["text"]], "ids": [r["event_id"]], "event_ts": r["event_ts"]}), served))
            arms = Counter(p["arm"] for a in answers for p in a["predictions"])
            versions = {p["arm"]: p["version"] for a in answers for p in a["predictions"]}
            labelled = [r for r in served if r.get("label") is not None]
            list(pool.map(lambda r: self._post("/feedback", {
                "event_id": r["event_id"], "label": r["label"], "label_ts": r["label_ts"]}), labelled))
        self._wait_landed(day, len(rows), sum(1 for r in rows if r.get("label") is not None))
        summary = {"day": day.isoformat(), "served": len(served), "direct": len(direct),
                   "feedback": len(labelled), **{f"arm_{k}": v for k, v in arms.items()},
                   **{f"version_{k}": v for k, v in versions.items()}}
        self.days.append(summary)
        return summary

    def _write_direct(self, day: dt.date, rows: list[dict]) -> None:
        folder = self.landing / f"dt={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".direct.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(dumps_rows(rows))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, folder / "unserved.jsonl")

    def _wait_landed(self, day: dt.date, rows: int, labels: int) -> None:
        def landed() -> bool:
            frame = read_landing_day(self.landing, day).frame
            return frame.height >= rows and frame["label"].drop_nulls().len() >= labels

        self._poll(landed, LANDED_DEADLINE_S, f"write {rows} rows and {labels} labels for {day} "
                                              f"(landing zone {self.landing})")

    def summary(self) -> str:
        return json.dumps(self.days[-3:])
