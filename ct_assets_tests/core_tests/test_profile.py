"""CT_PROFILE picks the engines in one place; the server profile never writes a secret.

Why: "scale-out changes configuration, not code" is only true if the one switch reaches
every consumer (Dagster's storage, the lake, the landing zone, MLflow) and a missing
variable fails before anything runs, naming it.
"""

from __future__ import annotations

import pytest
import yaml
from dagster import EnvVar

from ct_assets.core.home import CtHome, ct_home
from ct_assets.core.profile import PG_ADVISORY_LOCK, PG_ENV, SERVER_REQUIRED, ProfileError, profile_name
from ct_assets.orchestration.resources import build_resources
from ct_assets_tests.helpers import small_settings

SERVER_ENV = {
    "CT_PROFILE": "server",
    "CT_PG_HOST": "127.0.0.1", "CT_PG_PORT": "5432", "CT_PG_USER": "ct", "CT_PG_PASSWORD": "s3cret-pg",
    "CT_PG_DB": "dagster", "MLFLOW_TRACKING_URI": "http://ops:s3cret-ml@127.0.0.1:5000",
    "CT_LAKE_URL": "s3://ct-data/lake", "CT_LANDING_URL": "s3://ct-data/landing",
}


@pytest.fixture
def server_env(monkeypatch, tmp_path):
    for key, value in SERVER_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CT_HOME", str(tmp_path / "home"))
    return SERVER_ENV


def test_local_is_the_default_and_keeps_everything_under_ct_home(monkeypatch, tmp_path):
    monkeypatch.delenv("CT_PROFILE", raising=False)
    monkeypatch.setenv("CT_HOME", str(tmp_path / "home"))
    home = ct_home().ensure()
    assert profile_name() == "local" and not home.is_server
    assert home.lake_url == str(tmp_path / "home" / "lake")
    assert home.mlflow_tracking_uri.startswith("sqlite:///")
    config = yaml.safe_load((home.dagster / "dagster.yaml").read_text())
    assert "sqlite" in config["storage"] and "run_coordinator" not in config


def test_an_unknown_profile_is_refused_by_name(monkeypatch):
    monkeypatch.setenv("CT_PROFILE", "cluster")
    with pytest.raises(ProfileError, match="CT_PROFILE='cluster': expected one of local, server"):
        ct_home()


def test_the_server_profile_names_every_missing_variable(server_env, monkeypatch):
    monkeypatch.delenv("CT_PG_PASSWORD")
    monkeypatch.delenv("CT_LAKE_URL")
    with pytest.raises(ProfileError, match="needs CT_PG_PASSWORD, CT_LAKE_URL in the environment"):
        ct_home()


def test_the_server_profile_keeps_data_on_an_object_store(server_env, monkeypatch):
    monkeypatch.setenv("CT_LAKE_URL", "/mnt/lake")
    with pytest.raises(ProfileError, match=r"CT_LAKE_URL='/mnt/lake'.*s3://bucket/lake"):
        ct_home()


def test_server_dagster_yaml_is_postgres_queued_and_monitored_with_no_secret_in_it(server_env):
    home = ct_home().ensure(max_training_runs=2)
    text = (home.dagster / "dagster.yaml").read_text()
    config = yaml.safe_load(text)
    assert config["storage"]["postgres"]["postgres_db"] == {**{key: {"env": var} for key, var in PG_ENV.items()},
                                                            "scheme": "postgresql+psycopg2"}
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_monitoring"]["enabled"] is True
    assert config["concurrency"]["runs"]["tag_concurrency_limits"][0] == {"key": "ct/training", "value": "true",
                                                                         "limit": 2}
    assert config["concurrency"]["pools"]["default_limit"] == 2
    for value in server_env.values():
        if "s3cret" in value:
            assert value not in text


def test_server_resources_read_the_engines_from_the_environment(server_env):
    home = ct_home()
    resources = build_resources(small_settings(), home)
    registry = resources["registry"]
    # The tracking URI carries a password: an EnvVar, resolved only inside a run.
    assert isinstance(registry.tracking_uri, EnvVar) and registry.tracking_uri == "MLFLOW_TRACKING_URI"
    assert registry.artifact_root is None and registry.lock == PG_ADVISORY_LOCK
    assert resources["lake"].base_path == resources["lake_io"].base_path == "s3://ct-data/lake"
    assert resources["source"].path == "s3://ct-data/landing"
    assert all(k in SERVER_ENV for k in SERVER_REQUIRED)


def test_a_local_home_built_in_code_ignores_the_environment(server_env, tmp_path):
    # Tests (and tools) that build CtHome(root) stay local whatever CT_PROFILE says.
    home = CtHome(tmp_path / "h").ensure()
    assert not home.is_server and "sqlite" in (home.dagster / "dagster.yaml").read_text()


def test_redacted_hides_credentials_in_a_tracking_uri():
    from ct_assets.registry.guards import outage_message, redacted

    assert redacted("http://ops:s3cret-ml@127.0.0.1:5000") == "http://***@127.0.0.1:5000"
    assert "s3cret" not in outage_message("https://ops:s3cret-ml@mlflow.example", "connect", "refused")
