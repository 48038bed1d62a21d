"""A real `dagster dev` on a free localhost port loads the code location, and a
partition materialization launched over GraphQL succeeds.

This is what a user does in the UI; it proves the workspace, the module name, the
instance under CT_HOME and the queued run coordinator work together. The browser
version of the same walk is ``test_ui_browser.py``.
"""

from __future__ import annotations

import pytest

from ct_assets_tests.dagster_dev_server import gql, running_dagster_dev, wait_for_run

PARTITION = "2026-09-02"


@pytest.fixture
def dagster_dev(tmp_path):
    with running_dagster_dev(tmp_path) as server:
        yield server


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


def test_dagster_dev_loads_and_materializes_a_partition(dagster_dev):
    url, home = dagster_dev.url, dagster_dev.home
    entries = gql(url, LOCATION_QUERY)["workspaceOrError"]["locationEntries"]
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
    launched = gql(url, LAUNCH, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    status = wait_for_run(url, run_id, timeout=240)
    assert status == "SUCCESS", f"run {run_id} ended {status}"
    assert (home.lake / "validated_window" / f"{PARTITION}.parquet").exists()
