"""The Dagster family is pinned together: dagster-mlflow 0.29.x goes with dagster 1.13.x.

An unpinned install silently resolves dagster-mlflow to 0.19.x; this catches it.
"""

from importlib.metadata import version


def test_dagster_mlflow_matches_dagster_release_line():
    dagster = version("dagster").split(".")
    mlflow_integration = version("dagster-mlflow").split(".")
    # Integrations are versioned 0.(major+16).patch beside core 1.major.patch.
    assert dagster[0] == "1"
    assert int(mlflow_integration[1]) == int(dagster[1]) + 16, (version("dagster"), version("dagster-mlflow"))
    assert mlflow_integration[2] == dagster[2]
    assert version("dagster-webserver") == version("dagster")


def test_pandas_stays_below_3_for_dagster_mlflow():
    assert int(version("pandas").split(".")[0]) < 3
