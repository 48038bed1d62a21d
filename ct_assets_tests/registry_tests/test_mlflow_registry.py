"""AdapterRegistry against a real MLflow on SQLite (no mocks of MLflow).

One database per module (MLflow's schema migration costs seconds); each test gets its
own registered model name, so tests do not see each other's versions or aliases.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

from ct_assets.registry.mlflow_registry import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    AdapterRegistry,
    ArtifactVerificationError,
    RegistryError,
    RegistryUnavailableError,
    hash_tree,
)
from ct_assets.registry.pyfunc import MODEL_FILES
from ct_assets.registry.records import MAX_TAG_CHARS


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("ct_home") / "mlflow"
    return {"tracking_uri": f"sqlite:///{root / 'mlflow.db'}", "artifact_root": (root / "artifacts").as_uri()}


@pytest.fixture
def reg(store, request) -> AdapterRegistry:
    name = f"m_{request.node.name}"[:200]
    return AdapterRegistry(store["tracking_uri"], store["artifact_root"], model_name=name)


def make_adapter(path: Path, seed: int) -> Path:
    """Opaque stand-in for an adapter dir: a few small files, one in a subfolder."""
    path.mkdir(parents=True)
    (path / "adapter_model.safetensors").write_bytes(os.urandom(2048) + bytes([seed]))
    (path / "adapter_config.json").write_text(json.dumps({"r": 8, "seed": seed}))
    (path / "labels.json").write_text(json.dumps(["a", "b"]))
    (path / "extra").mkdir()
    (path / "extra" / "manifest.json").write_text(json.dumps({"seed": seed}))
    return path


def register(reg: AdapterRegistry, tmp_path: Path, seed: int, **tags) -> int:
    run_id = reg.create_run(run_name=f"train-{seed}")
    info = reg.register_adapter(run_id, make_adapter(tmp_path / f"adapter{seed}", seed), tags)
    return info.version


def test_register_holds_versions_aliases_and_tags(reg, store, tmp_path):
    v1 = register(reg, tmp_path, 1, partition="2024-01-07", window="2023-12-25..2024-01-07")
    v2 = register(reg, tmp_path, 2, partition="2024-01-14")
    assert (v1, v2) == (1, 2)
    assert reg.get_alias(CHALLENGER) == v2 and reg.get_alias(CHAMPION) is None
    info = reg.version_info(v1)
    assert info.complete and info.status == "READY"
    # The 4 adapter files plus the pyfunc model files written beside them at registration.
    assert info.tags["partition"] == "2024-01-07" and info.tags["ct.adapter_files"] == str(4 + len(MODEL_FILES))
    # Artifacts land under the configured artifact root (CT_HOME/mlflow/artifacts), not ./mlruns.
    assert info.source.startswith(store["artifact_root"]) and info.source.endswith("/adapter")
    assert reg.version_info(v2).aliases == (CHALLENGER,)

    got = reg.download_adapter(CHALLENGER, tmp_path / "dl")
    assert got == tmp_path / "dl" / "adapter"
    assert hash_tree(got) == hash_tree(tmp_path / "adapter2")
    again = reg.download_adapter(v1, tmp_path / "dl")  # replaces, does not merge
    assert hash_tree(again) == hash_tree(tmp_path / "adapter1")
    assert [p.name for p in (tmp_path / "dl").iterdir()] == ["adapter"]


def _corrupt_truncate(src: Path) -> None:
    (src / "adapter_model.safetensors").write_bytes(b"trunc")


def _corrupt_lose_file(src: Path) -> None:
    (src / "extra" / "manifest.json").unlink()


@pytest.mark.parametrize("corrupt", [_corrupt_truncate, _corrupt_lose_file], ids=["truncated", "missing"])
def test_incomplete_artifacts_get_no_alias(reg, tmp_path, monkeypatch, corrupt):
    good = register(reg, tmp_path, 1)
    real_upload = AdapterRegistry._upload

    def flaky_upload(self, run_id, adapter_dir):
        # The artifact store "loses" data after the upload returned: a partial write.
        source = real_upload(self, run_id, adapter_dir)
        corrupt(Path(urlparse(source).path))
        return source

    monkeypatch.setattr(AdapterRegistry, "_upload", flaky_upload)
    with pytest.raises(ArtifactVerificationError, match="incomplete"):
        register(reg, tmp_path, 2)
    bad = good + 1
    info = reg.version_info(bad)
    assert info.tags["ct.status"] == "incomplete" and info.aliases == ()
    assert reg.get_alias(CHALLENGER) == good
    with pytest.raises(RegistryError, match="refusing to promote"):
        reg.promote(bad, "try", "ops")
    with pytest.raises(RegistryError, match="not complete"):
        reg.download_adapter(bad, tmp_path / "dl")


def test_register_rejects_empty_adapter_dir(reg, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="missing or empty"):
        reg.register_adapter(reg.create_run(), tmp_path / "empty", {})


def test_approvals_are_stored_and_read(reg, tmp_path):
    v = register(reg, tmp_path, 1)
    assert reg.approval(v) is None
    with pytest.raises(RegistryError, match="no 'approve'"):
        reg.promote(v, "auto", "ci", require_approval=True)
    rec = reg.record_approval(v, "alice", "reject", "recall on refunds too low")
    assert reg.approval(v) == rec and rec["decision"] == "reject" and rec["ts"]
    reg.record_approval(v, "bob", "approve", "ok after review")
    assert reg.approval(v)["reviewer"] == "bob"
    assert reg.version_info(v).tags["ct.approval.comment"] == "ok after review"
    assert reg.promote(v, "approved", "bob", require_approval=True).to_version == v
    with pytest.raises(ValueError, match="decision"):
        reg.record_approval(v, "carol", "maybe", "")


def test_promote_and_rollback(reg, tmp_path):
    v1, v2, v3 = (register(reg, tmp_path, s) for s in (1, 2, 3))
    first = reg.promote(v1, "first model", "gate")
    assert (first.from_version, first.to_version) == (None, v1)
    assert reg.aliases() == {CHALLENGER: v3, CHAMPION: v1}

    move = reg.promote(v2, "gate passed", "gate")
    assert (move.from_version, move.to_version, move.reason, move.approver) == (v1, v2, "gate passed", "gate")
    assert reg.get_alias(CHAMPION) == v2 and reg.get_alias(PREVIOUS) == v1
    assert reg.version_info(v2).tags["ct.promoted.from"] == str(v1)

    noop = reg.promote(v2, "again", "gate")  # must not set previous_champion = champion
    assert noop.from_version == noop.to_version == v2 and reg.get_alias(PREVIOUS) == v1

    reg.promote(v3, "gate passed", "gate")
    assert (reg.get_alias(CHAMPION), reg.get_alias(PREVIOUS)) == (v3, v2)

    back = reg.rollback("accuracy dropped in prod", "oncall")
    assert (back.from_version, back.to_version) == (v3, v2)
    assert reg.get_alias(CHAMPION) == v2 and reg.get_alias(PREVIOUS) is None
    assert reg.version_info(v3).tags["ct.rolled_back.reason"] == "accuracy dropped in prod"
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        reg.rollback("again", "oncall")
    assert reg.get_alias(CHAMPION) == v2

    # Re-promoting the version held by previous_champion never leaves both aliases on it.
    reg.promote(v1, "manual", "ops")
    assert (reg.get_alias(CHAMPION), reg.get_alias(PREVIOUS)) == (v1, v2)
    reg.promote(v2, "manual", "ops")
    assert (reg.get_alias(CHAMPION), reg.get_alias(PREVIOUS)) == (v2, v1)


def test_withdraw_challenger_removes_the_alias_and_records_why(reg, tmp_path):
    """A canary that failed in production: challenger is deleted (not moved), the version
    keeps the record of why, and the champion is untouched."""
    v1, v2 = register(reg, tmp_path, 1), register(reg, tmp_path, 2)
    reg.promote(v1, "first model", "gate")
    # Only the alias's holder can be withdrawn: a stale call must not pull a newer candidate.
    with pytest.raises(RegistryError, match=f"cannot withdraw version {v1} .*challenger is on version {v2}"):
        reg.withdraw_challenger(v1, "stale", "oncall")

    reason = "canary: error rate 4x the champion's " + "x" * MAX_TAG_CHARS  # longer than a tag may be
    move = reg.withdraw_challenger(v2, reason, "oncall")
    assert (move.from_version, move.to_version, move.reason, move.approver) == (v2, None, reason, "oncall")
    assert reg.aliases() == {CHAMPION: v1}
    assert reg.version_info(v2).withdrawal == {"ts": move.ts, "by": "oncall", "reason": reason[:MAX_TAG_CHARS]}
    assert reg.version_info(v2).complete and reg.version_info(v1).withdrawal is None

    with pytest.raises(RegistryError, match=f"cannot withdraw version {v2} .*challenger is on version None") as err:
        reg.withdraw_challenger(v2, "again", "oncall")
    assert not isinstance(err.value, RegistryUnavailableError)
    assert reg.aliases() == {CHAMPION: v1}

    # Challenger and champion on one version: dropping the alias would not take it out of
    # production, so withdrawal refuses and points at rollback.
    v3 = register(reg, tmp_path, 3)
    reg.promote(v3, "gate passed", "gate")
    with pytest.raises(RegistryError, match=f"version {v3} .*is the champion; roll back instead"):
        reg.withdraw_challenger(v3, "bad in prod", "oncall")
    assert reg.aliases() == {CHALLENGER: v3, CHAMPION: v3, PREVIOUS: v1}
    assert reg.version_info(v3).withdrawal is None


def test_promote_unknown_version_is_not_an_outage(reg, tmp_path):
    register(reg, tmp_path, 1)
    with pytest.raises(RegistryError) as err:
        reg.promote(99, "x", "y")
    assert not isinstance(err.value, RegistryUnavailableError)


def _register_and_promote_worker(args: tuple) -> tuple[int, list]:
    tracking_uri, artifact_root, model_name, adapter_dir, rounds = args
    reg = AdapterRegistry(tracking_uri, artifact_root, model_name=model_name)
    version = reg.register_adapter(reg.create_run(), adapter_dir, {"proc": os.getpid()}).version
    return version, [reg.promote(version, f"round {i}", f"proc {os.getpid()}") for i in range(rounds)]


def test_concurrent_registrations_and_promotions_stay_consistent(reg, store, tmp_path):
    reg.aliases()  # create the registered model up front, as a deployment would
    uri, root = store["tracking_uri"], store["artifact_root"]
    jobs = [(uri, root, reg.model_name, make_adapter(tmp_path / f"a{s}", s), 3) for s in range(4)]
    # Not plain fork: the child would inherit MLflow's cached SQLAlchemy engine and share
    # the parent's open SQLite connections. forkserver gives fresh processes while paying
    # the slow mlflow import once (preload) instead of once per child as spawn would.
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["ct_assets.registry.mlflow_registry"])
    with ctx.Pool(4) as pool:
        results = pool.map(_register_and_promote_worker, jobs)
    candidates = sorted(v for v, _ in results)
    moves = [m for _, ms in results for m in ms]
    assert candidates == [1, 2, 3, 4] and all(reg.version_info(v).complete for v in candidates)
    assert reg.get_alias(CHALLENGER) in candidates
    champion, previous = reg.get_alias(CHAMPION), reg.get_alias(PREVIOUS)
    assert champion in candidates
    assert previous in candidates and previous != champion
    # Serialised by the lock: exactly one promotion ever saw "no champion yet" (without
    # the lock all four do, and MLflow's alias insert races into UNIQUE errors).
    assert sum(m.from_version is None for m in moves) == 1
    assert len(moves) == 12 and all(m.from_version in candidates + [None] for m in moves)


def test_a_promotion_cannot_run_between_another_ones_read_and_write(reg, store, tmp_path):
    """A deterministic race instead of a stress test. Promotion A is held between reading
    the aliases and writing them (a hook on A's own registry object); promotion B then
    runs in full. With the lock B cannot enter A's critical section (lock_timeout_s=0: it
    is refused at once, nothing waits on the clock) and, retried, moves champion on from
    A's version. Without the lock B writes inside A's window and A's stale read then
    overwrites it: B's promotion is lost and previous_champion points at the wrong model."""
    v0, va, vb = (register(reg, tmp_path, s) for s in (0, 1, 2))
    reg.promote(v0, "first", "ops")
    a = AdapterRegistry(store["tracking_uri"], store["artifact_root"], model_name=reg.model_name)
    b = AdapterRegistry(store["tracking_uri"], store["artifact_root"], model_name=reg.model_name, lock_timeout_s=0)
    read_done, release, outcome_a = threading.Event(), threading.Event(), []
    real_aliases = a.aliases

    def read_then_hold() -> dict:
        current = real_aliases()
        read_done.set()
        assert release.wait(timeout=120), "promotion A was never released"  # only a hung test ends here
        return current

    def promote_a() -> None:
        try:
            outcome_a.append(a.promote(va, "A", "proc A"))
        except Exception as err:  # noqa: BLE001 - surfaced below, in the test's thread
            outcome_a.append(err)

    a.aliases = read_then_hold
    thread = threading.Thread(target=promote_a)
    thread.start()
    try:
        assert read_done.wait(timeout=120), "promotion A never read the aliases"
        try:
            b_inside: object = b.promote(vb, "B", "proc B")
        except RegistryUnavailableError as err:
            b_inside = err
    finally:
        release.set()
        thread.join(timeout=120)
    assert isinstance(b_inside, RegistryUnavailableError) and "busy" in str(b_inside), (
        f"promotion of v{vb} ran while the promotion of v{va} sat between reading and writing the aliases: "
        f"{b_inside}; aliases now {reg.aliases()}")
    move_a = outcome_a[0]
    assert (move_a.from_version, move_a.to_version) == (v0, va), move_a
    move_b = b.promote(vb, "B", "proc B")  # retried after A, as the asset's RetryPolicy would
    assert (move_b.from_version, move_b.to_version) == (va, vb)
    assert reg.aliases() == {CHALLENGER: vb, CHAMPION: vb, PREVIOUS: va}


