"""approve_model and rollback_champion as a reviewer meets them in the launchpad: described
fields, no registry URIs to overwrite, and a bad entry ending in one line that says what to
fix (never a stack trace from MLflow)."""

from __future__ import annotations

import pytest
from dagster import DagsterEventType, instance_for_test

from ct_assets.definitions import build_definitions
from ct_assets.registry.approval import approval_problem
from ct_assets.registry.mlflow_registry import AdapterRegistry
from ct_assets_tests.helpers import make_home, small_settings


@pytest.fixture
def world(tmp_path):
    home = make_home(tmp_path)
    defs = build_definitions(small_settings(), home)
    reg = AdapterRegistry(home.mlflow_tracking_uri, home.mlflow_artifact_root)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    for _ in range(2):
        reg.register_adapter(reg.create_run("test"), adapter,
                             {"ct.window_start": "2026-09-01", "ct.window_end": "2026-09-04"})
    return defs, reg


def _launch(defs, instance, **config):
    job = defs.resolve_job_def("approve_model")
    return job.execute_in_process(instance=instance, raise_on_error=False,
                                  run_config={"ops": {"record_approval": {"config": config}}})


def _failure_line(result) -> str:
    (failure,) = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    return failure.step_failure_data.user_failure_data.description


@pytest.mark.parametrize("version, reviewer, expected", [
    (0, "ana", "version must be a registered model version (>= 1), got 0: `ct status` lists the registered"),
    (1, "  ", "reviewer must name who decides (it is recorded with the decision); got an empty reviewer"),
    (9, "ana", "version 9 is not registered in ct_text_classifier; registered versions: 1, 2"),
])
def test_a_bad_launchpad_entry_fails_in_one_line_and_records_nothing(world, version, reviewer, expected):
    defs, reg = world
    with instance_for_test() as instance:
        result = _launch(defs, instance, version=version, reviewer=reviewer)
    assert not result.success
    assert _failure_line(result).startswith(expected)
    assert [reg.approval(v) for v in (1, 2)] == [None, None]


def test_a_valid_approval_is_recorded_and_tagged_as_a_human_decision(world):
    defs, reg = world
    with instance_for_test() as instance:
        result = _launch(defs, instance, version=2, reviewer="ana", comment="looks right")
        assert result.success
        tags = instance.get_run_by_id(result.run_id).tags
    assert (tags["ct/trigger"], tags["ct/reason"]) == ("manual", "human decision on a model version")
    assert reg.approval(2)["reviewer"] == "ana" and reg.approval(1) is None


def test_the_launchpad_offers_described_fields_and_no_registry_to_edit(world):
    defs, _ = world
    for job_name, op_name, fields in (("approve_model", "record_approval", {"version", "reviewer", "decision",
                                                                            "comment"}),
                                      ("rollback_champion", "move_champion_back", {"reason", "approver",
                                                                                   "partition"})):
        schema = defs.resolve_job_def(job_name).run_config_schema.config_type
        config = schema.fields["ops"].config_type.fields[op_name].config_type.fields["config"].config_type.fields
        assert set(config) == fields
        assert all(f.description for f in config.values()), {k: f.description for k, f in config.items()}
        # The registry is bound: nothing under resources.registry a reviewer could point elsewhere.
        registry = schema.fields["resources"].config_type.fields["registry"].config_type
        config_field = getattr(registry, "fields", {}).get("config")
        editable = set(getattr(config_field.config_type, "fields", {})) if config_field else set()
        assert not editable, editable  # the unbound resource would offer tracking_uri, artifact_root, ...


@pytest.mark.parametrize("version, reviewer, registered, expected", [
    (1, "ana", [1, 2], None),
    (3, "ana", [], "version 3 is not registered in m; registered versions: none yet (train a model first)"),
    (-1, "", [1], "version must be a registered model version (>= 1), got -1"),
])
def test_approval_problem(version, reviewer, registered, expected):
    problem = approval_problem(version, reviewer, registered, "m")
    assert problem == expected or (expected and problem.startswith(expected))


def test_ct_status_lists_versions_and_ct_approve_refuses_in_one_line(world, tmp_path):
    import os
    import subprocess
    import sys

    defs, reg = world
    reg.promote(1, reason="test", approver="test")
    env = {**os.environ, "CT_HOME": str(tmp_path / "ct_home"), "DAGSTER_HOME": str(tmp_path / "ct_home" / "dagster")}
    env.pop("CT_CONFIG", None)

    def ct(*argv):
        return subprocess.run([sys.executable, "-m", "ct_assets.cli", *argv], env=env, capture_output=True,
                              text=True, timeout=300, check=False)

    status = ct("status")
    assert status.returncode == 0, status.stderr[-2000:]
    lines = status.stdout.splitlines()
    assert lines[2].split("|")[1:-1] == [" version ", " aliases ", " window ", " trigger ", " gate ", " approval ",
                                         " rolled_back ", " withdrawn "]
    assert [line.split("|")[1:6] for line in lines[4:]] == [
        [" 1 ", " champion ", " 2026-09-01..2026-09-04 ", " manual ", " - "],
        [" 2 ", " challenger ", " 2026-09-01..2026-09-04 ", " manual ", " - "]]
    refused = ct("approve", "--version", "9", "--reviewer", "ana")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1] == (
        "ct approve: version 9 is not registered in ct_text_classifier; registered versions: 1, 2")
