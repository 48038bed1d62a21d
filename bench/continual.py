"""One long CT replay on the pure-logic layer: the loop `make bench-quality` measures.

Day by day: the simulator writes the day's file, ``read_landing_day`` and ``split_rows``
(the validated_window rules) read it, ``drift_of_day`` judges it against the champion's
window, the trigger functions and their arbiter (``choose_request``: policy, cooldown,
priority) decide whether to retrain, ``plan_window`` / ``build_training_set`` build the
window plus replay, ``fit_adapter`` trains, ``evaluate_challenger`` runs the gate on the
holdout and the golden set (concept changes from the drift rows), and a passing
challenger becomes the champion. These are the functions the assets, sensors and the
training process call; what is left out is Dagster itself (runs, the lake, MLflow), which
`bench.quality` (20 days, through the real Definitions) still measures. That is what
makes 40-day streams in 12 variants fit in an hour on 2 CPU cores.

Accuracy on a day is scored on the rows of that day that ever get a label (the
simulator's ground truth arrives late; the score waits for it), for the CT champion and
for the static model (the first champion, never retrained). Every trained version's
golden accuracy and per-class recall is kept, promoted or not (the forgetting ledger).
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from ct_assets.core.home import resolve_path
from ct_assets.core.schema import DayObservation
from ct_assets.core.settings import Settings
from ct_assets.core.time import days_between, labels_as_of
from ct_assets.drift.daily import drift_of_day
from ct_assets.drift.reference import reference_days
from ct_assets.evaluation.challenger import CONCEPT_CLASS, CONCEPT_FLAG, concept_changes, evaluate_challenger
from ct_assets.evaluation.golden import load_golden
from ct_assets.ingest.contract import read_landing_day
from ct_assets.ingest.quality import split_rows
from ct_assets.registry.loader import predictor_from_dir
from ct_assets.sim.simulator import SimulatorConfig, Scenario, write_day
from ct_assets.training.base_model import BaseModelSpec
from ct_assets.training.change_window import plan_window
from ct_assets.training.fit import LoraParams, TooFewRowsError, fit_adapter
from ct_assets.training.loop import TrainConfig
from ct_assets.training.window import build_training_set
from ct_assets.triggers.policy import accuracy_request, choose_request, drift_request, schedule_request

# How far back the replay pool reaches (the asset's REPLAY_LOOKBACK_DAYS is longer than any stream here).
POOL_DAYS = 90
FISHER_FRACTION = 0.1


@dataclass
class Version:
    number: int
    day: str
    trigger: str
    reason: str
    promoted: bool
    gate: str
    blocked_reasons: list[str]
    golden_accuracy: float
    golden_recall: dict[str, float]
    holdout_accuracy: float
    train_seconds: float
    bytes_stored: int
    trainable_params: int
    window: dict
    replay_rows: int
    changed_classes: list[str] = field(default_factory=list)  # the gate left these out of forgetting
    replay_contradicted: dict | None = None


@dataclass
class StreamResult:
    days: list[dict] = field(default_factory=list)  # day, champion/static accuracy, verdict, trigger
    versions: list[Version] = field(default_factory=list)
    seconds: float = 0.0


class ContinualLoop:
    """The replay of one stream under one settings object (``settings.training`` carries
    the variant: window_mode, replay_fraction, ewc_lambda, method)."""

    def __init__(self, settings: Settings, work: Path, *, retrain_every: int | None = None,
                 bootstrap_day: int | None = None, device: str = "auto"):
        self.device = device
        self.s, self.work = settings, work
        self.labels = list(settings.labels)
        self.start = settings.partitions.start_date
        sim = settings.source.simulator
        self.sim = SimulatorConfig(
            labels=tuple(self.labels), seed=sim.seed, rows_per_day=sim.rows_per_day,
            same_day_label_share=sim.same_day_label_share, max_label_delay_days=sim.max_label_delay_days,
            never_labelled_share=sim.never_labelled_share,
            scenarios=tuple(Scenario(name=x.name, start_day=x.start_day, end_day=x.end_day, strength=x.strength,
                                     label=x.label) for x in sim.scenarios))
        self.golden = load_golden(resolve_path(settings.golden.path, work, "golden.path"))
        b = settings.training.base
        self.base = BaseModelSpec(kind=b.kind, name=b.name, model_id=b.model_id)
        # A forced cadence (the forgetting ablation) replaces the policy's triggers.
        self.retrain_every = retrain_every
        self.bootstrap_day = settings.training.window_days - 1 if bootstrap_day is None else bootstrap_day
        self.frames: dict[dt.date, pl.DataFrame] = {}
        self.quarantine: dict[dt.date, pl.DataFrame] = {}
        self.drift_rows: dict[str, dict] = {}
        self.observations: list[DayObservation] = []
        self.champion = self.static = None  # (Version, Predictor, directory, window)
        self.last_training_day: dt.date | None = None
        self.result = StreamResult()

    # -- data --------------------------------------------------------------------------
    def _land(self, day: dt.date) -> pl.DataFrame:
        landing = self.work / "landing"
        write_day(self.sim, self.start, day, landing)
        raw = read_landing_day(landing, day).frame
        q = self.s.quality
        split = split_rows(raw, day=day, labels=self.labels, max_text_chars=q.max_text_chars,
                           reject_text_chars=q.reject_text_chars, mask_emails=q.mask_emails, mask_phones=q.mask_phones)
        self.frames[day], self.quarantine[day] = split.clean, split.quarantine
        return split.clean

    def _accuracy(self, model, frame: pl.DataFrame) -> float | None:
        rows = frame.filter(pl.col("label").is_not_null())
        if model is None or rows.height == 0:
            return None
        predicted = model[1].predict(rows["text"].to_list()).labels
        return sum(p == y for p, y in zip(predicted, rows["label"].to_list())) / rows.height

    def _drift(self, day: dt.date) -> dict:
        window = self.champion[3] if self.champion else None
        ref_days, _ = reference_days(day, window, self.s.reference.days())
        frames = [self.frames[d] for d in ref_days if d in self.frames]
        current = labels_as_of(self.frames[day], day)
        reference = labels_as_of(pl.concat(frames, how="diagonal_relaxed") if frames else current.clear(), day)
        tg = self.s.triggers
        result = drift_of_day(reference, current, quarantine=self.quarantine[day], day=day,
                              labels=self.labels, drift=self.s.drift, k=tg.drift_k, n=tg.drift_n,
                              cache_dir=self.work / "drift_cache")
        known = current.filter(pl.col("label").is_not_null())
        measured = self._accuracy(self.champion, known) if known.height else None
        obs = DayObservation(day=day, scores=dict(result.scores), flags=dict(result.flags),
                             champion_accuracy=measured, champion_labelled_rows=known.height,
                             champion_estimated_accuracy=None, verdict=result.verdict,
                             thresholds=dict(result.thresholds))
        self.observations.append(obs)
        self.drift_rows[day.isoformat()] = {
            "verdict": result.verdict, CONCEPT_FLAG: bool(result.flags.get("concept_shift")),
            CONCEPT_CLASS: result.concept_detail.get("class"),
            "flags": [m for m, on in result.flags.items() if on]}
        return self.drift_rows[day.isoformat()]

    # -- decisions ---------------------------------------------------------------------
    def _request(self, day: dt.date):
        index = (day - self.start).days
        if self.champion is None:
            return ("bootstrap", "first model") if index >= self.bootstrap_day and self._may_bootstrap(day) else None
        if self.retrain_every is not None:
            due = self.last_training_day is None or (day - self.last_training_day).days >= self.retrain_every
            return ("cadence", f"every {self.retrain_every} day(s)") if due else None
        tg = self.s.triggers
        after = self.champion[3][1]
        candidates = [accuracy_request(self.observations, min_accuracy=tg.min_accuracy, use_estimated=False,
                                       today=day),
                      drift_request(self.observations, k=tg.drift_k, n=tg.drift_n, today=day, after=after)]
        if day.weekday() == 6:  # the weekly schedule (Sunday, as schedule_cron's default)
            candidates.append(schedule_request(day))
        chosen, _ = choose_request(candidates, policy=tg.policy, last_training_day=self.last_training_day,
                                   today=day, cooldown_days=tg.cooldown_days)
        return (chosen.trigger, chosen.reason) if chosen else None

    def _may_bootstrap(self, day: dt.date) -> bool:
        last = self.last_training_day
        return last is None or (day - last).days >= max(1, self.s.triggers.cooldown_days)

    def _training_set(self, day: dt.date, replay_fraction: float | None = None):
        tr = self.s.training
        start = day - dt.timedelta(days=tr.window_days - 1)
        window = {d.isoformat(): f for d, f in self.frames.items() if start <= d <= day}
        pool = {d.isoformat(): f for d, f in self.frames.items()
                if start - dt.timedelta(days=POOL_DAYS) <= d < start}
        verdicts = {d.isoformat(): self.drift_rows.get(d.isoformat(), {}).get("verdict")
                    for d in days_between(start, day)}
        plan = plan_window(window, pool, mode=tr.window_mode, as_of=day, window_days=tr.window_days,
                           holdout_days=tr.holdout_days, seed=tr.seed, verdicts=verdicts)
        return build_training_set(
            {dt.date.fromisoformat(k): f for k, f in plan.window.items()}, as_of=day, window_days=plan.window_days,
            replay_filter=plan.replay_filter, window_info=plan.info,
            replay_pool=pl.concat(list(plan.pool.values()), how="diagonal_relaxed") if plan.pool else pl.DataFrame(),
            replay_fraction=tr.replay_fraction if replay_fraction is None else replay_fraction,
            val_fraction=tr.val_fraction, holdout_days=tr.holdout_days, golden_ids=self.golden.ids,
            golden_texts=self.golden.matching_keys, seed=tr.seed)

    def _retrain(self, day: dt.date, trigger: str, reason: str) -> dict:
        tr, number = self.s.training, len(self.result.versions) + 1
        self.last_training_day = day
        ts = self._training_set(day)
        out = self.work / f"v{number}"
        replay = ts.train.filter(pl.col("_origin") == "replay")
        if tr.ewc_lambda > 0 and replay.height == 0:
            # EWC without replay (the ablation): the Fisher still needs old rows, so it is
            # estimated on the replay sample a 0.1 fraction would draw, none of it trained on.
            replay = self._training_set(day, replay_fraction=FISHER_FRACTION).train.filter(
                pl.col("_origin") == "replay")
        try:
            fit = fit_adapter(
                train=ts.train, val=ts.val, replay=replay,
                labels=self.labels, base=self.base,
                lora=LoraParams(tr.lora.r, tr.lora.alpha, tr.lora.dropout, tr.lora.target_modules),
                config=TrainConfig.from_settings(tr), min_rows=tr.min_rows, checkpoint_dir=self.work / f"ckpt{number}",
                out_dir=out, manifest_extra={"partition": day.isoformat()},
                champion_adapter=self.champion[2] if self.champion else None, warm_start=tr.warm_start,
                method=tr.method)
        except TooFewRowsError as exc:
            return {"trained": False, "why": str(exc)}
        shutil.rmtree(self.work / f"ckpt{number}", ignore_errors=True)
        model = predictor_from_dir(out, f"bench v{number}", max_length=tr.max_length, device=self.device)
        # The registered window (since_change: from the change point), as eval_report reads it.
        first = dt.date.fromisoformat(str(ts.stats["window"]["start"]))
        changes = concept_changes(self.drift_rows, [d.isoformat() for d in days_between(first, day)])
        hold = ts.holdout.filter(pl.col("label").is_not_null())
        outcome = evaluate_challenger(
            model, self.champion[1] if self.champion else None,
            holdout_texts=hold["text"].to_list(), holdout_labels=hold["label"].to_list(),
            golden_texts=self.golden.texts, golden_labels=self.golden.labels, golden_slices=self.golden.slices,
            labels=self.labels, gate_settings=self.s.gate, title=f"v{number}", challenger_name=f"v{number}",
            champion_name=f"v{self.champion[0].number}" if self.champion else None, seed=tr.seed,
            changed_classes=changes.classes, concept_evidence=changes.evidence)
        gold = outcome.gate_input.challenger_golden
        info = ts.stats["window"]
        version = Version(
            number=number, day=day.isoformat(), trigger=trigger, reason=reason, promoted=outcome.decision.passed,
            gate=outcome.decision.summary(), blocked_reasons=list(outcome.decision.reasons),
            golden_accuracy=gold["accuracy"], golden_recall=dict(gold["per_class_recall"]),
            holdout_accuracy=outcome.gate_input.challenger_holdout["accuracy"],
            train_seconds=fit.result.train_seconds, bytes_stored=fit.adapter.bytes,
            trainable_params=fit.trainable_params,
            window={"mode": info.get("mode", "fixed"), "start": str(info.get("start")), "end": str(info.get("end"))},
            replay_rows=ts.stats["replay_rows"], changed_classes=sorted(changes.classes),
            replay_contradicted=ts.stats.get("replay_contradicted"))
        self.result.versions.append(version)
        if version.promoted:
            champion_window = (dt.date.fromisoformat(version.window["start"]), day)
            self.champion = (version, model, out, champion_window)
            if self.static is None:
                self.static = self.champion
        return {"trained": True, "version": number, "promoted": version.promoted}

    # -- the loop ----------------------------------------------------------------------
    def run_day(self, day: dt.date) -> dict:
        frame = self._land(day)
        drift = self._drift(day)
        record = {"day": day.isoformat(), "index": (day - self.start).days, "verdict": drift["verdict"],
                  "drift_flags": drift["flags"], "champion": self.champion[0].number if self.champion else None,
                  "champion_accuracy": self._accuracy(self.champion, frame),
                  "static_accuracy": self._accuracy(self.static, frame)}
        request = self._request(day)
        if request is not None:
            record.update(trigger=request[0], reason=request[1], **self._retrain(day, *request))
        self.result.days.append(record)
        return record

    def run(self, days: int) -> StreamResult:
        started = time.perf_counter()
        for i in range(days):
            self.run_day(self.start + dt.timedelta(days=i))
        self.result.seconds = time.perf_counter() - started
        return self.result


def run_stream(settings: Settings, days: int, *, retrain_every: int | None = None,
               device: str = "auto") -> StreamResult:
    work = Path(tempfile.mkdtemp(prefix="ct-continual-"))
    try:
        return ContinualLoop(settings, work, retrain_every=retrain_every, device=device).run(days)
    finally:
        shutil.rmtree(work, ignore_errors=True)
