"""The CT replay: a drifting stream played through the real Definitions, day by day.

For each simulated day d:
1. d's files land: ``raw_window[d]`` is materialized (the simulator writes the landing
   zone, the asset reads it back through the production path);
2. declarative automation is evaluated at the end of d (``evaluate_automation_conditions``)
   and whatever it requests runs: validation and drift for d;
3. the champion and the static model are scored on the rows whose labels arrived on d;
4. the sensors and the schedule are evaluated at that simulated time
   (``build_sensor_context`` / ``build_schedule_context``) and their run requests run, as
   the daemon would: each run_key once, in the order the daemon would see them.

The first model is bootstrapped on a fixed day for every policy, so "static" (that first
champion, never retrained) and each policy start from the same model.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field

import polars as pl
from dagster import (
    AssetKey,
    DagsterInstance,
    build_schedule_context,
    build_sensor_context,
    evaluate_automation_conditions,
)

from ct_assets.core.home import CtHome
from ct_assets.core.schema import (
    MANUAL,
    REASON_TAG,
    TRAINING_TAG,
    TRIGGER_TAG,
    DayObservation,
)
from ct_assets.core.settings import Settings
from ct_assets.core.time import end_of_day, labels_as_of
from ct_assets.demo.served_traffic import ServedTraffic
from ct_assets.definitions import build_definitions
from ct_assets.lake.resources import Lake
from ct_assets.orchestration.dagster_private import cron_string_iterator
from ct_assets.orchestration.runner import materialize_range
from ct_assets.registry.jobs import run_approve
from ct_assets.registry.resources import resolved
from ct_assets.serving.routing import challenger_problem
from ct_assets.triggers.automation import DATA_FOLLOWERS, PROMOTION, SERVED_FOLLOWERS
from ct_assets.triggers.policy import TriggerRequest, choose_request
from ct_assets.triggers.sensors import CHAIN, last_training_day

RETRAIN_SENSORS = ("metric_retrain_sensor", "freshness_retrain_sensor", "volume_retrain_sensor")
AUTO_REVIEWER = "ct demo --auto-approve"
# Own data: labels older than the window plus this many days are not scored as "new today".
LABEL_LOOKBACK_DAYS = 30


@dataclass
class ReplayResult:
    policy: str
    records: list[dict]
    golden_accuracies: list[float]
    drift_start: dt.date
    failed_runs: list[str] = field(default_factory=list)
    # Forgetting-ledger entries (evaluation/ledger.py) of every version evaluated.
    ledger: list[dict] = field(default_factory=list)


def landing_zone_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"source": settings.source.model_copy(update={"kind": "landing_zone"})})


def with_policy(settings: Settings, policy: str) -> Settings:
    return settings.model_copy(update={"triggers": settings.triggers.model_copy(update={"policy": policy})})


def simulated_scenarios(settings: Settings) -> tuple:
    """The simulator's scenarios, or none: a user's own landing zone has no ground truth
    about when the world changed."""
    return settings.source.simulator.scenarios if settings.source.kind == "simulator" else ()


def drift_start_day(settings: Settings) -> dt.date:
    """First day of a scenario that changes the world (a quality incident does not); the
    first partition when nothing is known about the stream."""
    starts = [s.start_day for s in simulated_scenarios(settings) if s.name != "quality_incident"]
    return settings.partitions.start_date + dt.timedelta(days=min(starts) if starts else 0)


def label_lookback_days(settings: Settings) -> int:
    """How far back a label arriving today may belong: the simulator's known delay, or
    (own data) the training window plus replay reach, since nothing bounds a user's delays."""
    if settings.source.kind == "simulator":
        return settings.source.simulator.max_label_delay_days
    return settings.training.window_days + LABEL_LOOKBACK_DAYS


def newly_labelled(lake: Lake, day: dt.date, lookback: int) -> pl.DataFrame:
    """Rows whose label arrived during ``day`` (from the day's and earlier partitions)."""
    keys = [(day - dt.timedelta(days=i)).isoformat() for i in range(lookback + 1)]
    frames = list(lake.read_many("validated_window", keys).values())
    if not frames:
        return pl.DataFrame()
    rows = labels_as_of(pl.concat(frames, how="diagonal_relaxed"), day)
    start = end_of_day(day) - dt.timedelta(days=1)
    return rows.filter(pl.col("label_ts") >= start)


