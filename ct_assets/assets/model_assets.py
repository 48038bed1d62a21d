"""The model half: training_dataset -> lora_adapter -> eval_report -> shadow_report -> champion.

Thin wrappers over ``ct_assets.ml``. Each is daily "as of d" and runs for the days a
trigger (or a person) asks for: retraining is not daily. The gate and the shadow are
blocking checks, so a failing challenger stops the chain inside the run.
"""

import datetime as dt
import json
import shutil
from collections.abc import Mapping

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    Backoff,
    MetadataValue,
    Output,
    RetryPolicy,
    TimeWindowPartitionMapping,
    asset,
)

from ct_assets import markdown
from ct_assets.data.pit import labels_as_of
from ct_assets.data.simulator import load_golden
from ct_assets.ml.evaluation import evaluate_challenger
from ct_assets.ml.fit import LoraParams, fit_adapter
from ct_assets.ml.promotion import PromotionInput, promotion_blockers
from ct_assets.ml.shadow import shadow_compare
from ct_assets.ml.train import TrainConfig
from ct_assets.ml.windows import build_training_set, golden_overlap, normalize_text
from ct_assets.partitions import day_of
from ct_assets.resources.base_model import BaseModelResource
from ct_assets.resources.lake import Lake
from ct_assets.resources.registry import CALIBRATION_TAG, ModelRegistryResource
from ct_assets.resources.state import StateDirs
from ct_assets.settings import Settings

GROUP = "model"
# How far back the replay pool reaches before the window (days).
REPLAY_LOOKBACK_DAYS = 90
SPLIT = "_split"


def _golden() -> tuple[list[dict], set[str], set[str]]:
    rows = load_golden()
    return rows, {r["event_id"] for r in rows}, {normalize_text(r["text"]) for r in rows}


def _only(context: AssetExecutionContext) -> str:
    # Model assets run one partition per run (a multi-run backfill): each day is its own
    # training, with its own MLflow run and registered version.
    keys = context.partition_keys
    if len(keys) != 1:
        raise ValueError(f"{context.asset_key.to_user_string()} runs one partition per run, got {keys}")
    return keys[0]


def _single(frames: Mapping[str, pl.DataFrame], key: str, asset: str) -> dict:
    if key not in frames or frames[key].height == 0:
        raise ValueError(f"{asset}[{key}] is missing: materialize it first")
    return frames[key].to_dicts()[0]


