"""The sensor daemon's own evaluation path, driven from a test: the real code location
(``ct_assets.definitions``, as workspace.yaml loads it, in its own gRPC code server), the
real instance of a CT_HOME (its dagster.yaml: SQLite storage, queued runs), and Dagster's
sensor iteration, which is where a repeated run_key is dropped. ``build_sensor_context``
only evaluates the function; it never sees what Dagster does with the RunRequest.

Private Dagster imports, kept to this test helper because the product never needs them
(test_layering's one-adapter rule scans ``ct_assets`` only; these are test machinery):

* ``execute_sensor_iteration``: one pass of the sensor daemon. No public API runs a tick
  through the daemon; ``dagster-daemon run`` would, but as a long-lived process with no
  way to say "tick once now".
* ``create_test_daemon_workspace_context`` and ``ModuleTarget``: the workspace the daemon
  builds from workspace.yaml, with the gRPC server registry it uses; no public factory.
* ``freeze_time``: the sensors tick at most every 300 s (``minimum_interval_seconds``);
  the daemon reads the time through ``dagster._time``, and this is how Dagster's own
  sensor tests move it on instead of sleeping.
* ``AssetDaemon`` and ``FreshnessDaemon``: an ``AutomationConditionSensorDefinition`` is
  ticked by the asset daemon, not the sensor daemon, and ``freshness_failed()`` reads the
  state the freshness daemon records; one pass of each, like ``execute_sensor_iteration``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import yaml
from dagster import DagsterInstance
from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time
from dagster._core.workspace.load_target import ModuleTarget
from dagster._daemon.asset_daemon import AssetDaemon
from dagster._daemon.freshness import FreshnessDaemon
from dagster._daemon.sensor import execute_sensor_iteration

from ct_assets.core.home import CT_HOME_ENV, CtHome
from ct_assets.core.settings import CONFIG_ENV, Settings

LOCATION = "ct_assets"  # workspace.yaml's location_name


class SensorDaemon:
    """The daemon's view of one CT_HOME: tick every running sensor at a chosen time."""

    def __init__(self, workspace, instance: DagsterInstance):
        self.workspace = workspace
        self.instance = instance
        self.log = logging.getLogger("ct_assets_tests.sensor_daemon")

    def tick_all(self, at: dt.datetime) -> None:
        with freeze_time(at):
            for _ in execute_sensor_iteration(self.workspace, self.log, threadpool_executor=None,
                                              submit_threadpool_executor=None):
                pass

    def evaluate_freshness(self, at: dt.datetime) -> None:
        """The freshness daemon's pass: records each FreshnessPolicy's state as of ``at``."""
        with freeze_time(at):
            for _ in FreshnessDaemon().run_iteration(self.workspace):
                pass

    def tick_automation(self, at: dt.datetime) -> None:
        """The asset daemon's pass: ticks every running automation-condition sensor."""
        daemon = AssetDaemon(settings=self.instance.get_auto_materialize_settings(), pre_sensor_interval_seconds=30)
        with freeze_time(at):
            daemon._run_iteration_impl(self.workspace, threadpool_executor=None, amp_tick_futures={},
                                       debug_crash_flags={})

    def ticks(self, sensor_name: str) -> list:
        """The sensor's ticks, oldest first."""
        location = self.workspace.create_request_context().get_code_location(LOCATION)
        (repo,) = location.get_repositories().values()
        remote = repo.get_sensor(sensor_name)
        return list(reversed(self.instance.get_ticks(remote.get_remote_origin_id(), remote.selector_id)))


@contextlib.contextmanager
def sensor_daemon(home: CtHome, settings: Settings, monkeypatch) -> Iterator[SensorDaemon]:
    """The daemon for ``home`` with ``settings``, as a deployment would run it: the code
    server reads CT_HOME and CT_CONFIG from its environment, like ``dagster dev``."""
    config = Path(home.root) / "ct.yaml"
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json")), encoding="utf-8")
    monkeypatch.setenv(CT_HOME_ENV, str(home.root))
    monkeypatch.setenv(CONFIG_ENV, str(config))
    monkeypatch.setenv("DAGSTER_HOME", str(home.dagster))
    home.ensure(max_training_runs=settings.triggers.max_concurrent_training_runs)
    with DagsterInstance.from_config(str(home.dagster)) as instance:
        target = ModuleTarget(module_name="ct_assets.definitions", attribute=None, working_directory=None,
                              location_name=LOCATION)
        with create_test_daemon_workspace_context(target, instance) as workspace:
            yield SensorDaemon(workspace, instance)
