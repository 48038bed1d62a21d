"""BENCHMARKS.md section 8: CT_PROFILE=local vs server (bench/profiles.py, bench/event_log.py).

Hand-run (it starts Postgres, moto and an MLflow server): `python -m bench.profiles` writes
bench/server_profile_hand_run.md, which bench.report appends to every regenerated report.
"""

from __future__ import annotations

from bench.report import _f, _table, _x


def profiles_section(p: dict) -> list[str]:
    local, server, r = p["local"], p["server"], p["ratios"]
    rows = [[name, v["event_log_storage"], _f(v["wall_seconds"], 1), _f(v["seconds_per_day"], 2), _f(v["runs"]),
             _f(v["events"]), _f(v["run_wall_seconds_median"], 2), _f(v["orchestration_overhead_seconds_median"], 3),
             _f(v["retrains"]), _f(len(v["failed_runs"]))]
            for name, v in (("local", local), ("server", server))]
    lines = [
        "## 8. Past one machine: CT_PROFILE=local vs server",
        "",
        f"`python -m bench.profiles --days {p['days']}` ({p['machine']['date']}): the same {p['days']}-day replay "
        "(`ct demo --fast` settings, the tiny random BERT base so that what differs is the engines, one child "
        "process per profile, one after the other). server = Postgres (dagster-postgres) + an MLflow server "
        "(Postgres backend, artifacts proxied to S3) + the lake and the landing zone on moto's S3, all from "
        "`ct_assets.stack` on 127.0.0.1 of the same 2-core machine.",
        "",
        *_table(["profile", "event log", "wall s", "s/day", "runs", "events", "run wall s (median)",
                 "orchestration overhead s/run (median)", "retrains", "failed runs"], rows),
        "",
        f"* server / local wall time: {_x(r['server_vs_local_wall'])}; orchestration overhead per run (run wall "
        f"minus the time its steps ran): {_x(r['server_vs_local_overhead_per_run'])}.",
        "* Failed runs are the replay's own (`failed_runs` in bench/results/profiles.json): runs a blocking check "
        "stopped, such as a challenger the gate refused or the scenario mix's data-quality incident day. Training "
        "on CPU is not bit-reproducible across processes, so a gate decision can differ between the two replays "
        "(the counts differ by one here; the reasons of the server's runs were not inspected after its servers "
        "stopped).",
        "* What the server profile buys is not speed on one machine: it is storage that several processes and "
        "machines can share (runs on Kubernetes pods, training on a GPU node), which SQLite files and a local "
        "folder cannot be. On one machine every lake read and write becomes an HTTP round trip to the S3 "
        "server and every registry call one to the MLflow server, and those servers share the same two cores.",
    ]
    e = p.get("event_log")
    if e:
        scen = [k for k in e["sqlite"] if isinstance(e["sqlite"][k], dict)]
        rows = [[s, _f(e["sqlite"][s]["us_per_event"], 0), _f(e["postgres"][s]["us_per_event"], 0),
                 _x(e["ratios"][f"us_per_event_postgres_vs_sqlite_{s}"])] for s in scen]
        lines += [
            "",
            f"Event-log write cost (`python -m bench.event_log`, {e['events_per_writer']} events per writer, "
            f"{e['event_mix']}):",
            "",
            *_table(["scenario", "SQLite us/event", "Postgres us/event", "Postgres / SQLite"], rows),
            "",
            f"* dagster-postgres opens a connection per write; one new connection costs "
            f"{_f(e['postgres']['new_connection_ms'], 1)} ms here (TCP + password exchange), more than half of a "
            "Postgres event. On an idle local disk SQLite's per-event commit is the cheaper one; contention "
            "under load (the README's slow demo runs) was not measured here.",
        ]
    return lines