def build_model_assets(settings: Settings, partitions_def, automation=None) -> list:
    labels = list(settings.labels)
    tr = settings.training
    auto = automation or {}

    @asset(
        partitions_def=partitions_def,
        group_name=GROUP,
        io_manager_key="lake_io",
        ins={
            "validated_window": AssetIn(
                partition_mapping=TimeWindowPartitionMapping(
                    start_offset=-(tr.window_days - 1), end_offset=0, allow_nonexistent_upstream_partitions=True
                ),
                metadata={"allow_missing_partitions": True},
            )
        },
        check_specs=[
            AssetCheckSpec("no_golden_leakage", asset="training_dataset", blocking=True,
                           description="no golden-set row is in any split"),
            AssetCheckSpec("minimum_size", asset="training_dataset", blocking=True,
                           description=f"train rows >= training.min_rows ({tr.min_rows})"),
        ],
        automation_condition=auto.get("training_dataset"),
    )
    def training_dataset(context: AssetExecutionContext, validated_window: Mapping[str, pl.DataFrame], lake: Lake):
        """Train, validation and holdout rows as of d: the sliding window plus replay."""
        key = _only(context)
        as_of = day_of(key)
        window_start = as_of - dt.timedelta(days=tr.window_days - 1)
        first = max(settings.partitions.start_date, window_start - dt.timedelta(days=REPLAY_LOOKBACK_DAYS))
        pool_days = [first + dt.timedelta(days=i) for i in range((window_start - first).days)]
        pool = lake.read_many("validated_window", [d.isoformat() for d in pool_days])
        in_window = {k: f for k, f in validated_window.items() if day_of(k) >= window_start}
        _, golden_ids, golden_texts = _golden()
        ts = build_training_set(
            in_window,
            as_of=as_of,
            window_days=tr.window_days,
            replay_pool=pl.concat(list(pool.values()), how="diagonal_relaxed") if pool else pl.DataFrame(),
            replay_fraction=tr.replay_fraction,
            val_fraction=tr.val_fraction,
            holdout_days=tr.holdout_days,
            golden_ids=golden_ids,
            golden_texts=golden_texts,
            seed=tr.seed,
        )
        frame = pl.concat([
            ts.train.with_columns(pl.lit("train").alias(SPLIT)),
            ts.val.with_columns(pl.lit("val").alias(SPLIT)),
            ts.holdout.with_columns(pl.lit("holdout").alias(SPLIT)),
        ], how="diagonal_relaxed")
        stats = ts.stats
        yield Output({key: frame}, metadata={
            "rows": frame.height,
            "train_rows": ts.train.height,
            "val_rows": ts.val.height,
            "holdout_rows": ts.holdout.height,
            "replay_rows": stats["replay_rows"],
            "replay_share": stats["replay_share"],
            "window": f"{stats['window']['start']}..{stats['window']['end']}",
            "rows_per_day": MetadataValue.md(markdown.counts({str(k): v for k, v in stats["rows_per_day"].items()}, "day")),
            "rows_per_label": MetadataValue.md(markdown.counts(stats["rows_per_label"], "label")),
            "golden_rows_removed": stats["leaked_removed"],
        })
        overlap = golden_overlap(frame, golden_ids, golden_texts)
        yield AssetCheckResult(check_name="no_golden_leakage", passed=overlap == 0, severity=AssetCheckSeverity.ERROR,
                               metadata={"golden_rows_in_splits": overlap})
        yield AssetCheckResult(check_name="minimum_size", passed=ts.train.height >= tr.min_rows,
                               severity=AssetCheckSeverity.ERROR,
                               metadata={"train_rows": ts.train.height, "min_rows": tr.min_rows})

    @asset(
        partitions_def=partitions_def,
        group_name=GROUP,
        io_manager_key="lake_io",
        # Spot preemption, a flaky MLflow: retried, resuming from the last checkpoint.
        retry_policy=RetryPolicy(max_retries=2, delay=5, backoff=Backoff.EXPONENTIAL),
        pool="training",
        op_tags={"ct/training": "true"},
        check_specs=[
            AssetCheckSpec("finite_loss", asset="lora_adapter", blocking=True),
            AssetCheckSpec("adapter_size_ratio", asset="lora_adapter",
                           description="adapter bytes are a small fraction of the base's"),
        ],
        automation_condition=auto.get("lora_adapter"),
        freshness_policy=auto.get("model_freshness"),
    )
    def lora_adapter(
        context: AssetExecutionContext,
        training_dataset: Mapping[str, pl.DataFrame],
        base_model: BaseModelResource,
        registry: ModelRegistryResource,
        state: StateDirs,
    ):
        """A LoRA adapter on the frozen base, registered in MLflow with alias challenger."""
        key = _only(context)
        data = training_dataset[key]
        split = {name: data.filter(pl.col(SPLIT) == name) for name in ("train", "val", "holdout")}
        replay = split["train"].filter(pl.col("_origin") == "replay")
        reg = registry.registry
        champion = registry.champion_version()
        champion_dir = None
        if champion is not None and (tr.warm_start or tr.ewc_lambda > 0):
            champion_dir = registry.adapter_dir(champion)
        # The root run id survives Dagster's retries and re-execution from failure, so a
        # killed run resumes from its checkpoint; a new run of the same day starts fresh.
        root_run = context.run.tags.get("dagster/root_run_id", context.run_id)
        ckpt = state.checkpoints_dir("lora_adapter", key, root_run)
        as_of = day_of(key)
        window = ((as_of - dt.timedelta(days=tr.window_days - 1)).isoformat(), key)
        run_id = reg.create_run(run_name=f"lora_adapter-{key}", tags={
            "ct.partition": key, "dagster.run_id": context.run_id,
            "ct.trigger": context.run.tags.get("ct/trigger", "manual"),
            "ct.reason": context.run.tags.get("ct/reason", "materialized by hand"),
        })
        client = reg.client
        config = TrainConfig.from_settings(tr)
        for name, value in {**config.__dict__, "lora_r": tr.lora.r, "lora_alpha": tr.lora.alpha,
                            "lora_dropout": tr.lora.dropout, "warm_start": tr.warm_start,
                            "window": f"{window[0]}..{window[1]}", "base": base_model.model_id}.items():
            client.log_param(run_id, name, value)

        def on_step(info) -> None:
            client.log_metric(run_id, "train_loss", info.loss, step=info.step)
            if info.val_loss is not None:
                client.log_metric(run_id, "val_loss", info.val_loss, step=info.step)
                client.log_metric(run_id, "val_accuracy", info.val_accuracy, step=info.step)
                context.log.info(
                    f"step {info.step}/{info.total_steps} epoch {info.epoch} loss {info.loss:.4f} "
                    f"val_loss {info.val_loss:.4f} val_acc {info.val_accuracy:.3f} ({info.samples_per_second:.0f} samples/s)"
                )

        try:
            fit = fit_adapter(
                train=split["train"], val=split["val"], replay=replay, labels=labels,
                base=base_model.spec(),
                lora=LoraParams(tr.lora.r, tr.lora.alpha, tr.lora.dropout, tr.lora.target_modules),
                config=config, min_rows=tr.min_rows, checkpoint_dir=ckpt, out_dir=ckpt / "adapter",
                manifest_extra={
                    "partition": key,
                    "window": {"start": window[0], "end": window[1]},
                    "rows_per_day": {str(d): n for d, n in data.group_by("_day").len().iter_rows()},
                    "replay_share": round(replay.height / max(1, split["train"].height + split["val"].height), 4),
                    "warm_start_from": champion if champion_dir is not None else None,
                },
                champion_adapter=champion_dir, warm_start=tr.warm_start, on_step=on_step,
            )
            r = fit.result
            metrics = {"final_train_loss": r.final_train_loss, "samples_per_second": r.samples_per_second,
                       "tokens_per_second": r.tokens_per_second, "train_seconds": r.train_seconds,
                       "steps": r.steps, "adapter_bytes": fit.adapter.bytes, "size_ratio": fit.size_ratio,
                       "trainable_params": fit.trainable_params}
            if r.best_val_metric is not None:
                metrics["best_val_loss"] = r.best_val_metric
            for name, value in metrics.items():
                client.log_metric(run_id, name, float(value))
            info = reg.register_adapter(run_id, fit.adapter.directory, tags={
                "ct.partition": key, "ct.window_start": window[0], "ct.window_end": window[1],
                "ct.base_hash": fit.manifest["base"]["hash"], "ct.run_id": context.run_id,
                "ct.trigger": context.run.tags.get("ct/trigger", "manual"),
            })
        except BaseException:
            # Whatever failed (training, NaN loss, MLflow), the run says so; nothing was aliased.
            client.set_terminated(run_id, "FAILED")
            raise
        client.set_terminated(run_id, "FINISHED")
        shutil.rmtree(ckpt, ignore_errors=True)  # registered: nothing left to resume
        row = {"partition": key, "version": info.version, "mlflow_run_id": run_id, "window_start": window[0],
               "window_end": window[1], "resumed_from_step": r.resumed_from_step, **metrics}
        yield Output({key: pl.DataFrame([row])}, metadata={
            "model_version": MetadataValue.text(str(info.version)),
            "mlflow_run_id": run_id,
            "trainable_params": fit.trainable_params,
            "adapter_bytes": fit.adapter.bytes,
            "adapter_to_base_bytes": round(fit.size_ratio, 6),
            "training_seconds": round(r.train_seconds, 2),
            "samples_per_second": round(r.samples_per_second, 1),
            "steps": r.steps,
            "stopped_early": r.stopped_early,
            "resumed_from_step": r.resumed_from_step,
            "window": f"{window[0]}..{window[1]}",
            "manifest": MetadataValue.json(fit.manifest),
        })
        yield AssetCheckResult(check_name="finite_loss", passed=bool(r.final_train_loss == r.final_train_loss),
                               severity=AssetCheckSeverity.ERROR, metadata={"final_train_loss": r.final_train_loss})
        yield AssetCheckResult(check_name="adapter_size_ratio", passed=fit.size_ratio < 0.1,
                               severity=AssetCheckSeverity.WARN, metadata={"ratio": fit.size_ratio})

    @asset(
        partitions_def=partitions_def,
        group_name=GROUP,
        io_manager_key="lake_io",
        check_specs=[AssetCheckSpec("promotion_gate", asset="eval_report", blocking=True,
                                    description="challenger beats champion, no forgetting, no class collapse")],
        automation_condition=auto.get("eval_report"),
    )
    def eval_report(
        context: AssetExecutionContext,
        lora_adapter: Mapping[str, pl.DataFrame],
        training_dataset: Mapping[str, pl.DataFrame],
        registry: ModelRegistryResource,
        state: StateDirs,
    ):
        """Challenger vs champion on the golden set and the recent holdout, and the gate."""
        key = _only(context)
        adapter = _single(lora_adapter, key, "lora_adapter")
        version = adapter["version"]
        holdout = training_dataset[key].filter(pl.col(SPLIT) == "holdout")
        golden, _, _ = _golden()
        champion = registry.champion_version()
        outcome = evaluate_challenger(
            registry.predictor(version),
            registry.predictor(champion) if champion is not None else None,
            holdout_texts=holdout["text"].to_list(), holdout_labels=holdout["label"].to_list(),
            golden_texts=[r["text"] for r in golden], golden_labels=[r["label"] for r in golden],
            labels=labels, gate_settings=settings.gate,
            title=f"Challenger v{version} as of {key}",
            challenger_name=f"v{version}", champion_name=f"v{champion}" if champion is not None else None,
            seed=day_of(key).toordinal(),
        )
        d, inp = outcome.decision, outcome.gate_input
        reg = registry.registry
        tags = {"ct.gate": "passed" if d.passed else "failed", "ct.gate.reasons": "; ".join(d.reasons)[:4000],
                "ct.gate.champion": str(champion), "ct.golden_accuracy": str(inp.challenger_golden["accuracy"])}
        if outcome.calibration is not None:
            tags[CALIBRATION_TAG] = outcome.calibration.to_json()
        for name, value in tags.items():
            reg.client.set_model_version_tag(reg.model_name, str(version), name, value)
        run_id = adapter["mlflow_run_id"]
        out_dir = state.reports_dir() / "eval" / key
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "eval_report.md").write_text(outcome.markdown, encoding="utf-8")
        (out_dir / "eval_recall.png").write_bytes(outcome.png)
        reg.client.log_artifacts(run_id, str(out_dir), "eval")
        for split_name, m in (("holdout", inp.challenger_holdout), ("golden", inp.challenger_golden)):
            for metric in ("accuracy", "macro_f1", "ece"):
                if m.get(metric) is not None:
                    reg.client.log_metric(run_id, f"eval_{split_name}_{metric}", float(m[metric]))
        row = {
            "partition": key, "version": version, "champion_version": champion, "gate_passed": d.passed,
            "reasons": "; ".join(d.reasons),
            "holdout_accuracy": inp.challenger_holdout["accuracy"],
            "golden_accuracy": inp.challenger_golden["accuracy"],
            "champion_holdout_accuracy": inp.champion_holdout["accuracy"] if inp.champion_holdout else None,
            "champion_golden_accuracy": inp.champion_golden["accuracy"] if inp.champion_golden else None,
            "holdout_rows": holdout.height,
        }
        yield Output({key: pl.DataFrame([row])}, metadata={
            "report": MetadataValue.md(outcome.markdown),
            "gate": d.summary(),
            "model_version": MetadataValue.text(str(version)),
            "champion_version": MetadataValue.text(str(champion)),
            "holdout_accuracy": inp.challenger_holdout["accuracy"],
            "golden_accuracy": inp.challenger_golden["accuracy"],
        })
        yield AssetCheckResult(
            check_name="promotion_gate", passed=d.passed, severity=AssetCheckSeverity.ERROR,
            description=d.summary(),
            metadata={"reasons": MetadataValue.json(d.reasons), "checks": MetadataValue.json(d.checks),
                      "bootstrap": MetadataValue.json(list(inp.bootstrap) if inp.bootstrap else None)},
        )

    @asset(
        partitions_def=partitions_def,
        group_name=GROUP,
        io_manager_key="lake_io",
        deps=["eval_report"],
        check_specs=[AssetCheckSpec("shadow_within_policy", asset="shadow_report", blocking=True)],
        automation_condition=auto.get("shadow_report"),
    )
    def shadow_report(
        context: AssetExecutionContext,
        validated_window: Mapping[str, pl.DataFrame],
        registry: ModelRegistryResource,
    ):
        """The challenger beside the champion on the day's traffic."""
        key = _only(context)
        challenger = registry.alias_version("challenger")
        champion = registry.champion_version()
        row = {"partition": key, "challenger_version": challenger, "champion_version": champion}
        if challenger is None or challenger == champion or champion is None:
            note = ("no challenger" if challenger is None else "challenger is already champion"
                    if challenger == champion else "no champion yet: nothing to shadow against")
            row.update({"passed": challenger is not None, "note": note, "counts": False})
            report = {}
        else:
            start, end = registry.window_of(challenger)
            traffic = labels_as_of(validated_window[key], day_of(key))
            report = shadow_compare(
                registry.predictor(challenger), registry.predictor(champion),
                traffic["text"].to_list(), traffic["label"].to_list(),
                min_agreement=settings.promotion.min_shadow_agreement,
                max_accuracy_drop=settings.promotion.max_shadow_accuracy_drop,
            )
            # Only traffic after the challenger's window counts towards shadow_days: its
            # own training days say nothing about how it does on new data.
            row.update({"passed": report["passed"], "note": "; ".join(report["reasons"]),
                        "counts": day_of(key) > end,
                        **{k: v for k, v in report.items() if not isinstance(v, (dict, list)) and k != "passed"},
                        "challenger_mix": json.dumps(report["challenger_mix"], sort_keys=True),
                        "champion_mix": json.dumps(report["champion_mix"], sort_keys=True)})
        yield Output({key: pl.DataFrame([row])}, metadata={
            "challenger_version": MetadataValue.text(str(challenger)),
            "champion_version": MetadataValue.text(str(champion)),
            "report": MetadataValue.md(markdown.table([{k: v for k, v in row.items()}])),
            **({"agreement": report["agreement"]} if report else {}),
        })
        # With shadow_days = 0 the shadow informs but does not gate: WARN does not block.
        severity = AssetCheckSeverity.ERROR if settings.promotion.shadow_days > 0 else AssetCheckSeverity.WARN
        yield AssetCheckResult(check_name="shadow_within_policy", passed=bool(row["passed"]),
                               severity=severity, metadata={"note": row.get("note", "")})

    @asset(
        partitions_def=partitions_def,
        group_name=GROUP,
        io_manager_key="lake_io",
        deps=["shadow_report"],
        automation_condition=auto.get("champion"),
        freshness_policy=auto.get("model_freshness"),
    )
    def champion(context: AssetExecutionContext, registry: ModelRegistryResource, lake: Lake):
        """The champion alias after this day's promotion decision (the audit trail)."""
        key = _only(context)
        challenger = registry.alias_version("challenger")
        current = registry.champion_version()
        reg = registry.registry
        shadow_passes = 0
        gate = approval = None
        if challenger is not None and challenger != current:
            tags = reg.version_info(challenger).tags
            gate = tags.get("ct.gate")
            approval = reg.approval(challenger)
            _, end = registry.window_of(challenger)
            days = [end + dt.timedelta(days=i + 1) for i in range((day_of(key) - end).days)]
            for frame in lake.read_many("shadow_report", [d.isoformat() for d in days]).values():
                r = frame.to_dicts()[0]
                shadow_passes += int(r["challenger_version"] == challenger and r["passed"] and r["counts"])
        blockers = promotion_blockers(PromotionInput(
            challenger=challenger, champion=current, gate=gate, shadow_passes=shadow_passes,
            shadow_days=settings.promotion.shadow_days, require_approval=settings.promotion.require_approval,
            approval=approval,
        ))
        row = {"partition": key, "from_version": current, "to_version": current, "moved": False,
               "reason": "", "approver": "", "blocked": "; ".join(blockers)}
        if not blockers:
            approver = (approval or {}).get("reviewer") or "automatic (require_approval off)"
            reason = (f"gate passed, {shadow_passes}/{settings.promotion.shadow_days} shadow days"
                      f"; trigger {context.run.tags.get('ct/trigger', 'manual')}")
            move = reg.promote(challenger, reason=reason, approver=approver,
                               require_approval=settings.promotion.require_approval)
            row.update({"to_version": move.to_version, "moved": move.from_version != move.to_version,
                        "reason": reason, "approver": approver})
            context.log.info(f"champion: v{move.from_version} -> v{move.to_version} ({reason}; by {approver})")
        else:
            context.log.info(f"champion stays v{current}: {row['blocked']}")
        yield Output({key: pl.DataFrame([row])}, metadata={
            "champion_version": MetadataValue.text(str(row["to_version"])),
            "from": MetadataValue.text(str(row["from_version"])),
            "to": MetadataValue.text(str(row["to_version"])),
            "moved": row["moved"],
            "reason": row["reason"] or "-",
            "approver": row["approver"] or "-",
            "blocked": row["blocked"] or "-",
        })

    return [training_dataset, lora_adapter, eval_report, shadow_report, champion]