def _accuracy(registry, version: int | None, rows: pl.DataFrame) -> float | None:
    if version is None or rows.height == 0:
        return None
    pred = registry.predictor(version).predict(rows["text"].to_list())
    return round(sum(p == t for p, t in zip(pred.labels, rows["label"].to_list())) / rows.height, 4)


class Replay:
    def __init__(self, settings: Settings, home: CtHome, *, auto_approve: bool = False,
                 bootstrap_day: int | None = None, log: Callable[[str], None] = lambda _: None,
                 served: ServedTraffic | None = None):
        self.settings, self.home, self.log = settings, home, log
        self.auto_approve = auto_approve
        self.served = served
        # Served traffic: `ct serve` writes the landing zone, so the pipeline reads it as a
        # user's own landing zone; the replay keeps the simulator settings for its ground truth.
        self.defs = build_definitions(landing_zone_settings(settings) if served else settings, home)
        # Entered, so that Dagster's current defs-state storage is this instance's for the
        # replay: one left current by an instance already collected (seen in the suite, from
        # another test's instance) fails resolve_asset_graph with "undefined DagsterInstance
        # weakref". close() exits it.
        self._stack = ExitStack()
        self.instance = self._stack.enter_context(DagsterInstance.from_config(str(home.dagster)))
        self.resources = self.defs.resources
        self.lake = Lake(base_path=home.lake_url)
        self.registry = resolved(self.resources["registry"])
        tr = settings.training
        # The first model trains once a full window (or at least the reference) exists.
        self.bootstrap = settings.partitions.start_date + dt.timedelta(
            days=bootstrap_day if bootstrap_day is not None else max(tr.window_days - 1, len(settings.reference.days()))
        )
        # A first tick before any data: "newly missing" needs a previous state to compare to.
        start = dt.datetime.combine(settings.partitions.start_date, dt.time(), tzinfo=dt.timezone.utc)
        self.cursor = evaluate_automation_conditions(self.defs, self.instance, evaluation_time=start).cursor
        self.seen_run_keys: set[str] = set()
        self.static_version: int | None = None
        self.last_bootstrap: dt.date | None = None
        self.failed: list[str] = []

    def _run(self, assets, key: str, tags: dict) -> bool:
        result = materialize_range(self.defs, self.instance, assets, key, key, tags=tags,
                                   raise_on_error=False, console_level="WARNING")
        if not result.success:
            self.failed.append(f"{key} {tags.get(TRIGGER_TAG, '')}: {','.join(assets)} (run {result.run_id})")
        return result.success

    def _land_and_automate(self, day: dt.date, record: dict) -> None:
        key = day.isoformat()
        if self.served is not None:
            serving = self.served.wait_for(*self._served_models())
            record["served"] = self.served.send_day(day, serving=serving)
        self._run(("raw_window",), key, {REASON_TAG: f"files for {key} landed"})
        evaluation_time = end_of_day(day) + dt.timedelta(minutes=30)
        result = evaluate_automation_conditions(self.defs, self.instance, evaluation_time=evaluation_time,
                                                cursor=self.cursor)
        self.cursor = result.cursor
        by_partition: dict[str, list[str]] = {}
        for asset in (*DATA_FOLLOWERS, *SERVED_FOLLOWERS):
            for pk in result.get_requested_partitions(AssetKey(asset)):
                by_partition.setdefault(pk, []).append(asset)
        for pk, assets in sorted(by_partition.items()):
            self._run(tuple(assets), pk, {REASON_TAG: f"automation: {pk} landed"})

    def _served_models(self) -> tuple[int | None, int | None]:
        """The champion, and the challenger `ct serve` may route to (None unless gated)."""
        champion = self.registry.champion_version()
        challenger = self.registry.alias_version("challenger")
        info = None if challenger is None else self.registry.version(challenger)
        return champion, None if challenger_problem(info, champion) else challenger

    def _request(self, day: dt.date) -> TriggerRequest | None:
        """What the daemon would launch today: every retrain sensor and the schedule are
        evaluated (each asks the arbiter on its own), run_keys Dagster has already seen are
        dropped, and the arbiter picks among what is left, exactly as for one sensor."""
        requests = []
        for name in RETRAIN_SENSORS:
            sensor = self.defs.resolve_sensor_def(name)
            data = sensor.evaluate_tick(build_sensor_context(instance=self.instance, definitions=self.defs,
                                                             sensor_name=name, resources=self.resources))
            requests += data.run_requests or []
        sched = self.defs.resolve_schedule_def("weekly_retrain_schedule")
        for tick in cron_ticks(sched.cron_schedule, day):
            data = sched.evaluate_tick(build_schedule_context(
                instance=self.instance, scheduled_execution_time=tick, resources=self.resources,
                repository_def=self.defs.get_repository_def()))
            requests += data.run_requests or []
        candidates = [TriggerRequest(r.tags[TRIGGER_TAG], r.tags[REASON_TAG], r.partition_key, r.run_key)
                      for r in requests if r.run_key not in self.seen_run_keys]
        tg = self.settings.triggers
        chosen, _ = choose_request(candidates, policy=tg.policy, last_training_day=last_training_day(self.instance),
                                   today=day, cooldown_days=tg.cooldown_days)
        return chosen

    def _promotion(self, day: dt.date, record: dict) -> None:
        sensor = self.defs.resolve_sensor_def("promotion_sensor")
        data = sensor.evaluate_tick(build_sensor_context(instance=self.instance, definitions=self.defs,
                                                         sensor_name="promotion_sensor", resources=self.resources))
        for request in data.run_requests or []:
            if request.run_key in self.seen_run_keys:
                continue
            self.seen_run_keys.add(request.run_key)
            self._run(PROMOTION, request.partition_key, dict(request.tags))
            self._after_champion(day, record)

    def _after_champion(self, day: dt.date, record: dict) -> None:
        row = self.lake.read("champion", day.isoformat())
        if row is None:
            # The gate (a blocking check) stopped the chain before `champion` ran: say why.
            report = self.lake.read("eval_report", day.isoformat())
            if report is not None and not report["gate_passed"][0]:
                record["blocked_reasons"] = [f"gate blocked v{report['version'][0]}: {report['reasons'][0]}"]
            return
        r = row.to_dicts()[0]
        if r["moved"]:
            record["promoted"], record["promoted_version"] = True, r["to_version"]
        elif r["blocked"] and "already champion" not in r["blocked"]:
            record["blocked_reasons"] = [r["blocked"]]
            challenger = self.registry.alias_version("challenger")
            if self.auto_approve and "awaiting human approval" in r["blocked"] and challenger is not None:
                run_approve(self.defs, self.instance, version=challenger, reviewer=AUTO_REVIEWER,
                            comment="auto-approved by the demo flag")
                self._run(("champion",), day.isoformat(), {TRIGGER_TAG: MANUAL,
                                                           REASON_TAG: f"auto-approval of v{challenger}"})
                record["auto_approved"] = True
                record["blocked_reasons"] = []
                self._after_champion(day, record)

    def _retrain(self, day: dt.date, tags: dict[str, str], record: dict) -> None:
        record["triggers_fired"].append(f"{tags[TRIGGER_TAG]}: {tags[REASON_TAG]}")
        self.log(f"{day} retrain ({tags[TRIGGER_TAG]}): {tags[REASON_TAG]}")
        self._run(CHAIN, day.isoformat(), tags)
        record["retrained"] = True
        self._after_champion(day, record)

    def run_day(self, day: dt.date) -> dict:
        served: dict = {}
        self._land_and_automate(day, served)
        canary = self.lake.read("canary_report", day.isoformat()) if self.served is not None else None
        champion = self.registry.champion_version()
        fresh = newly_labelled(self.lake, day, label_lookback_days(self.settings))
        drift = self.lake.read("drift_report", day.isoformat())
        obs = DayObservation.from_frame(drift) if drift is not None else None
        record = {
            "day": day, "champion_version": champion,
            "champion_accuracy": _accuracy(self.registry, champion, fresh),
            "static_accuracy": _accuracy(self.registry, self.static_version, fresh),
            "labelled_rows": fresh.height,
            # No drift report: a blocking check upstream stopped the day's data half.
            "drift_verdict": obs.verdict if obs else "blocked",
            "drifted_metrics": obs.drifted_metrics if obs else [],
            **(obs.scores if obs else {}),
            # The thresholds the day was judged by (calibrated ones move with the reference).
            **({f"threshold_{m}": v for m, v in obs.thresholds.items()} if obs else {}),
            "triggers_fired": [], "retrained": False, "promoted": False, "promoted_version": None,
            "blocked_reasons": [], "auto_approved": False, "scenario_events": self._events(day),
            "served": served.get("served"),
            **({"canary_verdict": canary["verdict"][0], "canary_reason": canary["reason"][0]}
               if canary is not None and canary.height else {}),
        }
        if champion is None and day >= self.bootstrap and self._may_bootstrap(day):
            self.last_bootstrap = day
            self._retrain(day, {TRIGGER_TAG: MANUAL, REASON_TAG: f"bootstrap: first model as of {day}",
                                TRAINING_TAG: "true"}, record)
            self.static_version = self.registry.champion_version()
        elif champion is not None and self.settings.triggers.policy != "static":
            request = self._request(day)
            if request is not None:
                self.seen_run_keys.add(request.run_key)
                self._retrain(day, request.tags, record)
            self._promotion(day, record)
        return record

    def _may_bootstrap(self, day: dt.date) -> bool:
        # A first model that fails the gate is retried after the cooldown, with more data.
        last = self.last_bootstrap
        return last is None or (day - last).days >= max(1, self.settings.triggers.cooldown_days)

    def _events(self, day: dt.date) -> list[str]:
        idx = (day - self.settings.partitions.start_date).days
        events = []
        for s in simulated_scenarios(self.settings):
            if s.start_day == idx:
                events.append(f"{s.name} starts")
            if s.end_day is not None and s.end_day + 1 == idx:
                events.append(f"{s.name} ends")
        return events

    def close(self) -> None:
        self._stack.close()

    def ledger(self, days: list[dt.date]) -> list[dict]:
        """The forgetting-ledger entries eval_report wrote on ``days`` (a day without an
        evaluation, or one written before the ledger existed, has none)."""
        out = []
        for key, frame in sorted(self.lake.read_many("eval_report", [d.isoformat() for d in days]).items()):
            if frame.height and "ledger" in frame.columns and frame["ledger"][0]:
                out += json.loads(frame["ledger"][0])
        return out

    def golden_accuracies(self) -> list[float]:
        """Golden-set accuracy of each successive champion, in promotion order."""
        out = []
        events = self.instance.fetch_materializations(AssetKey("champion"), limit=1000).records
        for rec in sorted(events, key=lambda r: r.timestamp):
            meta = rec.asset_materialization.metadata
            if meta.get("moved") and meta["moved"].value:
                evaluation = self.registry.version(int(meta["to"].value)).evaluation
                if evaluation is not None:
                    out.append(evaluation.golden_accuracy)
        return out


