"""What the registry stores about a model version, as typed records (pure).

MLflow keeps version metadata as string tags. Every tag key lives here, next to the
record that reads it, so no asset, sensor or report parses tags on its own: they get a
``ModelVersionInfo`` with typed fields (its window, its trigger, its evaluation record).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

# The registered model every version of this CT_HOME belongs to (training, serving, the jobs).
MODEL_NAME = "ct_text_classifier"
CHALLENGER, CHAMPION, PREVIOUS = "challenger", "champion", "previous_champion"
STATUS, DIGEST, N_FILES = "ct.status", "ct.adapter_sha256", "ct.adapter_files"
PARTITION, WINDOW_START, WINDOW_END = "ct.partition", "ct.window_start", "ct.window_end"
TRIGGER, BASE_HASH, DAGSTER_RUN = "ct.trigger", "ct.base_hash", "ct.run_id"
GATE, GATE_REASONS, GATE_CHAMPION = "ct.gate", "ct.gate.reasons", "ct.gate.champion"
GOLDEN_ACCURACY, CALIBRATION = "ct.golden_accuracy", "ct.calibration"
GOLDEN_SHA256, GOLDEN_ROWS = "ct.golden_sha256", "ct.golden_rows"
ROLLED_BACK_TS, ROLLED_BACK_BY, ROLLED_BACK_REASON = "ct.rolled_back.ts", "ct.rolled_back.by", "ct.rolled_back.reason"
WITHDRAWN_TS, WITHDRAWN_BY, WITHDRAWN_REASON = "ct.withdrawn.ts", "ct.withdrawn.by", "ct.withdrawn.reason"
APPROVAL_KEYS = ("ts", "comment", "reviewer", "decision")  # write order: decision last
# MLflow tag values are limited to 5,000 characters (SQL store); reasons are cut to fit.
MAX_TAG_CHARS = 4000


@dataclass(frozen=True)
class EvalRecord:
    """The gate's verdict on a version, written by eval_report, read by promotion."""

    passed: bool
    reasons: tuple[str, ...]
    champion: int | None  # the champion it was compared with; None for a first model
    golden_accuracy: float
    calibration_json: str | None = None  # evaluation.calibration.Calibration, as JSON
    golden_sha256: str | None = None  # the golden set version the gate compared on
    golden_rows: int | None = None

    def to_tags(self) -> dict[str, str]:
        tags = {GATE: "passed" if self.passed else "failed",
                GATE_REASONS: "; ".join(self.reasons)[:MAX_TAG_CHARS],
                GATE_CHAMPION: "" if self.champion is None else str(self.champion),
                GOLDEN_ACCURACY: repr(float(self.golden_accuracy))}
        if self.calibration_json is not None:
            tags[CALIBRATION] = self.calibration_json
        if self.golden_sha256 is not None:
            tags[GOLDEN_SHA256], tags[GOLDEN_ROWS] = self.golden_sha256, str(self.golden_rows)
        return tags

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> "EvalRecord | None":
        if GATE not in tags:
            return None
        champion = tags.get(GATE_CHAMPION, "")
        reasons = tags.get(GATE_REASONS, "")
        return cls(passed=tags[GATE] == "passed", reasons=tuple(r for r in reasons.split("; ") if r),
                   champion=int(champion) if champion.isdigit() else None,
                   golden_accuracy=float(tags[GOLDEN_ACCURACY]), calibration_json=tags.get(CALIBRATION),
                   golden_sha256=tags.get(GOLDEN_SHA256),
                   golden_rows=int(tags[GOLDEN_ROWS]) if tags.get(GOLDEN_ROWS) else None)


@dataclass(frozen=True)
class ModelVersionInfo:
    version: int
    run_id: str | None
    source: str
    status: str  # MLflow's: READY / PENDING_REGISTRATION / FAILED_REGISTRATION
    aliases: tuple[str, ...]
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.tags.get(STATUS) == "complete"

    @property
    def window(self) -> tuple[dt.date, dt.date]:
        """The training window (first day, as-of day) the version learnt from."""
        try:
            return dt.date.fromisoformat(self.tags[WINDOW_START]), dt.date.fromisoformat(self.tags[WINDOW_END])
        except KeyError as err:
            raise KeyError(f"model version {self.version} has no {err.args[0]} tag: not registered by "
                           "lora_adapter") from None

    @property
    def trigger(self) -> str:
        return self.tags.get(TRIGGER, "manual")

    @property
    def evaluation(self) -> EvalRecord | None:
        return EvalRecord.from_tags(self.tags)

    @property
    def rolled_back(self) -> bool:
        return bool(self.tags.get(ROLLED_BACK_TS))

    @property
    def rollback(self) -> dict[str, str] | None:
        """{"ts", "by", "reason"} of the rollback away from this version; None if never rolled back."""
        return self._event(ROLLED_BACK_TS, ROLLED_BACK_BY, ROLLED_BACK_REASON)

    @property
    def withdrawal(self) -> dict[str, str] | None:
        """{"ts", "by", "reason"} of the challenger's withdrawal from this version; None if never."""
        return self._event(WITHDRAWN_TS, WITHDRAWN_BY, WITHDRAWN_REASON)

    def _event(self, ts: str, by: str, reason: str) -> dict[str, str] | None:
        if not self.tags.get(ts):
            return None
        return {"ts": self.tags[ts], "by": self.tags.get(by, ""), "reason": self.tags.get(reason, "")}


@dataclass(frozen=True)
class AliasMove:
    from_version: int | None  # the alias's version before; equals to_version when nothing moved
    to_version: int | None  # None: the alias was removed (withdraw_challenger)
    reason: str
    approver: str
    ts: str


# MLflow writes this {model_name, model_version} file into a model directory each time it
# resolves a models:/ URI to it, and with a local artifact store that directory is the
# stored version itself (mlflow.pyfunc.load_model("models:/m/1") does it). It is MLflow's
# note about the version, not part of it, so digests leave it out.
MLFLOW_NOTES = frozenset({"registered_model_meta"})


def hash_tree(root: Path) -> dict[str, str]:
    """{relative posix path: sha256} of every file under root, but MLFLOW_NOTES."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.relative_to(root).as_posix() not in MLFLOW_NOTES:
            with p.open("rb") as fh:
                out[p.relative_to(root).as_posix()] = hashlib.file_digest(fh, "sha256").hexdigest()
    return out


def tree_digest(hashes: dict[str, str]) -> str:
    lines = "".join(f"{k}\0{v}\n" for k, v in sorted(hashes.items()))
    return hashlib.sha256(lines.encode()).hexdigest()
