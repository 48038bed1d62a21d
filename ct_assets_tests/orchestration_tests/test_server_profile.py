"""CT_PROFILE=server end to end on real engines: Postgres, an MLflow tracking server, an
S3-protocol lake and landing zone (ct_assets.stack, started for the test session).

Why: the README promises that scale-out "changes configuration, not code". This runs the
same Definitions the laptop runs, switched only by environment variables, through the
data half, two trainings (out of process, through Pipes), promotion and a rollback, and
then looks in each engine for what the run left there.
"""

from __future__ import annotations

import psycopg2
import s3fs
from dagster import AssetKey, DagsterInstance

from ct_assets.core.home import ct_home
from ct_assets.definitions import build_definitions
from ct_assets.lake.resources import Lake
from ct_assets.orchestration.runner import materialize_range
from ct_assets.registry.jobs import run_rollback
from ct_assets.registry.mlflow_registry import AdapterRegistry
from ct_assets.registry.records import MODEL_NAME
from ct_assets_tests.helpers import day, model_settings

DATA = ("raw_window", "validated_window", "quarantined_rows", "drift_report")
CHAIN = ("training_dataset", "lora_adapter", "eval_report", "shadow_report", "champion")
OPEN_GATE = {"gate.require_ci_above_zero": False, "gate.min_improvement": -1.0, "gate.max_forgetting": 1.0,
             "gate.max_class_forgetting": 1.0}


def _objects(fs: s3fs.S3FileSystem, prefix: str) -> list[str]:
    fs.invalidate_cache()
    return [key for key in fs.find(prefix) if not key.rsplit("/", 1)[-1].startswith(".")]


def _pg_count(env: dict, sql: str) -> int:
    con = psycopg2.connect(host=env["CT_PG_HOST"], port=env["CT_PG_PORT"], user=env["CT_PG_USER"],
                           password=env["CT_PG_PASSWORD"], dbname=env["CT_PG_DB"])
    try:
        with con.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone()[0]
    finally:
        con.close()


def test_the_whole_loop_runs_on_postgres_an_mlflow_server_and_an_s3_lake(server_stack, sim_base_dir, tmp_path,
                                                                         monkeypatch):
    env = server_stack.env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CT_HOME", str(tmp_path / "ct_home"))
    home = ct_home()
    assert home.is_server
    settings = model_settings(sim_base_dir, **OPEN_GATE)
    defs = build_definitions(settings, home)
    monkeypatch.setenv("DAGSTER_HOME", str(home.dagster))
    instance = DagsterInstance.get()
    # The instance dagster.yaml describes: every storage in Postgres, runs queued.
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    runs_before = _pg_count(env, "SELECT count(*) FROM runs")
    registry = AdapterRegistry(env["MLFLOW_TRACKING_URI"], None, MODEL_NAME, lock_path=home.registry_lock)
    versions_before = len(registry.version_numbers()) if _model_exists(registry) else 0

    # The data half: the simulator writes each day into the S3 landing zone, the reader
    # lists it there, and every lake file lands in the bucket.
    assert materialize_range(defs, instance, DATA, day(0), day(6)).success
    fs = s3fs.S3FileSystem()
    bucket = server_stack.s3.bucket
    landing = _objects(fs, f"{bucket}/landing")
    assert [k for k in landing if k.endswith(f"dt={day(0)}/events.jsonl")], landing[:5]
    lake = _objects(fs, f"{bucket}/lake")
    for asset in ("raw_window", "validated_window", "quarantined_rows", "drift_report"):
        assert f"{bucket}/lake/{asset}/{day(6)}.parquet" in lake, asset
    assert not any("_staging" in k for k in lake), "a committed step leaves no staging behind"
    assert not (home.root / "lake").exists() and not (home.root / "landing").exists()
    raw = Lake(base_path=home.lake_url).read("raw_window", day(6))
    assert raw.height == settings.source.simulator.rows_per_day
    assert raw["_source_file"][0] == f"dt={day(6)}/events.jsonl"

    # Two trainings (out of process), promotion, then a human rollback, on the MLflow server.
    assert materialize_range(defs, instance, CHAIN, day(4), day(4)).success
    assert materialize_range(defs, instance, CHAIN, day(5), day(5)).success
    first, second = versions_before + 1, versions_before + 2
    assert registry.aliases() == {"challenger": second, "champion": second, "previous_champion": first}
    adapter = instance.get_latest_materialization_event(AssetKey("lora_adapter")).asset_materialization
    assert adapter.metadata["model_version"].value == str(second)
    # The adapter's files went through the server's proxied artifact store into the bucket.
    artifacts = registry.client.get_experiment_by_name(registry.experiment_name).artifact_location
    assert artifacts.startswith("mlflow-artifacts:")
    assert [k for k in _objects(fs, f"{bucket}/mlflow") if k.endswith("adapter_model.safetensors")]

    run_rollback(defs, instance, reason="canary complaints", approver="ops")
    assert registry.aliases()["champion"] == first
    assert Lake(base_path=home.lake_url).read("champion", day(5)) is not None

    # Dagster's runs and events are rows in Postgres, not SQLite files under CT_HOME.
    assert _pg_count(env, "SELECT count(*) FROM runs") >= runs_before + 4
    assert _pg_count(env, "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'") > 0
    assert not list(home.dagster.glob("**/*.db"))
    # Nothing secret was written into CT_HOME.
    for path in home.root.rglob("*"):
        if path.is_file() and path.suffix in (".yaml", ".json", ".txt"):
            assert env["CT_PG_PASSWORD"] not in path.read_text(errors="replace"), path


def _model_exists(registry: AdapterRegistry) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        registry.client.get_registered_model(MODEL_NAME)
    except MlflowException:
        return False
    return True
