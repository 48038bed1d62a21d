"""The main job behind `make demo` / `ct demo`."""

from __future__ import annotations

from ct_assets.demo.data_demo import run_data_demo
from ct_assets.home import CtHome
from ct_assets.settings import Settings

DEFAULT_DAYS = 60


def run_demo(settings: Settings, home: CtHome, defs, args) -> str:
    days = args.days or DEFAULT_DAYS
    return run_data_demo(settings, home, defs, days)
