"""Evaluation: eval_report (challenger vs champion, and the gate) -> shadow_report, and
canary_report (the served canary arm against the champion arm, per day).

The gate and the shadow are blocking checks, so a failing challenger stops the chain
inside the run. The gate's verdict is also written to the registry as a typed record
(``registry.records.EvalRecord``) that promotion reads. A canary that fails in production
is withdrawn by canary_report itself (the challenger alias is deleted and the move tagged),
the same day its served rows land.
"""

import json
from collections.abc import Mapping

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    BackfillPolicy,
    MetadataValue,
    Output,
    asset,
)

from ct_assets.core import markdown
from ct_assets.core.settings import Settings
from ct_assets.core.time import day_of, days_between
from ct_assets.evaluation.canary import FAILED, PASSED, blocked_report, canary_compare, canary_counts
from ct_assets.evaluation.challenger import concept_changes, evaluate_challenger
from ct_assets.evaluation.ledger import build_ledger, ledger_markdown, trained_rows_by_label, write_ledger
from ct_assets.evaluation.resources import GoldenSetResource
from ct_assets.evaluation.shadow import served_shadow_pairs, shadow_compare, shadow_compare_served, shadow_traffic
from ct_assets.lake.resources import Lake
from ct_assets.orchestration.partitions import only_partition, single_row
from ct_assets.orchestration.per_partition import DayCheck, attach_day_metadata, day_checks, failed_checks_of_run
from ct_assets.orchestration.run_tags import tag_run_story
from ct_assets.orchestration.state import StateDirs
from ct_assets.registry.records import EvalRecord
from ct_assets.registry.resources import ModelRegistryResource
from ct_assets.registry.runs import RunLog, metric_name
from ct_assets.training.window import SPLIT, dataset_window

GROUP = "model"


