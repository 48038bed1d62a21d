"""CT_HOME holds all state, and its dagster.yaml caps concurrent training in Dagster itself."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
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


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        # relative: under CT_HOME
        ("landing", "HOME/landing"),
        # a relative path that dips out and back in stays inside
        ("a/../landing", "HOME/landing"),
        # absolute: used as given, even outside CT_HOME
        ("/abs/landing", "/abs/landing"),
        # "~" is the user's home, as a shell would read it, not a folder named "~"
        ("~/landing", "USER/landing"),
    ],
)
def test_settings_paths_resolve(tmp_path, monkeypatch, path, expected):
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    want = expected.replace("HOME", str(tmp_path / "h"), 1).replace("USER", str(tmp_path / "user"), 1)
    assert os.path.normpath(CtHome(tmp_path / "h").resolve(path, "source.path")) == want


@pytest.mark.parametrize(
    ("path", "message"),
    [
        # issue 10: `../x` with the simulator wrote outside CT_HOME
        ("../x", "source.path: relative path '../x' leaves CT_HOME"),
        # climbing out after going in is still out
        ("landing/../../x", "source.path: relative path 'landing/../../x' leaves CT_HOME"),
        # issue 10: "" put dt= folders in the CT_HOME root
        ("", r"source.path: an empty path \(''\)"),
        # blank is empty too
        ("  ", r"source.path: an empty path \('  '\)"),
        # "." is CT_HOME itself: the landing zone would mix with dagster/, lake/, ...
        (".", "source.path: relative path '.' names CT_HOME itself"),
        # a package path must name a file inside the package
        ("package://ct_assets.sim/../../etc/passwd", "source.path: 'package://ct_assets.sim/../../etc/passwd'"),
        # a package that is not installed is named
        ("package://no_such_pkg_ct/x.jsonl", "source.path: package://no_such_pkg_ct/x.jsonl: package 'no_such_pkg_ct'"),
    ],
)
def test_bad_settings_paths_name_the_key_and_value(tmp_path, path, message):
    with pytest.raises(ValueError, match=message):
        CtHome(tmp_path).resolve(path, "source.path")


def test_package_paths_keep_working(tmp_path):
    demo = CtHome(tmp_path).resolve("package://ct_assets.sim/golden/golden_v1.jsonl", "golden.path")
    assert demo.is_file() and demo.name == "golden_v1.jsonl"


@pytest.mark.parametrize("kind", ["simulator", "landing_zone"])
def test_both_sources_use_the_resolved_landing_zone(tmp_path, kind):
    # The simulator writes where the reader reads: under CT_HOME for a relative path.
    from ct_assets.orchestration.resources import build_source
    from ct_assets_tests.helpers import small_settings

    source = build_source(small_settings(**{"source.kind": kind, "source.path": "drops/in"}), CtHome(tmp_path))
    assert source.path == str(tmp_path / "drops" / "in")


def test_settings_built_in_code_cannot_send_the_simulator_out_of_ct_home(tmp_path):
    # model_copy skips validation, so build_source checks the path again before writing.
    from ct_assets.orchestration.resources import build_source
    from ct_assets_tests.helpers import small_settings

    settings = small_settings()
    settings = settings.model_copy(update={"source": settings.source.model_copy(update={"path": "../x"})})
    with pytest.raises(ValueError, match="source.path: relative path '../x' leaves CT_HOME"):
        build_source(settings, CtHome(tmp_path / "h"))
    assert not (tmp_path / "x").exists()


def _ensure(root: str, runs: int) -> None:
    from ct_assets.core.home import CtHome

    CtHome(Path(root)).ensure(max_training_runs=runs)


def test_processes_creating_one_home_at_once_do_not_collide(tmp_path):
    # Two xdist workers importing the code location at once once failed: both wrote
    # dagster.yaml.tmp and one renamed the other's file away (FileNotFoundError).
    import multiprocessing as mp

    procs = [mp.get_context("spawn").Process(target=_ensure, args=(str(tmp_path), 1 + i % 2)) for i in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * 6
    assert sorted(f.name for f in (tmp_path / "dagster").iterdir()) == ["dagster.yaml"]
