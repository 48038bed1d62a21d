"""A real `dagster dev` on a free localhost port loads the code location, and a
partition materialization launched over GraphQL succeeds.

This is what a user does in the UI; it proves the workspace, the module name, the
instance under CT_HOME and the queued run coordinator work together.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from ct_assets.core.home import CtHome

REPO = Path(__file__).resolve().parents[1]
PARTITION = "2026-09-02"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gql(url: str, query: str, variables: dict | None = None) -> dict:
    resp = requests.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30)
    resp.raise_for_status()
    body = resp.json()
    assert "errors" not in body, body
    return body["data"]


@pytest.fixture
def dagster_dev(tmp_path):
    home = CtHome(tmp_path / "ct_home").ensure()
    port = _free_port()
    env = {**os.environ, "CT_HOME": str(home.root), "DAGSTER_HOME": str(home.dagster)}
    env.pop("CT_CONFIG", None)
    log = open(tmp_path / "dagster_dev.log", "w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"dagster dev exited: {(tmp_path / 'dagster_dev.log').read_text()[-3000:]}")
            try:
                if requests.get(f"{url}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("dagster dev did not answer within 120 s")
            time.sleep(1)
        yield url, home
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


LOCATION_QUERY = """
{ workspaceOrError { ... on Workspace { locationEntries {
    name
    locationOrLoadError { __typename ... on PythonError { message } }
} } } }
"""

LAUNCH = """
mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename
  ... on LaunchRunSuccess { run { runId } }
  ... on PythonError { message }
  ... on InvalidSubsetError { message }
  ... on RunConfigValidationInvalid { errors { message } }
} }
"""

STATUS = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"


def test_dagster_dev_loads_and_materializes_a_partition(dagster_dev):
    url, home = dagster_dev
    entries = _gql(url, LOCATION_QUERY)["workspaceOrError"]["locationEntries"]
    assert entries[0]["name"] == "ct_assets"
    assert entries[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation", entries

    params = {
        "selector": {
            "repositoryLocationName": "ct_assets",
            "repositoryName": "__repository__",
            "jobName": "__ASSET_JOB",
            "assetSelection": [{"path": ["raw_window"]}, {"path": ["validated_window"]}, {"path": ["quarantined_rows"]}],
        },
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": PARTITION}]},
    }
    launched = _gql(url, LAUNCH, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline = time.monotonic() + 240
    status = None
    while time.monotonic() < deadline:
        status = _gql(url, STATUS, {"id": run_id})["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(2)
    assert status == "SUCCESS", f"run {run_id} ended {status}"
    assert (home.lake / "validated_window" / f"{PARTITION}.parquet").exists()