def build_evaluation_assets(settings: Settings, partitions_def, automation=None) -> list:
    labels = list(settings.labels)
    auto = automation or {}

    @asset(
        partitions_def=partitions_def,
        group_name=GROUP,
        io_manager_key="lake_io",
        check_specs=[AssetCheckSpec("promotion_gate", asset="eval_report", blocking=True, partitions_def=partitions_def,
                                    description="challenger beats champion, no forgetting, no class collapse")],
        automation_condition=auto.get("eval_report"),
    )
    def eval_report(
        context: AssetExecutionContext,
        lora_adapter: Mapping[str, pl.DataFrame],
        training_dataset: Mapping[str, pl.DataFrame],
        registry: ModelRegistryResource,
        golden: GoldenSetResource,
        state: StateDirs,
        lake: Lake,
    ):
        """Challenger vs champion on the golden set and the recent holdout, and the gate."""
        tag_run_story(context)
        key = only_partition(context)
        adapter = single_row(lora_adapter, key, "lora_adapter")
        version = adapter["version"]
        holdout = training_dataset[key].filter(pl.col(SPLIT) == "holdout")
        mode, window_start = dataset_window(training_dataset[key], registry.window_of(version)[0].isoformat())
        gold = golden.load()
        champion = registry.champion_version()
        # Concept changes the challenger was trained on: read from the lake, not as an asset
        # input, so a day whose drift_report is missing does not hold the evaluation back
        # (it is listed instead, and nothing is left out for it).
        start, end = registry.window_of(version)
        window_keys = [d.isoformat() for d in days_between(start, end)]
        changes = concept_changes({k: f.row(0, named=True) for k, f in lake.read_many("drift_report", window_keys).items()
                                   if f.height}, window_keys)
        if changes.unattributed:
            context.log.warning(f"eval_report[{key}]: concept_shift flagged on {', '.join(changes.unattributed)} "
                                "but the drift_report rows name no class: no golden class was left out for them")
        outcome = evaluate_challenger(
            registry.predictor(version),
            registry.predictor(champion) if champion is not None else None,
            holdout_texts=holdout["text"].to_list(), holdout_labels=holdout["label"].to_list(),
            golden_texts=gold.texts, golden_labels=gold.labels, golden_slices=gold.slices,
            labels=labels, gate_settings=settings.gate,
            title=f"Challenger v{version} as of {key}",
            challenger_name=f"v{version}", champion_name=f"v{champion}" if champion is not None else None,
            seed=day_of(key).toordinal(),
            changed_classes=changes.classes, concept_evidence=changes.evidence,
        )
        d, inp = outcome.decision, outcome.gate_input
        # Both models were just scored on this golden version; if the champion's own
        # evaluation used another one, its recorded golden accuracy is stale, and the gate
        # used the fresh score, not that one.
        champion_record = registry.version(champion).evaluation if champion is not None else None
        rescored = champion_record is not None and champion_record.golden_sha256 != gold.sha256
        registry.registry.record_evaluation(version, EvalRecord(
            passed=d.passed, reasons=tuple(d.reasons), champion=champion,
            golden_accuracy=inp.challenger_golden["accuracy"],
            calibration_json=outcome.calibration.to_json() if outcome.calibration is not None else None,
            golden_sha256=gold.sha256, golden_rows=len(gold.rows),
        ))
        run = RunLog(registry.registry, adapter["mlflow_run_id"])
        out_dir = state.reports_dir() / "eval" / key
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "eval_report.md").write_text(outcome.markdown, encoding="utf-8")
        (out_dir / "eval_recall.png").write_bytes(outcome.png)
        ledger = build_ledger(version=version, partition=key, golden_sha256=gold.sha256,
                              challenger_golden=inp.challenger_golden, champion_golden=inp.champion_golden,
                              slices=outcome.slices, changed_classes=changes.classes,
                              trained_rows=trained_rows_by_label(training_dataset[key]))
        write_ledger(ledger, out_dir)
        run.artifacts(str(out_dir), "eval")
        run.metrics({f"eval_{split_name}_{metric}": m[metric]
                     for split_name, m in (("holdout", inp.challenger_holdout), ("golden", inp.challenger_golden))
                     for metric in ("accuracy", "macro_f1", "ece") if m.get(metric) is not None})
        # The forgetting ledger: golden accuracy per label and per slice, one entry per version.
        run.metrics({**{metric_name("golden_recall", label): v
                        for label, v in inp.challenger_golden["per_class_recall"].items() if v is not None},
                     **{metric_name("golden_slice_accuracy", s["slice"]): s["challenger"] for s in outcome.slices}})
        row = {
            "partition": key, "version": version, "champion_version": champion, "gate_passed": d.passed,
            "reasons": "; ".join(d.reasons),
            "holdout_accuracy": inp.challenger_holdout["accuracy"],
            "golden_accuracy": inp.challenger_golden["accuracy"],
            "champion_holdout_accuracy": inp.champion_holdout["accuracy"] if inp.champion_holdout else None,
            "champion_golden_accuracy": inp.champion_golden["accuracy"] if inp.champion_golden else None,
            "holdout_rows": holdout.height,
            "changed_classes": json.dumps(sorted(changes.classes)),
            # training.window_mode and the first day of the window the challenger trained on.
            "window_mode": mode, "window_start": window_start,
            # The forgetting ledger (evaluation/ledger.py), so the timeline can line up versions.
            "ledger": json.dumps(ledger, sort_keys=True),
        }
        yield Output({key: pl.DataFrame([row])}, metadata={
            "report": MetadataValue.md(outcome.markdown),
            "gate": d.summary(),
            "model_version": MetadataValue.text(str(version)),
            "champion_version": MetadataValue.text(str(champion)),
            "holdout_accuracy": inp.challenger_holdout["accuracy"],
            "golden_accuracy": inp.challenger_golden["accuracy"],
            "golden_set": MetadataValue.json({**gold.version, "champion_rescored": rescored}),
            "golden_rows": len(gold.rows),
            "golden_sha256": gold.sha256,
            "concept_changes": MetadataValue.json(changes.to_metadata()),
            "forgetting_ledger": MetadataValue.md(ledger_markdown(ledger)),
        })
        yield AssetCheckResult(
            check_name="promotion_gate", passed=d.passed, severity=AssetCheckSeverity.ERROR,
            description=d.summary(),
            metadata={"reasons": MetadataValue.json(d.reasons), "checks": MetadataValue.json(d.checks),
                      "not_judged": MetadataValue.json(d.not_judged), "notes": MetadataValue.json(d.notes),
                      "bootstrap": MetadataValue.json(list(inp.bootstrap) if inp.bootstrap else None)},
        )

    @asset(
        partitions_def=partitions_def,
        group_name=GROUP,
        io_manager_key="lake_io",
        deps=["eval_report"],
        check_specs=[AssetCheckSpec(
            "shadow_within_policy", asset="shadow_report", blocking=True, partitions_def=partitions_def,
            description=f"on the day's traffic the challenger agrees with the champion on >= "
                        f"{settings.promotion.min_shadow_agreement:.0%} of rows and loses at most "
                        f"{settings.promotion.max_shadow_accuracy_drop:.0%} accuracy where labels are known")],
        automation_condition=auto.get("shadow_report"),
    )
    def shadow_report(
        context: AssetExecutionContext,
        validated_window: Mapping[str, pl.DataFrame],
        registry: ModelRegistryResource,
    ):
        """The challenger beside the champion on the day's traffic."""
        tag_run_story(context)
        key = only_partition(context)
        challenger = registry.alias_version("challenger")
        champion = registry.champion_version()
        row = {"partition": key, "challenger_version": challenger, "champion_version": champion}
        if challenger is None or challenger == champion or champion is None:
            note = ("no challenger" if challenger is None else "challenger is already champion"
                    if challenger == champion else "no champion yet: nothing to shadow against")
            row.update({"passed": challenger is not None, "note": note, "counts": False})
            report = {}
        else:
            _, end = registry.window_of(challenger)
            policy = {"min_agreement": settings.promotion.min_shadow_agreement,
                      "max_accuracy_drop": settings.promotion.max_shadow_accuracy_drop}
            # What users sent, answered by the deployed models, when ct serve mirrored it;
            # else both models offline on the day's texts.
            pairs = served_shadow_pairs(validated_window[key], day_of(key), champion=champion, challenger=challenger)
            if pairs.height:
                report = shadow_compare_served(pairs, **policy)
            else:
                texts, truth = shadow_traffic(validated_window[key], day_of(key))
                report = shadow_compare(registry.predictor(challenger), registry.predictor(champion), texts, truth,
                                        **policy)
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
            **({"agreement": report["agreement"], "source": report["source"],
                "served_pairs": report.get("served_pairs", 0)} if report else {}),
        })
        # With shadow_days = 0 the shadow informs but does not gate: WARN does not block.
        severity = AssetCheckSeverity.ERROR if settings.promotion.shadow_days > 0 else AssetCheckSeverity.WARN
        yield AssetCheckResult(check_name="shadow_within_policy", passed=bool(row["passed"]),
                               severity=severity, metadata={"note": row.get("note", "")})

    return [eval_report, shadow_report, _canary_report_asset(settings, partitions_def, auto)]


