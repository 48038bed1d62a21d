"""CT_HOME holds all state, and its dagster.yaml caps concurrent training in Dagster itself."""

from __future__ import annotations

from dagster import DagsterInstance

from ct_assets.core.home import CtHome


def test_layout_and_instance_config(tmp_path):
    home = CtHome(tmp_path / "h").ensure(max_training_runs=2)
    for sub in ("dagster", "mlflow", "lake", "landing", "checkpoints", "reports"):
        assert (home.root / sub).is_dir()
    assert home.mlflow_tracking_uri == f"sqlite:///{home.root / 'mlflow' / 'mlflow.db'}"
    instance = DagsterInstance.from_config(str(home.dagster))
    config = instance.get_concurrency_config()
    assert config.pool_config.default_pool_limit == 2
    assert {"key": "ct/training", "value": "true", "limit": 2} in config.run_queue_config.tag_concurrency_limits
    assert str(instance.storage_directory()).startswith(str(home.root))


def test_relative_settings_paths_live_under_ct_home(tmp_path):
    home = CtHome(tmp_path)
    assert home.resolve("landing") == tmp_path / "landing"
    assert home.resolve("/abs/landing").as_posix() == "/abs/landing"
