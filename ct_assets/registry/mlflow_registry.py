"""Adapter versions and aliases in the MLflow Model Registry.

Aliases: ``challenger`` (latest fully written candidate), ``champion`` (serving) and
``previous_champion`` (rollback target). Invariants this module keeps:
  * an alias only ever points at a version tagged ``ct.status=complete``, i.e. whose stored
    artifacts were read back and matched the local adapter file by file (sha256);
  * ``previous_champion != champion``: every alias write (promote, rollback and the
    challenger move of register_adapter) holds an exclusive inter-process flock, re-reads
    the aliases inside it, and orders its writes so that a crash between two of them
    cannot leave both aliases on one version;
  * rollback deletes ``previous_champion`` instead of pointing it at the rolled-back
    version, so a second rollback fails loudly rather than re-deploying the bad model;
    withdraw_challenger (a canary that failed in production) deletes ``challenger`` alike.

Each version is also an MLflow pyfunc model (registry.pyfunc): its MLmodel sits among the
adapter files and is hashed with them. Failure classification and the lock: registry.guards.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Literal

import mlflow.artifacts
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from ct_assets.registry.guards import (
    ArtifactVerificationError,
    RegistryError,
    RegistryUnavailableError,
    classify_failures,
    exclusive_lock,
    registry_lock,
)
from ct_assets.registry.records import (
    APPROVAL_KEYS,
    CHALLENGER,
    CHAMPION,
    DIGEST,
    MAX_TAG_CHARS,
    N_FILES,
    PREVIOUS,
    ROLLED_BACK_BY,
    ROLLED_BACK_REASON,
    ROLLED_BACK_TS,
    STATUS,
    WITHDRAWN_BY,
    WITHDRAWN_REASON,
    WITHDRAWN_TS,
    AliasMove,
    EvalRecord,
    ModelVersionInfo,
    hash_tree,
    tree_digest,
)

# Re-exported: callers import the errors and alias names from here.
__all__ = ["CHALLENGER", "CHAMPION", "PREVIOUS", "AdapterRegistry", "ArtifactVerificationError",
           "RegistryError", "RegistryUnavailableError", "hash_tree"]

_log = logging.getLogger(__name__)

ADAPTER_PATH = "adapter"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


class AdapterRegistry:
    def __init__(self, tracking_uri: str, artifact_root: str | None, model_name: str = "ct_text_classifier",
                 *, lock_path: str | Path | None = None, experiment_name: str = "ct_assets",
                 lock_timeout_s: float = 60.0, ready_timeout_s: float = 300.0) -> None:
        self.tracking_uri, self.artifact_root, self.model_name = tracking_uri, artifact_root, model_name
        self.experiment_name = experiment_name
        self.lock_timeout_s, self.ready_timeout_s = lock_timeout_s, ready_timeout_s
        sqlite = tracking_uri.startswith("sqlite:///")
        self._db = Path(tracking_uri.removeprefix("sqlite:///")) if sqlite else None
        # The lock must be shared by every process that writes aliases: next to the db.
        if lock_path is None and self._db is not None:
            lock_path = self._db.with_name(self._db.name + ".registry.lock")
        if lock_path is None:
            raise ValueError(f"lock_path is required for non-sqlite tracking URI {tracking_uri}")
        # A file, or guards.PG_ADVISORY_LOCK (writers on several machines: the server profile).
        self.lock_path = lock_path
        self._client: MlflowClient | None = None
        self._model_ready = False

    # -- plumbing -------------------------------------------------------------------------
    def guard(self, op: str):
        """Context manager: MLflow failures inside become RegistryError / RegistryUnavailableError."""
        return classify_failures(self.tracking_uri, op)

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            with self.guard("connect"):
                if self._db is not None:
                    # MLflow retries a failing sqlite engine ~10 times (~100 s of sleeps);
                    # probing first turns an unusable path into an immediate, clear error.
                    self._db.parent.mkdir(parents=True, exist_ok=True)
                    con = sqlite3.connect(self._db, timeout=10)
                    try:
                        con.execute("BEGIN IMMEDIATE")  # proves the file is writable
                        con.rollback()
                    finally:
                        con.close()
                if self._db is None:
                    client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
                else:
                    # Opening a new SQLite store migrates it, and MlflowClient() opens it: two processes
                    # at once collide on alembic's temp tables. Own lock file: we may hold the alias lock.
                    with exclusive_lock(self._db.with_name(self._db.name + ".init.lock"), self.lock_timeout_s):
                        client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
                        client._tracking_client.store  # noqa: B018 -- opening the store migrates it
                        client._get_registry_client().store  # noqa: B018
                self._client = client
        return self._client

    def _ensure_model(self) -> None:
        if self._model_ready:
            return
        with self.guard(f"ensure registered model {self.model_name}"):
            try:
                self.client.get_registered_model(self.model_name)
            except MlflowException as e:
                if e.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
                try:
                    self.client.create_registered_model(self.model_name)
                except MlflowException as e2:  # another process created it first
                    if e2.error_code != "RESOURCE_ALREADY_EXISTS":
                        raise
        self._model_ready = True

    def ensure_experiment(self) -> str:
        """Experiment id; created with artifact_location=artifact_root so artifacts stay in CT_HOME."""
        with self.guard(f"ensure experiment {self.experiment_name}"):
            exp = self.client.get_experiment_by_name(self.experiment_name)
            if exp is not None:
                # No artifact_root: a tracking server's own artifact store decides (server profile).
                if self.artifact_root is not None and exp.artifact_location.rstrip("/") != self.artifact_root.rstrip("/"):
                    _log.warning("experiment %s stores artifacts at %s, not %s", exp.name,
                                 exp.artifact_location, self.artifact_root)
                return exp.experiment_id
            try:
                return self.client.create_experiment(
                    self.experiment_name, artifact_location=self.artifact_root)
            except MlflowException as e:
                if e.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                return self.client.get_experiment_by_name(self.experiment_name).experiment_id

    def create_run(self, run_name: str | None = None, tags: dict | None = None) -> str:
        exp_id = self.ensure_experiment()
        with self.guard("create run"):
            tags = {k: str(v) for k, v in (tags or {}).items()}
            return self.client.create_run(exp_id, run_name=run_name, tags=tags).info.run_id

    def _lock(self):
        return registry_lock(self.lock_path, self.lock_timeout_s)

    def record_evaluation(self, version: int, record: EvalRecord) -> None:
        """The gate's verdict on ``version``, as typed tags (see registry.records)."""
        with self.guard(f"record evaluation of version {version}"):
            self._set_tags(version, record.to_tags())

    def _set_tags(self, version: int, tags: dict) -> None:
        for k, v in tags.items():
            self.client.set_model_version_tag(self.model_name, str(version), k, str(v))

    # -- reads ----------------------------------------------------------------------------
    def aliases(self) -> dict[str, int]:
        self._ensure_model()
        # get_registered_model().aliases instead of get_model_version_by_alias: a missing
        # alias comes back as INVALID_PARAMETER_VALUE there, indistinguishable from misuse.
        with self.guard("read aliases"):
            model = self.client.get_registered_model(self.model_name)
        return {alias: int(v) for alias, v in model.aliases.items()}

    def get_alias(self, alias: str) -> int | None:
        return self.aliases().get(alias)

    def version_info(self, version: int | str) -> ModelVersionInfo:
        self._ensure_model()
        with self.guard(f"read version {version}"):
            mv = self.client.get_model_version(self.model_name, str(version))
        return ModelVersionInfo(int(mv.version), mv.run_id, mv.source, str(mv.status),
                                tuple(mv.aliases or ()), dict(mv.tags or {}))

    def version_numbers(self) -> list[int]:
        """Every registered version, ascending."""
        self._ensure_model()
        with self.guard("list model versions"):
            return sorted(int(mv.version) for mv in self.client.search_model_versions(f"name='{self.model_name}'"))

    def _resolve(self, version_or_alias: int | str) -> ModelVersionInfo:
        if isinstance(version_or_alias, int) or str(version_or_alias).isdigit():
            return self.version_info(version_or_alias)
        version = self.get_alias(str(version_or_alias))
        if version is None:
            raise RegistryError(f"alias {version_or_alias!r} is not set on {self.model_name}")
        return self.version_info(version)

    # -- writes ---------------------------------------------------------------------------
    def _upload(self, run_id: str, adapter_dir: Path) -> str:
        """Log adapter_dir under the run's "adapter" artifacts; return their absolute URI."""
        with self.guard(f"log adapter artifacts for run {run_id}"):
            self.client.log_artifacts(run_id, str(adapter_dir), ADAPTER_PATH)
            return self.client.get_run(run_id).info.artifact_uri.rstrip("/") + "/" + ADAPTER_PATH

    def _download(self, source: str, dst: Path) -> Path:
        with self.guard(f"download {source}"):
            try:
                return Path(mlflow.artifacts.download_artifacts(
                    artifact_uri=source, dst_path=str(dst),
                    tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri))
            except FileNotFoundError as e:  # local store: nothing there; not an outage
                raise ArtifactVerificationError(f"no artifacts at {source}: {e}") from e

    def _wait_ready(self, version: int) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while (status := self.version_info(version).status) != "READY":
            if status == "FAILED_REGISTRATION" or time.monotonic() > deadline:
                raise RegistryError(f"version {version} did not become READY (status {status})")
            time.sleep(0.5)

    def _verify(self, source: str, expected: dict[str, str]) -> None:
        with tempfile.TemporaryDirectory(prefix="ct_verify_") as tmp:
            stored = hash_tree(self._download(source, Path(tmp)))
        missing = sorted(set(expected) - set(stored))
        differ = sorted(k for k in set(expected) & set(stored) if expected[k] != stored[k])
        extra = sorted(set(stored) - set(expected))  # e.g. leftovers of an earlier upload to this run
        if missing or differ or extra:
            raise ArtifactVerificationError(
                f"stored adapter at {source} is incomplete: missing {missing}, sha256 differs {differ}, "
                f"unexpected {extra}")

    def register_adapter(
        self, run_id: str, adapter_dir: str | Path, tags: dict | None = None
    ) -> ModelVersionInfo:
        """Make ``adapter_dir`` a pyfunc model (MLmodel + env files written into it), then
        upload, register, read back and verify; only then move ``challenger``."""
        adapter_dir = Path(adapter_dir)
        if not (adapter_dir.is_dir() and hash_tree(adapter_dir)):
            raise ValueError(f"adapter dir {adapter_dir} is missing or empty")
        # Imported here: the pyfunc loader needs torch, which alias reads (sensors) do not.
        from ct_assets.registry.pyfunc import write_model_files

        write_model_files(adapter_dir, run_id=run_id, artifact_path=ADAPTER_PATH)
        expected = hash_tree(adapter_dir)  # after: the MLmodel is verified like every other file
        self._ensure_model()
        source = self._upload(run_id, adapter_dir)
        # "pending" from birth: a crash before verification leaves a version nobody may alias.
        version_tags = {**{k: str(v) for k, v in (tags or {}).items()},
                        STATUS: "pending", DIGEST: tree_digest(expected), N_FILES: str(len(expected))}
        with self.guard(f"create version of {self.model_name}"):
            mv = self.client.create_model_version(self.model_name, source, run_id=run_id,
                                                  tags=version_tags, await_creation_for=0)
        version, ok = int(mv.version), False
        try:
            self._wait_ready(version)
            self._verify(source, expected)
            # Under the lock too: MLflow's SQL set-alias is check-then-insert, so two
            # concurrent registrations can fail with a UNIQUE constraint error.
            with self._lock(), self.guard(f"mark version {version} complete"):
                self._set_tags(version, {STATUS: "complete"})
                self.client.set_registered_model_alias(self.model_name, CHALLENGER, str(version))
            ok = True
        finally:
            if not ok:
                self._mark_incomplete(version)
        return self.version_info(version)

    def _mark_incomplete(self, version: int) -> None:
        # Best effort: the original error is the one to surface; a store that is down now
        # leaves the version "pending", which promote() refuses just the same.
        try:
            with self.guard(f"mark version {version} incomplete"):
                self._set_tags(version, {STATUS: "incomplete"})
        except RegistryError as err:
            _log.warning("could not tag version %s incomplete (stays 'pending'): %s", version, err)

    def download_adapter(self, version_or_alias: int | str, dst: str | Path) -> Path:
        """Download a complete version to ``dst/adapter`` (replacing it) and verify its digest."""
        info = self._resolve(version_or_alias)
        if not info.complete:
            raise RegistryError(f"version {info.version} is not complete: {STATUS}={info.tags.get(STATUS)}")
        dst = Path(dst)
        dst.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".download_", dir=dst))
        try:
            path = self._download(info.source, staging)
            got = tree_digest(hash_tree(path))
            if got != info.tags.get(DIGEST):
                raise ArtifactVerificationError(
                    f"version {info.version} artifacts changed since registration "
                    f"(sha256 {got} != {info.tags.get(DIGEST)})")
            final = dst / ADAPTER_PATH
            if final.exists():
                shutil.rmtree(final)
            path.rename(final)  # same filesystem: the final path never holds a partial download
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return final

    def record_approval(
        self, version: int | str, reviewer: str, decision: Literal["approve", "reject"], comment: str = ""
    ) -> dict:
        if decision not in ("approve", "reject"):
            raise ValueError(f"decision must be 'approve' or 'reject', got {decision!r}")
        if not reviewer.strip():
            raise ValueError("reviewer must be non-empty")
        info = self.version_info(version)
        record = {"ts": _now(), "comment": comment, "reviewer": reviewer, "decision": decision}
        with self.guard(f"record approval on version {info.version}"):
            self._set_tags(info.version, {f"ct.approval.{k}": record[k] for k in APPROVAL_KEYS})
        return {"version": info.version, **record}

    def approval(self, version: int | str) -> dict | None:
        info = self.version_info(version)
        if "ct.approval.decision" not in info.tags:
            return None
        return {"version": info.version, **{k: info.tags.get(f"ct.approval.{k}", "") for k in APPROVAL_KEYS}}

    def promote(
        self, version: int | str, reason: str, approver: str, *, require_approval: bool = False
    ) -> AliasMove:
        """champion -> version, old champion -> previous_champion. Promoting the current
        champion is a no-op (from_version == to_version) rather than champion == previous."""
        version = int(version)
        with self._lock():
            info = self.version_info(version)
            if not info.complete:
                status = info.tags.get(STATUS)
                raise RegistryError(f"refusing to promote version {version}: {STATUS}={status}")
            if require_approval and (self.approval(version) or {}).get("decision") != "approve":
                raise RegistryError(f"refusing to promote version {version}: no 'approve' decision")
            current = self.aliases()  # re-read inside the lock: another process may have moved them
            old, prev = current.get(CHAMPION), current.get(PREVIOUS)
            move = AliasMove(old, version, reason, approver, _now())
            if old == version:
                return move
            with self.guard(f"promote version {version}"):
                if prev == version:
                    self.client.delete_registered_model_alias(self.model_name, PREVIOUS)
                self.client.set_registered_model_alias(self.model_name, CHAMPION, str(version))
                if old is not None:
                    self.client.set_registered_model_alias(self.model_name, PREVIOUS, str(old))
                self._set_tags(version, {"ct.promoted.from": old if old is not None else "",
                                         "ct.promoted.reason": reason, "ct.promoted.by": approver,
                                         "ct.promoted.ts": move.ts})
        return move

    def rollback(self, reason: str, approver: str) -> AliasMove:
        """champion -> previous_champion; previous_champion is deleted (see module doc)."""
        with self._lock():
            current = self.aliases()
            cur, prev = current.get(CHAMPION), current.get(PREVIOUS)
            if cur is None or prev is None:
                raise RegistryError(
                    f"cannot roll back {self.model_name}: champion={cur}, previous_champion={prev} "
                    "(nothing to roll back to; promote a version explicitly)")
            move = AliasMove(cur, prev, reason, approver, _now())
            with self.guard("rollback"):
                # Delete first: a crash after it leaves champion unchanged, never two aliases on prev.
                self.client.delete_registered_model_alias(self.model_name, PREVIOUS)
                self.client.set_registered_model_alias(self.model_name, CHAMPION, str(prev))
                self._set_tags(cur, {ROLLED_BACK_REASON: reason, ROLLED_BACK_BY: approver, ROLLED_BACK_TS: move.ts})
        return move

    def withdraw_challenger(self, version: int, reason: str, by: str) -> AliasMove:
        """Delete ``challenger`` from ``version`` (a canary that failed in production) and tag
        why; from_version=version, to_version=None. Only the alias's current holder can be
        withdrawn, so a stale call cannot pull a newer candidate registered since."""
        version = int(version)
        with self._lock():
            current = self.aliases()  # re-read inside the lock, as promote does
            holder, champion = current.get(CHALLENGER), current.get(CHAMPION)
            if holder != version:
                raise RegistryError(f"cannot withdraw version {version} of {self.model_name}: "
                                    f"challenger is on version {holder}")
            if champion == version:  # withdrawing the alias would leave it serving everything
                raise RegistryError(f"cannot withdraw version {version} of {self.model_name}: it is the "
                                    "champion; roll back instead")
            move = AliasMove(version, None, reason, by, _now())
            with self.guard(f"withdraw challenger version {version}"):
                # Tags first: a crash between the two leaves the record and a still-aliased
                # version (withdraw again), never a silently vanished challenger.
                self._set_tags(version, {WITHDRAWN_REASON: reason[:MAX_TAG_CHARS], WITHDRAWN_BY: by[:MAX_TAG_CHARS],
                                         WITHDRAWN_TS: move.ts})
                self.client.delete_registered_model_alias(self.model_name, CHALLENGER)
        return move
