"""Typed settings loaded once from ct.yaml (path overridable with CT_CONFIG).

Everything a user tunes lives here. Validation happens at load time, and every error
names the dotted key and the bad value, e.g. ``drift.thresholds.label_js: -1``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from ct_assets.core.cron import validate_cron
from ct_assets.core.home import ct_home, resolve_path
from ct_assets.core.model_settings import (  # noqa: F401  (re-exported: one import path for settings)
    AbsoluteGate,
    BaseModelSettings,
    GateSettings,
    LoraSettings,
    PromotionSettings,
    ServingSettings,
    TrainingSettings,
)
from ct_assets.core.settings_base import SettingsPath
from ct_assets.core.settings_base import Strict as _Strict
from ct_assets.core.strict_yaml import read_yaml

CONFIG_ENV = "CT_CONFIG"
DEFAULT_CONFIG_NAME = "ct.yaml"


class SettingsError(ValueError):
    """ct.yaml is missing, unreadable or invalid; the message names key and value."""


class ScenarioSettings(_Strict):
    name: Literal["product_launch", "slang_shift", "label_shift", "concept_change", "quality_incident",
                  "seasonal_class"]
    start_day: int = Field(ge=0, description="day index (0 = partitions.start_date) the scenario starts")
    end_day: int | None = Field(default=None, ge=0, description="last day index, inclusive; None = forever")
    strength: float = Field(default=1.0, ge=0.0, le=1.0)
    label: str | None = Field(default=None, description="seasonal_class only: the class that leaves "
                              "the traffic from start_day to end_day (None = it never returns)")

    @model_validator(mode="after")
    def _ordered(self) -> "ScenarioSettings":
        if self.end_day is not None and self.end_day < self.start_day:
            raise ValueError(f"end_day {self.end_day} < start_day {self.start_day}")
        # Refused, not ignored, on other scenarios: a stray label is a typo'd name or a mistake.
        if (self.name == "seasonal_class") != (self.label is not None):
            need = "needs a label (the class that leaves)" if self.label is None else "takes no label"
            raise ValueError(f"label {self.label!r}: {self.name} {need}")
        return self


class SimulatorSettings(_Strict):
    seed: int = 7
    rows_per_day: int = Field(default=200, ge=1)
    same_day_label_share: float = Field(default=0.6, ge=0.0, le=1.0)
    max_label_delay_days: int = Field(default=3, ge=0)
    never_labelled_share: float = Field(default=0.1, ge=0.0, le=1.0)
    scenarios: tuple[ScenarioSettings, ...] = ()


class SourceSettings(_Strict):
    kind: Literal["landing_zone", "simulator"] = "simulator"
    # The simulator writes here too, so a path out of CT_HOME would write outside it.
    path: SettingsPath = Field(default="landing", description="landing zone; relative paths are under CT_HOME")
    simulator: SimulatorSettings = SimulatorSettings()


class PartitionSettings(_Strict):
    start_date: dt.date
    fail_on_empty_day: bool = False


class DateRange(_Strict):
    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> "DateRange":
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self

    def days(self) -> list[dt.date]:
        n = (self.end - self.start).days + 1
        return [self.start + dt.timedelta(days=i) for i in range(n)]


class QualitySettings(_Strict):
    max_bad_fraction: float = Field(default=0.2, ge=0.0, le=1.0)
    max_text_chars: int = Field(default=1000, ge=1, description="clean texts are truncated to this")
    reject_text_chars: int = Field(default=10_000, ge=1, description="texts longer than this are quarantined")
    mask_emails: bool = True
    mask_phones: bool = True
    gx_sample_rows: int = Field(
        default=50_000, ge=1000, description="Great Expectations validates a seeded sample of at most this many "
        "clean rows (the per-row quality rules already checked every row; GX is the declarative second "
        "opinion), so its cost does not grow with the day")

    @model_validator(mode="after")
    def _limits(self) -> "QualitySettings":
        if self.reject_text_chars < self.max_text_chars:
            raise ValueError(
                f"reject_text_chars {self.reject_text_chars} < max_text_chars {self.max_text_chars}"
            )
        return self


Auto = Literal["auto"]
# A number is an explicit override; "auto" calibrates the threshold on the reference
# (drift/calibration.py) so it meets drift.false_alarms_per_60_days.
Unit = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] | Auto


class DriftThresholds(_Strict):
    label_js: Unit = "auto"
    label_psi: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] | Auto = "auto"
    length_ks: Unit = "auto"
    oov_rate: Unit = "auto"
    text_auc: Annotated[float, Field(ge=0.5, le=1.0, allow_inf_nan=False)] | Auto = "auto"
    concept_shift: Unit = Field(default="auto", description="largest per-class precision drop")

    def fixed(self) -> dict[str, float]:
        """The metrics with an explicit number (the rest are calibrated)."""
        return {k: float(v) for k, v in self.model_dump().items() if v != "auto"}


class DriftSettings(_Strict):
    thresholds: DriftThresholds = DriftThresholds()
    false_alarms_per_60_days: float = Field(
        default=1.0, gt=0.0, le=60.0, allow_inf_nan=False,
        description="drift-trigger false alarms allowed per 60 stable days; sets the calibrated thresholds")
    min_rows: int = Field(default=20, ge=1, description="texts per side below which text metrics say insufficient")
    min_labelled_rows: int = Field(default=20, ge=1, description="labelled rows per side for the label metrics")
    max_unknown_label_share: float = Field(
        default=0.05, ge=0.0, le=1.0, description="share of a day's rows with a label not in `labels` that "
        "drift_report reports as a new class emerging")
    top_new_terms: int = Field(default=15, ge=1)
    min_term_count: int = Field(default=3, ge=1)
    sample_rows: int = Field(default=2000, ge=50, description="cap per side for the domain classifier")
    monitoring_sample_rows: int | None = Field(
        default=20_000, ge=100, description="rows of a larger day drift_report scores the champion on (a seeded "
        "label-stratified sample); null scores every row")
    max_rows: int = Field(
        default=10_000, ge=1000, description="cap per side for concept_shift's current rows (a seeded sample "
        "stratified by label), oov_rate and length_ks (seeded samples): a larger side is scored on a sample, "
        "so drift costs the same at any day size; days at or below it are scored on every row")
    calibration_samples: int = Field(
        default=20, ge=5, le=500, description="null scores per metric for the \"auto\" thresholds: every "
        "reference day left out once, topped up with day-sized resamples of the reference to this many")


class GoldenSettings(_Strict):
    path: SettingsPath | None = Field(
        default=None,
        description="the golden set: JSONL, CSV or Parquet with text and label (and optional slice, event_id); "
        "relative paths are under CT_HOME; package://PKG/PATH names a file shipped in an installed package")
    min_per_label: int = Field(default=20, ge=1, description="rows every label needs, unless unsupported")
    unsupported_labels: tuple[str, ...] = Field(
        default=(), description="labels allowed fewer than min_per_label golden rows (their recall is not gated)")


class TriggerSettings(_Strict):
    policy: Literal["static", "weekly", "drift", "volume", "combined"] = "combined"
    schedule_cron: str = "0 23 * * 0"
    drift_k: int = Field(default=2, ge=1)
    drift_n: int = Field(default=3, ge=1)
    min_accuracy: float = Field(default=0.8, ge=0.0, le=1.0)
    use_estimated_accuracy: bool = True
    volume_rows: int = Field(default=10_000, ge=1)
    staleness_days: int = Field(default=14, ge=1)
    cooldown_days: int = Field(default=5, ge=0)
    max_concurrent_training_runs: int = Field(default=1, ge=1)

    @field_validator("schedule_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return validate_cron(value)  # at load, so the error names this key, not the schedule

    @model_validator(mode="after")
    def _k_of_n(self) -> "TriggerSettings":
        if self.drift_k > self.drift_n:
            raise ValueError(f"drift_k {self.drift_k} > drift_n {self.drift_n}")
        return self


class Settings(_Strict):
    labels: tuple[str, ...]
    source: SourceSettings = SourceSettings()
    partitions: PartitionSettings
    reference: DateRange
    golden: GoldenSettings = GoldenSettings()
    quality: QualitySettings = QualitySettings()
    drift: DriftSettings = DriftSettings()
    training: TrainingSettings = TrainingSettings()
    gate: GateSettings = GateSettings()
    promotion: PromotionSettings = PromotionSettings()
    triggers: TriggerSettings = TriggerSettings()
    serving: ServingSettings = ServingSettings()

    @field_validator("labels")
    @classmethod
    def _labels_are_ids(cls, labels: tuple[str, ...]) -> tuple[str, ...]:
        # Labels are matched exactly against feedback, so a padded label silently matches
        # nothing, and "Billing" beside "billing" splits one class into two heads.
        first: dict[str, int] = {}
        for i, label in enumerate(labels):
            if not label.strip():
                raise ValueError(f"labels.{i}: {label!r} is empty")
            if label != label.strip():
                raise ValueError(f"labels.{i}: {label!r} has leading or trailing spaces")
            j = first.setdefault(label.casefold(), i)
            if j != i:
                raise ValueError(f"labels.{i}: {label!r} repeats labels.{j} {labels[j]!r} (case is ignored)")
        return labels

    @model_validator(mode="after")
    def _consistent(self) -> "Settings":
        if len(self.labels) < 2:
            raise ValueError(f"labels: need at least 2, got {list(self.labels)}")
        if self.reference.start < self.partitions.start_date:
            raise ValueError(
                f"reference.start {self.reference.start} is before partitions.start_date "
                f"{self.partitions.start_date}"
            )
        # Only when the simulator is the source: someone on their own data (landing_zone)
        # with their own labels has no use for the demo's scenarios and must not trip on them.
        scenarios = self.source.simulator.scenarios if self.source.kind == "simulator" else ()
        for i, scenario in enumerate(scenarios):
            if scenario.label is not None and scenario.label not in self.labels:
                raise ValueError(f"source.simulator.scenarios.{i}.label: {scenario.label!r} is not one of "
                                 f"labels {list(self.labels)}")
        return self


def _format_errors(err: ValidationError, source: str) -> str:
    # One line per key: a `float | "auto"` setting fails once per union member, and pydantic
    # puts the member's name ("constrained-float", "literal['auto']") into the location.
    by_key: dict[str, list[str]] = {}
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"] if not _UNION_TAG.search(str(p))) or "<root>"
        value = e.get("input")
        shown = repr(value) if not isinstance(value, dict) else "{...}"
        by_key.setdefault(key, []).append(f"{e['msg']} (got {shown})")
    lines = [f"  {key}: " + "; or ".join(msgs) for key, msgs in by_key.items()]
    return f"invalid settings in {source}:\n" + "\n".join(lines)


_UNION_TAG = re.compile(r"[\[\-]|^(?:float|int|str|bool|none)$")


def parse_settings(raw: object, source: str = "<dict>", home_root: Path | None = None) -> Settings:
    """Validate ``raw``; the golden set it names is read and checked too (relative
    paths under ``home_root``, by default CT_HOME)."""
    if not isinstance(raw, dict):
        raise SettingsError(f"{source}: top level must be a mapping, got {type(raw).__name__}")
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as err:
        raise SettingsError(_format_errors(err, source)) from None
    if settings.golden.path is not None:
        _check_golden(settings, source, home_root if home_root is not None else ct_home().root)
    return settings


def _check_golden(settings: Settings, source: str, home_root: Path) -> None:
    # Imported here: the golden reader lives with evaluation; settings only asks it.
    from ct_assets.evaluation.golden import GoldenSetError, check_golden, load_golden

    g = settings.golden
    try:
        path = resolve_path(g.path, home_root, "golden.path")
        check_golden(load_golden(path), settings.labels, min_per_label=g.min_per_label,
                     unsupported_labels=g.unsupported_labels)
    except (GoldenSetError, ValueError) as err:
        raise SettingsError(f"invalid settings in {source}:\n  golden: {err}") from None


def default_config_text() -> str:
    """The embedded default ct.yaml shipped inside the package."""
    return resources.files("ct_assets").joinpath("ct.yaml").read_text(encoding="utf-8")


def config_path() -> Path | None:
    """CT_CONFIG if set, else ./ct.yaml if present, else None (embedded default)."""
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    local = Path.cwd() / DEFAULT_CONFIG_NAME
    return local if local.is_file() else None


def load_settings(path: str | Path | None = None) -> Settings:
    path = Path(path) if path is not None else config_path()
    if path is None:
        return parse_settings(read_yaml(default_config_text()), "embedded ct.yaml")
    try:
        # utf-8-sig: a BOM (Windows editors add one) is not part of the first key.
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SettingsError(f"settings file not found: {path} (set {CONFIG_ENV} or create ct.yaml)") from None
    except IsADirectoryError:
        raise SettingsError(f"{path}: is a directory; {CONFIG_ENV} must name a ct.yaml file") from None
    except UnicodeDecodeError as err:
        bad = err.object[err.start:err.start + 1]
        raise SettingsError(
            f"{path}: not UTF-8 text (byte {bad!r} at offset {err.start}); save the file as UTF-8") from None
    except OSError as err:
        raise SettingsError(f"{path}: cannot read the settings file: {err.strerror or err}") from None
    try:
        raw = read_yaml(text)
    except yaml.YAMLError as err:
        raise SettingsError(f"{path}: not valid YAML: {err}") from None
    return parse_settings(raw, str(path))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, loaded once. Tests call ``get_settings.cache_clear()``."""
    return load_settings()
