"""`ct`: the command line. init, demo, bootstrap, status, approve, rollback, backtest, import, golden carve,
serve."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
import warnings
from pathlib import Path

from ct_assets.core.home import ct_home
from ct_assets.core.settings import SettingsError, get_settings


def _cmd_init(args) -> int:
    settings = get_settings()
    home = ct_home().ensure(max_training_runs=settings.triggers.max_concurrent_training_runs)
    print(f"CT_HOME ready at {home.root}")
    return 0


def _cmd_demo(args) -> int:
    from ct_assets.definitions import defs
    from ct_assets.demo.main import run_demo

    started = time.perf_counter()
    print(run_demo(get_settings(), ct_home(), defs, args))
    print(f"demo finished in {time.perf_counter() - started:.0f} s; open the UI with `make dev`")
    return 0


def _cmd_bootstrap(args) -> int:
    """The first model: the training chain for one day, as the retrain sensors would run it."""
    from ct_assets.core.schema import MANUAL, REASON_TAG, TRAINING_TAG, TRIGGER_TAG
    from ct_assets.definitions import defs
    from ct_assets.orchestration.runner import instance_for, materialize_range
    from ct_assets.triggers.automation import CHAIN
    from ct_assets.registry.resources import resolved
    from ct_assets.triggers.observations import latest_day

    champion = resolved(defs.resources["registry"]).champion_version()
    if champion is not None:
        print(f"ct bootstrap: a champion exists (v{champion}); the triggers retrain it, or materialize the model "
              "group from the UI", file=sys.stderr)
        return 2
    # The newest day whose data half ran (validated, drift-checked): the sensors' "today".
    day = args.day or latest_day(defs.resources["lake"])
    if day is None:
        print("ct bootstrap: no drift report yet; validate a day first (the data group, or `ct demo --data-only`)",
              file=sys.stderr)
        return 2
    key = day.isoformat()
    tags = {TRIGGER_TAG: MANUAL, REASON_TAG: f"first model (ct bootstrap) on data up to {key}", TRAINING_TAG: "true"}
    result = materialize_range(defs, instance_for(ct_home()), CHAIN, key, key, tags=tags, raise_on_error=False)
    print(f"ct bootstrap: {' -> '.join(CHAIN)} for {key}: {'done' if result.success else 'FAILED'} "
          f"(run {result.run_id})")
    return 0 if result.success else 1


def _cmd_approve(args) -> int:
    from ct_assets.definitions import defs
    from ct_assets.orchestration.runner import instance_for
    from ct_assets.registry.jobs import HumanJobError, run_approve

    try:
        record = run_approve(defs, instance_for(ct_home()), version=args.version, reviewer=args.reviewer,
                             decision=args.decision, comment=args.comment)
    except HumanJobError as err:
        print(f"ct approve: {err}", file=sys.stderr)
        return 2
    print(f"recorded: {record}")
    return 0


def _cmd_rollback(args) -> int:
    from ct_assets.definitions import defs
    from ct_assets.orchestration.runner import instance_for
    from ct_assets.registry.jobs import HumanJobError, run_rollback

    try:
        move = run_rollback(defs, instance_for(ct_home()), reason=args.reason, approver=args.by)
    except HumanJobError as err:
        print(f"ct rollback: {err}", file=sys.stderr)
        return 2
    print(f"champion moved back: v{move['from']} -> v{move['to']}")
    return 0


def _cmd_status(args) -> int:
    """The registered versions, their aliases, gate verdicts and approvals."""
    from ct_assets.core.markdown import table
    from ct_assets.definitions import defs
    from ct_assets.registry.approval import status_rows
    from ct_assets.registry.guards import redacted
    from ct_assets.registry.resources import resolved

    registry = resolved(defs.resources["registry"])
    if not registry.db_exists():
        print("no model registered yet: train the first one with `ct bootstrap`")
        return 0
    reg = registry.registry
    versions = reg.version_numbers()
    rows = status_rows([reg.version_info(v) for v in versions], reg.aliases(), {v: reg.approval(v) for v in versions})
    print(f"model {reg.model_name} at {redacted(reg.tracking_uri)}\n\n{table(rows)}")
    return 0


def _cmd_backtest(args) -> int:
    from ct_assets.demo.backtest import BacktestError, StableDays, run_backtest

    started = time.perf_counter()
    try:
        stable = StableDays.parse(args.stable) if args.stable else None
        print(run_backtest(get_settings(), ct_home(), start=args.start, end=args.end,
                           compare_policies=args.compare_policies, stable=stable, json_path=args.json))
    except BacktestError as err:
        print(f"ct backtest: {err}", file=sys.stderr)
        return 2
    print(f"backtest finished in {time.perf_counter() - started:.0f} s; open the UI with `make dev`")
    return 0


def _add_backtest(sub) -> None:
    bt = sub.add_parser("backtest", help="replay your own landing zone's days through the real Definitions")
    bt.add_argument("--start", type=dt.date.fromisoformat, default=None,
                    help="first day (default: the first day folder, not before partitions.start_date)")
    bt.add_argument("--end", type=dt.date.fromisoformat, default=None, help="last day (default: the last day folder)")
    bt.add_argument("--compare-policies", action="store_true", help="replay every trigger policy, each in its own "
                    "CT_HOME/backtests/<policy>")
    bt.add_argument("--stable", default=None, metavar="D1..D2",
                    help="days you know were ordinary: drift alarms on them are counted as false alarms")
    bt.add_argument("--json", type=Path, default=None, help="write the per-policy figures here")
    bt.set_defaults(func=_cmd_backtest)


def _cmd_import(args) -> int:
    from ct_assets.ingest.importer import ColumnMap, ImporterError, import_files

    settings = get_settings()
    # The whole CT_HOME, dagster.yaml included: the next step (a backfill with `dagster asset
    # materialize`) needs DAGSTER_HOME to exist before any code location loads.
    home = ct_home().ensure(max_training_runs=settings.triggers.max_concurrent_training_runs)
    if home.is_server:
        # The importer stages and renames files in a folder; an object store has no rename.
        print(f"ct import: CT_PROFILE=server keeps the landing zone at {home.profile.landing_url}; import into a "
              "local folder (CT_PROFILE=local) and copy its dt=YYYY-MM-DD/ folders there", file=sys.stderr)
        return 2
    landing = home.resolve(settings.source.path, "source.path")
    columns = ColumnMap(text=args.text, label=args.label, time=args.time, label_time=args.label_time, id=args.id)
    try:
        result = import_files(args.files, landing, columns, tz=args.tz, time_format=args.time_format,
                              labels=settings.labels, start_date=settings.partitions.start_date)
    except ImporterError as err:
        print(f"ct import: {err}", file=sys.stderr)
        return 2
    print(result.report())
    if settings.source.kind != "landing_zone":
        # The simulator source writes its own days into the same folder: the assets would mix them in.
        print(f"ct import: warning: source.kind is {settings.source.kind!r}; set `source: {{kind: landing_zone}}` "
              "in ct.yaml so the assets read only your files", file=sys.stderr)
    if not result.placed:
        print("ct import: no row could be placed", file=sys.stderr)
        return 1
    return 0


def _cmd_golden_carve(args) -> int:
    from ct_assets.evaluation.carve import CarveError, carve_golden

    settings = get_settings()
    try:
        result = carve_golden(ct_home().lake_url, start=args.start, end=args.end, per_label=args.per_label,
                              out=args.out, labels=settings.labels)
    except CarveError as err:
        print(f"ct golden carve: {err}", file=sys.stderr)
        return 2
    print(result.report())
    return 0


def _add_import_parser(sub) -> None:
    imp = sub.add_parser(
        "import", help="bring your own labelled, timestamped export into the landing zone",
        description="Write CSV/JSONL/JSON/Parquet exports into the configured landing zone (source.path), one "
        "dt=YYYY-MM-DD/import-<stem>.jsonl per UTC day and file, in the row contract. Without --label-time a "
        "labelled row's label_ts is its event time: labels are treated as known at event time, so point-in-time "
        "cuts and backtests see each label the moment its event happened (optimistic about feedback delay).")
    imp.add_argument("files", nargs="+", metavar="FILE", help="exports: .csv, .jsonl, .ndjson, .json, .parquet")
    imp.add_argument("--text", required=True, metavar="COL", help="column with the text to classify")
    imp.add_argument("--label", required=True, metavar="COL", help="column with the label; empty = unlabelled")
    imp.add_argument("--time", required=True, metavar="COL", help="column with the event time")
    imp.add_argument("--label-time", metavar="COL", help="column with when the label became known "
                     "(default: the event time)")
    imp.add_argument("--id", metavar="COL", help="column with a unique event id (default: a blake2b hash of "
                     "file name, row number and row content)")
    imp.add_argument("--tz", default="UTC", metavar="ZONE", help="zone of naive times (default UTC), e.g. "
                     "America/New_York")
    imp.add_argument("--time-format", metavar="FMT", help="strptime format for times that are not ISO-8601 "
                     "(default: ISO-8601, then M/D/YYYY [H:MM[:SS] [AM/PM]], YYYY/MM/DD, Twitter and RFC 2822)")
    imp.set_defaults(func=_cmd_import)


def _cmd_serve(args) -> int:
    from ct_assets.serving.app import serve

    settings = get_settings()
    home = ct_home().ensure(max_training_runs=settings.triggers.max_concurrent_training_runs)
    serve(settings, home, host=args.host, port=args.port, accept_client_timestamps=args.accept_client_timestamps)
    return 0


def _add_serve_parser(sub) -> None:
    serve = sub.add_parser(
        "serve", help="serve the champion over HTTP (canary, shadow, prediction log, feedback)",
        description="POST /predict, POST /feedback, GET /healthz, /readyz, /metrics. The champion is served by "
        "alias and reloaded when an alias moves; every prediction is appended to the landing zone (source.path).")
    serve.add_argument("--host", default=None, help="bind address (default: serving.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default: serving.port, 8000)")
    serve.add_argument("--accept-client-timestamps", action="store_true",
                       help="replay/demo mode: /predict may carry event_ts and /feedback label_ts (ISO-8601); "
                       "otherwise the server stamps both with its own clock")
    serve.set_defaults(func=_cmd_serve)


def _add_golden_parser(sub) -> None:
    golden = sub.add_parser("golden", help="golden (evaluation) set tools")
    golden_sub = golden.add_subparsers(dest="golden_command", required=True)
    carve = golden_sub.add_parser(
        "carve", help="carve a golden set from validated days",
        description="Stratified, deterministic golden set from the validated_window partitions of START..END, "
        "with the labels known at the end of END; prints the ct.yaml lines that use it.")
    carve.add_argument("--start", required=True, type=dt.date.fromisoformat, metavar="D1", help="first day")
    carve.add_argument("--end", required=True, type=dt.date.fromisoformat, metavar="D2", help="last day, inclusive")
    carve.add_argument("--per-label", required=True, type=int, metavar="N", help="rows per label (all if fewer)")
    carve.add_argument("--out", required=True, metavar="PATH", help="the JSONL file to write")
    carve.set_defaults(func=_cmd_golden_carve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ct", description="continuous training for text classifiers")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("init", help="create CT_HOME and its dagster.yaml").set_defaults(func=_cmd_init)

    demo = sub.add_parser("demo", help="the main job: a CT replay over simulated days")
    demo.add_argument("--days", type=int, default=None, help="simulated days (default 60)")
    demo.add_argument("--fast", action="store_true", help="smaller data and window for a quick look")
    demo.add_argument("--compare-policies", action="store_true", help="run every trigger policy on the same stream")
    demo.add_argument("--auto-approve", action="store_true", default=None,
                      help="approve promotions automatically when require_approval is on (reported)")
    demo.add_argument("--data-only", action="store_true", help="only the data half (ingest, validate, drift)")
    demo.add_argument("--serve", action="store_true",
                      help="send each day's traffic and feedback through a real `ct serve` (canary, prediction log)")
    demo.set_defaults(func=_cmd_demo)

    bootstrap = sub.add_parser("bootstrap", help="train the first model: the model group for one day")
    bootstrap.add_argument("--day", type=dt.date.fromisoformat, default=None,
                           help="the day (default: the newest day with a drift report)")
    bootstrap.set_defaults(func=_cmd_bootstrap)

    approve = sub.add_parser("approve", help="record a human decision on a model version")
    approve.add_argument("--version", required=True, type=int, help="the version (`ct status` lists them)")
    approve.add_argument("--reviewer", required=True)
    approve.add_argument("--decision", choices=["approve", "reject"], default="approve")
    approve.add_argument("--comment", default="")
    approve.set_defaults(func=_cmd_approve)

    sub.add_parser("status", help="registered model versions: aliases, gate, approval").set_defaults(
        func=_cmd_status)

    rollback = sub.add_parser("rollback", help="move champion back to previous_champion")
    rollback.add_argument("--reason", required=True)
    rollback.add_argument("--by", required=True, help="who asks for the rollback")
    rollback.set_defaults(func=_cmd_rollback)
    _add_backtest(sub)
    _add_import_parser(sub)
    _add_golden_parser(sub)
    _add_serve_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # The demo prints its own progress bar; MLflow's per-download bars would drown it.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # Dagster's beta/preview notices are about its API's stability, not the user's data; at
    # every definitions load they buried the output a user has to read.
    warnings.filterwarnings("ignore", message=r".*is currently in (beta|preview).*")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SettingsError as err:
        print(f"ct: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
