"""`ct`: the command line. init, demo, approve, rollback."""

from __future__ import annotations

import argparse
import os
import sys
import time

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


def _cmd_approve(args) -> int:
    from ct_assets.definitions import defs
    from ct_assets.orchestration.runner import instance_for
    from ct_assets.registry.jobs import run_approve

    record = run_approve(defs, instance_for(ct_home()), version=args.version, reviewer=args.reviewer,
                         decision=args.decision, comment=args.comment)
    print(f"recorded: {record}")
    return 0


def _cmd_rollback(args) -> int:
    from ct_assets.definitions import defs
    from ct_assets.orchestration.runner import instance_for
    from ct_assets.registry.jobs import run_rollback

    move = run_rollback(defs, instance_for(ct_home()), reason=args.reason, approver=args.by)
    print(f"champion moved back: v{move['from']} -> v{move['to']}")
    return 0


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
    demo.set_defaults(func=_cmd_demo)

    approve = sub.add_parser("approve", help="record a human decision on a model version")
    approve.add_argument("--version", required=True)
    approve.add_argument("--reviewer", required=True)
    approve.add_argument("--decision", choices=["approve", "reject"], default="approve")
    approve.add_argument("--comment", default="")
    approve.set_defaults(func=_cmd_approve)

    rollback = sub.add_parser("rollback", help="move champion back to previous_champion")
    rollback.add_argument("--reason", required=True)
    rollback.add_argument("--by", required=True, help="who asks for the rollback")
    rollback.set_defaults(func=_cmd_rollback)
    return parser


def main(argv: list[str] | None = None) -> int:
    # The demo prints its own progress bar; MLflow's per-download bars would drown it.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SettingsError as err:
        print(f"ct: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
