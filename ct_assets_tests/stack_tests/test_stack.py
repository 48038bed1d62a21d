"""The local server stack (ct_assets.stack) is made of real servers doing real work.

Why: the server-profile tests stand on these fixtures. If Postgres took any password,
the bucket lived in one process's memory, or the MLflow server kept artifacts on local
disk, those tests would pass while proving nothing about CT_PROFILE=server. And a stack
that leaves processes or ports behind would poison the rest of the suite.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path

import psycopg2
import pytest
from dagster import DagsterEvent, DagsterEventType, DagsterRun, EventLogEntry, RunsFilter
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage
from mlflow.tracking import MlflowClient
from upath import UPath

from ct_assets.core.profile import PROFILE_ENV, S3_ENV, SERVER, SERVER_REQUIRED, server_profile
from ct_assets.stack import server_stack as start_server_stack
from ct_assets.stack.process import port_is_open


def test_env_is_exactly_the_server_profile(server_stack):
    env = server_stack.env()
    assert set(env) == {PROFILE_ENV, *SERVER_REQUIRED, *S3_ENV, "MLFLOW_S3_ENDPOINT_URL"}
    assert env[PROFILE_ENV] == SERVER and env["AWS_DEFAULT_REGION"] == "us-east-1"
    profile = server_profile(env)  # raises if a variable is missing or a URL is not an object store
    assert (profile.lake_url, profile.landing_url) == (f"s3://{server_stack.s3.bucket}/lake",
                                                       f"s3://{server_stack.s3.bucket}/landing")


def test_postgres_lets_in_the_password_user_over_tcp_and_no_one_else(postgres_server):
    with psycopg2.connect(**postgres_server.connect_kwargs(), connect_timeout=5) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_user, current_database(), inet_server_addr()::text")
        assert cur.fetchone() == (postgres_server.user, postgres_server.db, "127.0.0.1/32")
    conn.close()
    wrong = {**postgres_server.connect_kwargs(), "password": "not-the-password"}
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(**wrong, connect_timeout=5)


def _log_entry(run_id: str, message: str, dagster_event: DagsterEvent | None = None) -> EventLogEntry:
    return EventLogEntry(error_info=None, level=logging.INFO, user_message=message, run_id=run_id,
                         timestamp=time.time(), step_key=None, job_name="stack_probe", dagster_event=dagster_event)


def test_dagster_postgres_storages_create_their_tables_and_round_trip(postgres_server):
    url = postgres_server.sqlalchemy_url()  # psycopg2, as ct_assets.core.home's dagster.yaml names it
    runs, events = PostgresRunStorage(url), PostgresEventLogStorage(url)
    try:
        run = DagsterRun(job_name="stack_probe", run_id=str(uuid.uuid4()))
        runs.add_run(run)
        assert [r.job_name for r in runs.get_runs(RunsFilter(run_ids=[run.run_id]))] == ["stack_probe"]
        step_start = DagsterEvent(DagsterEventType.STEP_START.value, "stack_probe", step_key="probe_op")
        events.store_event(_log_entry(run.run_id, "a user log line"))
        events.store_event(_log_entry(run.run_id, "", step_start))
        stored = events.get_logs_for_run(run.run_id)
        assert [e.user_message for e in stored] == ["a user log line", ""]
        assert stored[1].dagster_event.event_type == DagsterEventType.STEP_START
    finally:
        events.dispose()
        runs.dispose()


def test_s3fs_writes_and_reads_the_bucket_with_explicit_options(s3_server):
    path = UPath(f"s3://{s3_server.bucket}/probe/explicit.txt", **s3_server.storage_options())
    path.write_text("explicit")
    assert path.read_text() == "explicit"
    body = s3_server.client().get_object(Bucket=s3_server.bucket, Key="probe/explicit.txt")["Body"].read()
    assert body == b"explicit"  # in the server, not in a client-side cache


def test_s3fs_finds_the_server_from_aws_endpoint_url_alone(s3_server, monkeypatch):
    # What the server profile relies on: UPath("s3://...") with no options, boto's AWS_*
    # variables in the environment (s3fs -> aiobotocore honours AWS_ENDPOINT_URL).
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    # A cached filesystem made before these variables were set would point at AWS.
    path = UPath(f"s3://{s3_server.bucket}/probe/from_env.txt", skip_instance_cache=True)
    path.write_text("from env")
    assert path.read_text() == "from env"
    assert s3_server.client().head_object(Bucket=s3_server.bucket, Key="probe/from_env.txt")["ContentLength"] == 8


def test_mlflow_server_tracks_proxies_artifacts_to_s3_and_registers(server_stack, tmp_path):
    client = MlflowClient(server_stack.mlflow.tracking_uri)
    experiment_id = client.create_experiment(f"stack-probe-{uuid.uuid4().hex[:8]}")
    run = client.create_run(experiment_id)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "weights.txt").write_text("w=1")
    client.log_artifacts(run.info.run_id, str(model_dir), artifact_path="model")
    client.log_metric(run.info.run_id, "accuracy", 0.9)
    client.set_terminated(run.info.run_id)

    s3, bucket = server_stack.s3.client(), server_stack.s3.bucket
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="mlflow/").get("Contents", [])]
    assert any(k.endswith(f"{run.info.run_id}/artifacts/model/weights.txt") for k in keys), keys
    back = Path(client.download_artifacts(run.info.run_id, "model", str(tmp_path / "back")))
    assert (back / "weights.txt").read_text() == "w=1"

    name = f"stack-probe-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    version = client.create_model_version(name, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    client.set_registered_model_alias(name, "champion", version.version)
    assert client.get_model_version_by_alias(name, "champion").version == version.version
    assert client.get_run(run.info.run_id).data.metrics["accuracy"] == 0.9


def _process_tree(pid: int) -> set[int]:
    """pid and every descendant now alive (from /proc: ppid is field 4 of stat)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # exited while we looked
                continue
            parents[int(entry.name)] = int(fields[1])
    tree, frontier = {pid}, [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        tree.update(children)
        frontier = children
    return tree


def _alive(pid: int) -> bool:
    """Exists and is not a zombie (an orphan's zombie stays until PID 1 reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_every_process_port_and_directory_is_gone_after_the_stack_exits():
    with start_server_stack() as stack:  # its own stack: the session's must stay up
        trees = {name: _process_tree(pid) for name, pid in stack.pids.items()}
        ports = stack.ports
        dirs = [stack.postgres.socket_dir]
        assert all(port_is_open(port) for port in ports.values()), ports
        assert len(trees["mlflow"]) > 1  # the CLI and its uvicorn: the group stop must reach both
    deadline = time.monotonic() + 5  # SIGKILLed group members take a moment to be reaped
    while time.monotonic() < deadline and any(_alive(p) for tree in trees.values() for p in tree):
        time.sleep(0.1)
    left = {name: sorted(p for p in tree if _alive(p)) for name, tree in trees.items()}
    assert not any(left.values()), f"processes outlived the stack: {left}"
    assert not [port for port in ports.values() if port_is_open(port)], ports
    assert not [d for d in dirs if os.path.exists(d)]
