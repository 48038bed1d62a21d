"""``ct serve`` as a client meets it: a real server subprocess on a free 127.0.0.1 port,
over a real MLflow registry (SQLite) holding tiny LoRA adapters, writing real files into
the landing zone. Nothing is mocked.

One steady server (champion v1, gated challenger v2, canary 50 %, shadow on) answers the
request-level tests; the lifecycle test runs its own server through the alias moves a
deployment sees: no champion, a first champion, an ungated and then a gated challenger,
a promotion picked up without a restart, a challenger that fails to load, a withdrawal.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ct_assets.serving.routing import CANARY_ARM, CHAMPION_ARM, arm_for
from ct_assets_tests.serving_tests.serve_world import LABELS, ServeWorld, poll, running_server

STEADY = {"canary_percent": 50, "shadow": True, "reload_seconds": 0.5, "max_texts": 8, "max_text_chars": 100,
          "max_body_bytes": 2000, "log_flush_seconds": 0.2, "max_wait_ms": 2}
_ids = itertools.count()


def fresh_ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{next(_ids)}" for _ in range(n)]


@pytest.fixture(scope="module")
def steady(tmp_path_factory, tiny_base_dir):
    world = ServeWorld(tmp_path_factory.mktemp("steady"), tiny_base_dir, **STEADY)
    v1 = world.register(seed=1)
    world.registry.promote(v1, "first model", "test")
    v2 = world.register(seed=2)
    world.gate(v2)
    with running_server(world) as server:
        poll(lambda: (r := server.ready()) and r["champion"] == v1 and r["challenger"] == v2,
             "champion v1 and challenger v2 loaded", log=server.log)
        yield world, server


def _samples(server) -> dict[tuple[str, tuple], float]:
    text = server.get("/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_it_binds_to_localhost_and_is_ready_with_both_models(steady):
    _, server = steady
    assert re.search(r"Uvicorn running on http://127\.0\.0\.1:\d+", server.log.read_text())
    assert server.get("/healthz").json() == {"alive": True}
    ready = server.ready()
    assert ready["champion"] == 1 and ready["challenger"] == 2 and ready["challenger_problem"] is None
    assert ready["canary_percent"] == 50 and ready["shadow"] is True


def test_concurrent_predictions_follow_the_canary_routing(steady):
    _, server = steady
    ids = fresh_ids("route", 200)
    chunks = [ids[i:i + 8] for i in range(0, len(ids), 8)]
    with ThreadPoolExecutor(8) as pool:  # concurrent requests: the micro-batchers merge them
        answers = [a for chunk in pool.map(lambda c: server.predict([f"my invoice {e}" for e in c], c), chunks)
                   for a in chunk]
    assert [a["event_id"] for a in answers] == ids
    for a in answers:
        assert a["label"] in LABELS and 0.0 <= a["confidence"] <= 1.0
        # The pure routing function the unit tests check is exactly what the server applies.
        assert a["arm"] == arm_for(a["event_id"], 50)
        assert a["version"] == {CHAMPION_ARM: 1, CANARY_ARM: 2}[a["arm"]], a
    assert {a["arm"] for a in answers} == {CHAMPION_ARM, CANARY_ARM}


def test_an_id_is_made_when_the_client_sends_none(steady):
    _, server = steady
    answers = server.predict(["where is my parcel", "refund please"])
    assert all(re.fullmatch(r"[0-9a-f]{32}", a["event_id"]) for a in answers)  # uuid4 hex
    assert answers[0]["event_id"] != answers[1]["event_id"]


def test_a_reused_event_id_is_refused_with_409_before_it_is_scored(steady):
    # A second row for one id would be quarantined as duplicate_event_id tomorrow; the client
    # is told now, while it still can be.
    _, server = steady
    (event_id,) = fresh_ids("reused", 1)
    server.predict(["first time"], [event_id])
    again = server.post("/predict", json={"texts": ["second time"], "ids": [event_id]})
    assert again.status_code == 409 and f"event_id {event_id!r} was already served" in again.json()["detail"], again.text


def test_served_rows_land_with_the_other_models_scores(steady):
    world, server = steady
    ids = fresh_ids("rows", 24)
    before = dt.datetime.now(dt.UTC)
    for chunk in (ids[:8], ids[8:16], ids[16:]):
        server.predict([f"text of {e}" for e in chunk], chunk)
    rows = poll(lambda: (got := world.landing_rows()) and all(e in got for e in ids) and got,
                "served rows in the landing zone", log=server.log)
    for e in ids:
        row = rows[e]
        assert row["text"] == f"text of {e}" and row["label"] is None and row["label_ts"] is None
        assert dt.datetime.fromisoformat(row["event_ts"]) >= before.replace(microsecond=0)
        assert row["_day"] == f"dt={dt.datetime.fromisoformat(row['event_ts']).date()}"
        assert row["prediction"] in LABELS and row["latency_ms"] >= 0
        # Shadow mode: the challenger behind the champion arm; canary: the champion behind it.
        expected = {CHAMPION_ARM: (1, 2), CANARY_ARM: (2, 1)}[row["arm"]]
        assert (row["served_version"], row["shadow_version"]) == expected, row
        assert row["shadow_prediction"] in LABELS and 0.0 <= row["shadow_confidence"] <= 1.0


def test_feedback_reaches_the_served_row_and_unknown_ids_are_404(steady):
    world, server = steady
    (event_id,) = fresh_ids("feedback", 1)
    server.predict(["charged twice on my card"], [event_id])
    resp = server.post("/feedback", json={"event_id": event_id, "label": "billing"})
    assert resp.status_code == 202, resp.text
    assert resp.json()["event_id"] == event_id and resp.json()["label"] == "billing"
    row = poll(lambda: (r := world.landing_rows().get(event_id)) and r["label"] and r,
               "the label in the served row", log=server.log)
    assert row["label"] == "billing" and dt.datetime.fromisoformat(row["label_ts"]) >= dt.datetime.fromisoformat(
        row["event_ts"])
    unknown = server.post("/feedback", json={"event_id": "never-served", "label": "billing"})
    assert unknown.status_code == 404 and "unknown event_id 'never-served'" in unknown.json()["detail"]
    for bad in ("", 7, "Billing"):  # "Billing": a known label mistyped, not a new class
        resp = server.post("/feedback", json={"event_id": event_id, "label": bad})
        assert resp.status_code == 422 and "label" in resp.json()["detail"], resp.text
    # A label outside `labels` may be a class emerging: kept in the row for drift_report to count.
    new_class = server.post("/feedback", json={"event_id": event_id, "label": "baggage"})
    assert new_class.status_code == 202 and "new class emerging" in new_class.json()["note"], new_class.text
    poll(lambda: (r := world.landing_rows().get(event_id)) and r["label"] == "baggage",
         "the new label in the served row", log=server.log)


def _chunked(body: bytes):
    yield from (body[i:i + 500] for i in range(0, len(body), 500))  # a generator: sent chunked, no length


@pytest.mark.parametrize("send, status, message", [
    (lambda: {"json": {"texts": ["x" * 90] * 8, "pad": "y" * 2000}}, 413,
     "bytes (Content-Length); serving.max_body_bytes is 2000"),
    (lambda: {"data": _chunked(b'{"texts": ["' + b"z" * 3000 + b'"]}'), "headers": {"Content-Type": "application/json"}},
     413, "request body exceeds 2000 bytes"),
    (lambda: {"json": {"texts": ["a"] * 9}}, 422, "request has 9 texts; serving.max_texts is 8"),
    (lambda: {"json": {"texts": ["ok", "x" * 101]}}, 422, "text 1 has 101 characters; serving.max_text_chars is 100"),
    (lambda: {"json": {"texts": ["a"], "event_ts": "2026-09-03T10:00:00Z"}}, 422,
     "event_ts is accepted only when ct serve runs with --accept-client-timestamps"),
], ids=["content-length", "chunked", "max_texts", "max_text_chars", "client-timestamp"])
def test_oversized_or_disallowed_input_is_refused_naming_the_limit(steady, send, status, message):
    _, server = steady
    resp = server.post("/predict", **send())
    assert resp.status_code == status and message in resp.json()["detail"], (resp.status_code, resp.text)


def test_metrics_count_per_arm_and_version(steady):
    _, server = steady
    server.predict([f"metrics {i}" for i in range(8)], fresh_ids("metrics", 8))
    samples = poll(lambda: (s := _samples(server)) and s.get(("ct_serve_log_flushes_total", ())) and s,
                   "a prediction-log flush counted", log=server.log)
    for arm, version in ((CHAMPION_ARM, "1"), (CANARY_ARM, "2")):
        labels = (("arm", arm), ("version", version))
        assert samples[("ct_serve_predictions_total", labels)] > 0
        assert samples[("ct_serve_requests_total", labels)] > 0
        assert samples[("ct_serve_request_latency_seconds_count", labels)] > 0
    for version in ("1", "2"):
        assert samples[("ct_serve_batch_size_count", (("version", version),))] > 0
    assert samples[("ct_serve_shadow_scorings_total", (("outcome", "ok"), ("role", "shadow"), ("version", "2")))] > 0
    assert samples[("ct_serve_shadow_scorings_total",
                    (("outcome", "ok"), ("role", "canary_baseline"), ("version", "1")))] > 0
    assert samples[("ct_serve_reloads_total", (("outcome", "ok"), ("slot", "champion")))] == 1
    assert samples[("ct_serve_loaded_version", (("slot", "challenger"),))] == 2
    assert samples[("ct_serve_log_rows_total", (("outcome", "appended"),))] > 0
    assert samples[("ct_serve_http_requests_total", (("path", "/predict"), ("status", "200")))] > 0


def test_the_server_follows_the_aliases_without_a_restart(tmp_path, tiny_base_dir):
    # Flushes only at shutdown: the rows found afterwards prove the lifespan closes the log.
    world = ServeWorld(tmp_path, tiny_base_dir, canary_percent=50, reload_seconds=0.5,
                       log_flush_seconds=3600, log_flush_rows=100_000)
    v1 = world.register(seed=11)  # a challenger, but no champion yet
    served: list[str] = []

    def predict(n: int) -> list[dict]:
        ids = fresh_ids("life", n)
        served.extend(ids)
        return server.predict([f"help with {e}" for e in ids], ids)

    with running_server(world, "--accept-client-timestamps") as server:
        not_ready = poll(lambda: (r := server.get("/readyz")).status_code == 503 and "alias 'champion'" in (
            r.json()["reason"]) and r.json(), "503 naming the missing champion", log=server.log)
        assert "no version has alias 'champion'" in not_ready["reason"]
        resp = server.post("/predict", json={"texts": ["hello"]})
        assert resp.status_code == 503 and "no champion loaded" in resp.json()["detail"]

        world.registry.promote(v1, "first model", "test")
        ready = poll(lambda: (r := server.ready()) and r["champion"] == v1 and r, "champion v1", log=server.log)
        assert ready["challenger"] is None and ready["challenger_problem"] == f"challenger v{v1} is the champion"
        assert {(a["version"], a["arm"]) for a in predict(8)} == {(v1, CHAMPION_ARM)}

        v2 = world.register(seed=12)  # not evaluated: may not take traffic
        poll(lambda: f"challenger v{v2} has no gate verdict" in (server.ready()["challenger_problem"] or ""),
             "the ungated challenger seen and refused", log=server.log)
        assert {(a["version"], a["arm"]) for a in predict(8)} == {(v1, CHAMPION_ARM)}

        world.gate(v2)
        poll(lambda: server.ready()["challenger"] == v2, "gated challenger v2 loaded", log=server.log)
        answers = predict(8) + predict(8) + predict(8)
        assert {(a["version"], a["arm"]) for a in answers} == {(v1, CHAMPION_ARM), (v2, CANARY_ARM)}

        replayed = server.predict(["my parcel never came"], ["replayed-1"], event_ts="2026-09-03T10:00:00Z")
        assert replayed[0]["event_id"] == "replayed-1"
        resp = server.post("/feedback", json={"event_id": "replayed-1", "label": "shipping",
                                              "label_ts": "2026-09-04T08:00:00+00:00"})
        assert resp.status_code == 202, resp.text

        world.registry.promote(v2, "gate passed", "test")
        poll(lambda: {(a["version"], a["arm"]) for a in predict(8)} == {(v2, CHAMPION_ARM)},
             "predictions from the promoted v2 on the champion arm only", log=server.log)

        v3 = world.register(seed=13, broken=True)
        world.gate(v3)
        poll(lambda: f"loading challenger v{v3} failed" in (server.ready()["challenger_problem"] or ""),
             "the failed load reported", log=server.log)
        assert {a["version"] for a in predict(8)} == {v2}  # the champion serves on
        failed = _samples(server)[("ct_serve_reloads_total", (("outcome", "failed"), ("slot", "challenger")))]
        assert failed >= 1

        world.registry.withdraw_challenger(v3, "canary accuracy dropped", "test")  # the alias is removed
        poll(lambda: server.ready()["challenger_problem"] == "no version has alias 'challenger'",
             "the withdrawn challenger gone from the slots", log=server.log)
    rows = world.landing_rows()
    assert set(served) <= set(rows)  # every answered prediction is in the landing zone
    row = rows["replayed-1"]
    assert row["_day"] == "dt=2026-09-03" and row["event_ts"] == "2026-09-03T10:00:00+00:00"
    assert (row["label"], row["label_ts"]) == ("shipping", "2026-09-04T08:00:00+00:00")