def test_training_run_ends_finished_on_success(reg):
    from ct_assets.registry.runs import training_run

    with training_run(reg, "ok", {"ct.partition": "2026-09-01"}) as run:
        run.params({"lr": 0.1})
        run.metrics({"loss": 0.5}, step=1)
    info = reg.client.get_run(run.run_id).info
    assert info.status == "FINISHED"


def test_training_run_marks_failed_and_keeps_the_original_error(reg, monkeypatch):
    from mlflow.exceptions import MlflowException

    from ct_assets.registry.runs import training_run

    class TrainingBroke(RuntimeError):
        pass

    with pytest.raises(TrainingBroke, match="loss exploded"):
        with training_run(reg, "broken", {}) as run:
            raise TrainingBroke("loss exploded")
    assert reg.client.get_run(run.run_id).info.status == "FAILED"

    # MLflow goes down while the run is being marked FAILED: the training error still wins.
    def down(*args, **kwargs):
        raise MlflowException("connection refused", error_code="TEMPORARILY_UNAVAILABLE")

    with pytest.raises(TrainingBroke, match="second failure"):
        with training_run(reg, "broken-and-down", {}) as run:
            monkeypatch.setattr(reg.client, "set_terminated", down)
            raise TrainingBroke("second failure")


def test_evaluation_record_round_trips_through_version_tags(reg, tmp_path):
    from ct_assets.registry.records import EvalRecord

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    run_id = reg.create_run("eval")
    version = reg.register_adapter(run_id, adapter).version
    assert reg.version_info(version).evaluation is None  # not evaluated yet
    record = EvalRecord(passed=False, reasons=("golden accuracy dropped", "class 'x' collapsed"), champion=3,
                        golden_accuracy=0.8125, calibration_json='{"x": [0.1], "y": [0.2]}')
    reg.record_evaluation(version, record)
    assert reg.version_info(version).evaluation == record
