"""Shared builders for integration tests: small settings, a temp CT_HOME, Definitions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml

from ct_assets.home import CtHome
from ct_assets.settings import Settings, default_config_text, parse_settings

START = dt.date(2026, 9, 1)


def small_settings(**overrides) -> Settings:
    """The embedded defaults, shrunk for tests (fewer rows), with deep overrides by
    dotted key: ``small_settings(**{"quality.max_bad_fraction": 0.5})``."""
    raw = yaml.safe_load(default_config_text())
    raw["source"]["simulator"]["rows_per_day"] = 120
    raw["drift"]["sample_rows"] = 400
    for dotted, value in overrides.items():
        node = raw
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return parse_settings(raw, "test settings")


def make_home(tmp_path: Path) -> CtHome:
    return CtHome(tmp_path / "ct_home").ensure()


def day(i: int) -> str:
    return (START + dt.timedelta(days=i)).isoformat()