def cron_ticks(cron: str, day: dt.date) -> list[dt.datetime]:
    """The schedule's tick times that fall within ``day`` (UTC)."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)
    ticks = []
    for tick in cron_string_iterator(start.timestamp() - 1, cron, "UTC"):
        if tick.timestamp() >= end_of_day(day).timestamp():
            return ticks
        ticks.append(tick)
    return ticks


def run_replay(settings: Settings, home: CtHome, days: int, *, policy: str | None = None,
               auto_approve: bool = False, progress: Callable[[int, int, dict], None] | None = None,
               log: Callable[[str], None] = lambda _: None, start: dt.date | None = None,
               served: ServedTraffic | None = None) -> ReplayResult:
    """Replay ``days`` days from ``start`` (default: the first partition); with ``served``,
    each day's traffic goes through that running `ct serve` (demo/served_traffic.py)."""
    settings = with_policy(settings, policy or settings.triggers.policy)
    replay = Replay(settings, home, auto_approve=auto_approve, log=log, served=served)
    try:
        records = []
        first = start or settings.partitions.start_date
        for i in range(days):
            day = first + dt.timedelta(days=i)
            records.append(replay.run_day(day))
            if progress:
                progress(i + 1, days, records[-1])
        return ReplayResult(settings.triggers.policy, records, replay.golden_accuracies(),
                            drift_start_day(settings), replay.failed,
                            replay.ledger([first + dt.timedelta(days=i) for i in range(days)]))
    finally:
        replay.close()