def _canary_report_asset(settings: Settings, partitions_def, auto: Mapping):
    promotion = settings.promotion

    @asset(
        partitions_def=partitions_def,
        group_name=GROUP,
        io_manager_key="lake_io",
        # Like the data followers it runs beside: a late day, or a range, in one run, day by day.
        backfill_policy=BackfillPolicy.single_run(),
        check_specs=[AssetCheckSpec(
            "canary_within_policy", asset="canary_report", blocking=True, partitions_def=partitions_def,
            description=f"on the day's served traffic the canary arm's accuracy (where feedback arrived) is at most "
                        f"{promotion.max_canary_accuracy_drop:.0%} below the champion arm's; a failure withdraws "
                        "the challenger")],
        automation_condition=auto.get("canary_report"),
    )
    def canary_report(context: AssetExecutionContext, validated_window: Mapping[str, pl.DataFrame],
                      registry: ModelRegistryResource):
        """The canary arm beside the champion arm on the day's served traffic."""
        tag_run_story(context)
        blocked = failed_checks_of_run(context, "validated_window")
        frames, day_metadata, checks = {}, {}, {}
        for key in context.partition_keys:
            # Re-read per day: a withdrawal on an earlier day of the range changes the candidate.
            challenger, champion = registry.alias_version("challenger"), registry.champion_version()
            waiting = challenger if challenger is not None and challenger != champion else None
            day = day_of(key)
            report = (blocked_report(day, f"validated_window failed {', '.join(blocked[key])} for {key}")
                      if key in blocked else
                      canary_compare(validated_window[key], day, challenger=waiting,
                                     max_accuracy_drop=promotion.max_canary_accuracy_drop))
            end = registry.window_of(waiting)[1] if waiting is not None else None
            row = {**report.row(), "challenger_version": challenger, "champion_version": champion,
                   "passed": report.verdict == PASSED, "counts": canary_counts(report, challenger=waiting, window_end=end),
                   "withdrawn": False, "withdrawn_from": None, "withdrawn_to": None, "withdrawn_reason": ""}
            # A failure of a version that is no longer the candidate (withdrawn, or replaced
            # since) is reported, but neither withdraws nor fails the check: it would block a newer one.
            failed = report.verdict == FAILED and waiting is not None and report.canary_version == waiting
            if failed:
                # Withdrawn on any failing day, inside its window or not: the canary is answering
                # users now, and worse. Only passes after the window count towards canary_days.
                reason = f"canary_report[{key}]: {report.reason}"
                move = registry.registry.withdraw_challenger(waiting, reason=reason, by="canary_report")
                row.update({"withdrawn": True, "withdrawn_from": move.from_version, "withdrawn_to": move.to_version,
                            "withdrawn_reason": reason})
                context.log.warning(f"canary_report[{key}]: challenger v{move.from_version} withdrawn ({reason})")
            frames[key] = pl.DataFrame([row])
            day_metadata[key] = _canary_metadata(row)
            checks[key] = DayCheck(not failed, {"verdict": report.verdict, "note": report.reason,
                                                "withdrawn": row["withdrawn"]}, report.reason)
        attach_day_metadata(context, day_metadata)
        yield Output(frames)
        # With canary_days = 0 the canary informs (and still withdraws) but does not gate: WARN.
        severity = AssetCheckSeverity.ERROR if promotion.canary_days > 0 else AssetCheckSeverity.WARN
        yield from day_checks(context, "canary_report", "canary_within_policy", checks, severity)

    return canary_report


def _canary_metadata(row: dict) -> dict:
    arms = [{"arm": arm, **{k[len(arm) + 1:]: v for k, v in row.items() if k.startswith(f"{arm}_")}}
            for arm in ("champion", "canary")]
    return {
        "verdict": row["verdict"],
        "reason": row["reason"],
        "canary_version": MetadataValue.text(str(row["canary_version"])),
        "champion_version": MetadataValue.text(str(row["champion_version"])),
        "agreement": MetadataValue.text(str(row["agreement"])),
        "counts": row["counts"],
        "arms": MetadataValue.md(markdown.table(arms, ["arm", "versions", "rows", "labelled", "accuracy",
                                                       "latency_p50_ms", "latency_p99_ms"])),
        "withdrawn": MetadataValue.json({k: row[k] for k in ("withdrawn", "withdrawn_from", "withdrawn_to",
                                                             "withdrawn_reason")}),
    }
