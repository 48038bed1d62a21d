"""deploy/ checked without a cluster, helm or docker (fast, no network).

- values.yaml against deploy/schema/values.schema.json (the chart's keys we set, strict);
  its Kubernetes objects against the kubernetes client's models, as dagster-k8s reads them;
- the instance config the chart renders from it (run coordinator, run monitoring, concurrency)
  loads in the pinned Dagster and enforces the same limits as the local instance (core/home.py);
- every CT_PROFILE=server variable is set for the code location, the run pods and the training
  pod, and every secret comes from a secretKeyRef, never a literal;
- training-pod.yaml is a pod spec dagster-k8s's PipesK8sClient builds, with a GPU and the
  checkpoints on a persistent volume; the Dockerfile and the image tags match pyproject.toml.
Each check (checks.py) returns its problems, so the tests at the end break a copy and see it
refused.
With CT_DAGSTER_CHART_SCHEMA pointing at the chart's own values.schema.json (from
`helm pull dagster/dagster --version <pin> --untar`) values.yaml is also checked against it.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import jsonschema
import pytest
import yaml

from ct_assets.core.home import DAGSTER_YAML
from ct_assets.core.schema import TRAINING_TAG
from ct_assets.core.settings import default_config_text, parse_settings
from ct_assets.core.strict_yaml import read_yaml
from ct_assets_tests.deploy_tests.checks import (
    DOCKERFILE,
    GPU,
    OFFICIAL_SCHEMA_ENV,
    PYPROJECT,
    README,
    SCHEMA,
    TORCH,
    deploy_yaml,
    dockerfile_problems,
    env_problems,
    k8s_problems,
    load_instance,
    official_schema,
    pod_problems,
    rendered_instance,
    run_launcher,
    schema_problems,
    secret_problems,
    secret_refs,
    torch_variants,
    user_deployment,
    version_problems,
)


@pytest.fixture
def values():
    return deploy_yaml("values.yaml")


@pytest.fixture
def pod():
    return deploy_yaml("training-pod.yaml")


# --- the deploy files pass -------------------------------------------------------------------

def test_values_match_the_schema(values):
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    assert schema_problems(values) == []
    assert k8s_problems(values) == []


def test_every_pod_gets_the_server_profile_and_secrets_only_from_secrets(values, pod):
    ud, rl = user_deployment(values), run_launcher(values)
    assert env_problems(ud["env"], "code location") == []
    assert env_problems(rl["runK8sConfig"]["containerConfig"]["env"], "run pods") == []
    assert secret_problems(values) == []
    by_name = lambda env: sorted(env, key=lambda e: e["name"])  # noqa: E731
    assert by_name(pod["containers"][0]["env"]) == by_name(ud["env"]) == by_name(rl["runK8sConfig"][
        "containerConfig"]["env"]), "the code location, the run pods and the training pod must read the same env"
    for name, key in secret_refs(ud["env"]):  # the operator is told to create each one
        assert name in README and key in README, f"deploy/README.md does not say how to create {name}/{key}"


def test_the_rendered_instance_loads_with_the_local_limits(values, tmp_path):
    rendered = rendered_instance(values)
    config = load_instance(tmp_path, rendered)
    settings = parse_settings(read_yaml(default_config_text()), "embedded ct.yaml")
    local = yaml.safe_load(DAGSTER_YAML.format(base_dir=tmp_path,
                                               max_training_runs=settings.triggers.max_concurrent_training_runs))
    assert rendered["concurrency"] == local["concurrency"]
    # No run-coordinator config at all: also safe on a chart that renders max_concurrent_runs: -1.
    assert "config" not in rendered["run_coordinator"]
    assert config.pool_config.default_pool_limit == settings.triggers.max_concurrent_training_runs
    assert [t["key"] for t in config.run_queue_config.tag_concurrency_limits] == [TRAINING_TAG]
    # The chart does not render max_runtime_seconds (deploy/README.md); everything else is the same.
    assert {k: v for k, v in local["run_monitoring"].items() if k != "max_runtime_seconds"} == rendered[
        "run_monitoring"]


def test_training_pod_builds_with_a_gpu_and_persistent_checkpoints(pod):
    assert pod_problems(pod) == []


def test_dockerfile_and_images_match_pyproject(values, pod):
    assert dockerfile_problems(DOCKERFILE) == []
    assert {"cpu", "cu128"} <= torch_variants(DOCKERFILE)
    extra = " ".join(PYPROJECT["project"]["optional-dependencies"]["server"])
    assert all(p in extra for p in ("dagster-postgres", "dagster-k8s", "psycopg2", "s3fs")), extra
    assert version_problems(values, pod) == []


# --- a broken copy is refused ----------------------------------------------------------------

def _env_entry(values, name):
    return next(e for e in user_deployment(values)["env"] if e["name"] == name)


BROKEN_VALUES = {
    "a literal password in the env": (
        lambda v: _env_entry(v, "CT_PG_PASSWORD").update(value="hunter2") or _env_entry(v, "CT_PG_PASSWORD").pop(
            "valueFrom"), lambda v: env_problems(user_deployment(v)["env"], "code location")),
    "the tracking URI inline": (
        lambda v: _env_entry(v, "MLFLOW_TRACKING_URI").update(value="https://u:p@mlflow"),
        lambda v: env_problems(user_deployment(v)["env"], "code location")),
    "a lake that is not a URL": (
        lambda v: _env_entry(v, "CT_LAKE_URL").update(value="/data/lake"),
        lambda v: env_problems(user_deployment(v)["env"], "code location")),
    "a run pod without CT_LAKE_URL": (
        lambda v: run_launcher(v)["runK8sConfig"]["containerConfig"].update(
            env=[e for e in user_deployment(v)["env"] if e["name"] != "CT_LAKE_URL"]),
        lambda v: env_problems(run_launcher(v)["runK8sConfig"]["containerConfig"]["env"], "run pods")),
    "a literal Postgres password for the chart": (
        lambda v: v["postgresql"].update(postgresqlPassword="hunter2"), schema_problems),
    "the chart generating the password secret": (
        lambda v: v.update(generatePostgresqlPasswordSecret=True), secret_problems),
    "an unknown top-level key": (lambda v: v.update(dagsterWebserverr={}), schema_problems),
    "a run-monitoring key the chart does not render": (
        lambda v: v["dagsterDaemon"]["runMonitoring"].update(maxRuntimeSeconds=21600), schema_problems),
    "a launcher type the chart does not know": (lambda v: v["runLauncher"].update(type="K8sLauncher"),
                                                schema_problems),
    "a misspelt env field": (lambda v: _env_entry(v, "CT_PG_PORT").update(valu="5432"), schema_problems),
    "a misspelt volume field": (lambda v: user_deployment(v)["volumes"][0].update(emptydir={}), k8s_problems),
    "another Dagster for the webserver": (
        lambda v: v["dagsterWebserver"]["image"].update(tag="1.13.26"), lambda v: version_problems(v, deploy_yaml(
            "training-pod.yaml"))),
}


@pytest.mark.parametrize("case", sorted(BROKEN_VALUES))
def test_a_broken_values_copy_is_refused(values, case):
    break_it, check = BROKEN_VALUES[case]
    assert check(values) == []
    broken = copy.deepcopy(values)
    break_it(broken)
    assert check(broken), f"{case}: not caught"


def test_run_limits_in_two_places_make_dagster_refuse_the_instance(values, tmp_path):
    values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]["tagConcurrencyLimits"] = [
        {"key": TRAINING_TAG, "value": "true", "limit": 1}]
    with pytest.raises(Exception, match="incompatible with the `concurrency > runs` config"):
        load_instance(tmp_path, rendered_instance(values))


BROKEN_PODS = {
    "no GPU": lambda p: p["containers"][0]["resources"]["limits"].pop(GPU),
    "checkpoints on an emptyDir": lambda p: p["volumes"].__setitem__(
        [v["name"] for v in p["volumes"]].index("checkpoints"), {"name": "checkpoints", "emptyDir": {}}),
    "checkpoints not mounted": lambda p: p["containers"][0]["volumeMounts"].pop(1),
    "a misspelt pod key": lambda p: p.update(nodeSelecter=p.pop("nodeSelector")),
    "restarted in place": lambda p: p.update(restartPolicy="Always"),
    "a literal secret": lambda p: p["containers"][0]["env"].__setitem__(
        [e["name"] for e in p["containers"][0]["env"]].index("AWS_SECRET_ACCESS_KEY"),
        {"name": "AWS_SECRET_ACCESS_KEY", "value": "abc"}),
}


@pytest.mark.parametrize("case", sorted(BROKEN_PODS))
def test_a_broken_training_pod_is_refused(pod, case):
    BROKEN_PODS[case](pod)
    assert pod_problems(pod), f"{case}: not caught"


@pytest.mark.parametrize("edit", [
    lambda t: t.replace(f"torch=={TORCH}", "torch==2.12.0"),
    lambda t: t.replace("ARG TORCH=cpu", "ARG TORCH=cu128"),
    lambda t: t.replace("USER 10001:10001", "USER root"),
    lambda t: t.replace("\nCMD ", "\nENTRYPOINT "),
    lambda t: t.replace('".[server]"', '"."'),
], ids=["another torch", "GPU by default", "root", "entrypoint", "no server extra"])
def test_a_broken_dockerfile_is_refused(edit):
    assert dockerfile_problems(edit(DOCKERFILE))


# --- the chart's own schema, where one is at hand --------------------------------------------

def test_official_schema_preparation_works_offline():
    chart_like = {"type": "object", "required": ["dagsterWebserver"], "properties": {"env": {
        "type": "object", "$ref": "https://kubernetesjsonschema.dev/v1.18.0/_definitions.json#/x"},
        "telemetry": {"type": "object", "required": ["enabled"], "additionalProperties": False,
                      "properties": {"enabled": {"type": "boolean"}}}}}
    prepared = official_schema(chart_like)
    assert schema_problems({"env": {}, "telemetry": {}}, prepared) == []
    assert schema_problems({"telemetry": {"enabled": "yes"}}, prepared)


@pytest.mark.skipif(not os.environ.get(OFFICIAL_SCHEMA_ENV),
                    reason=f"set {OFFICIAL_SCHEMA_ENV} to the chart's values.schema.json (helm pull)")
def test_values_match_the_official_chart_schema(values):
    schema = json.loads(Path(os.environ[OFFICIAL_SCHEMA_ENV]).read_text(encoding="utf-8"))
    assert schema_problems(values, official_schema(schema)) == []
