"""The checks behind test_deploy.py: each returns the problems it finds in deploy/ (or a loaded copy)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import jsonschema
import kubernetes.client as k8s
import yaml
from dagster import DagsterInstance
from dagster_k8s.models import k8s_model_from_dict, k8s_snake_case_dict
from dagster_k8s.pipes import build_pod_body

from ct_assets.core.profile import PG_ENV, PROFILE_ENV, SECRET_ENV, SERVER, SERVER_REQUIRED, server_profile

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SCHEMA = json.loads((DEPLOY / "schema" / "values.schema.json").read_text(encoding="utf-8"))
DOCKERFILE = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
README = (DEPLOY / "README.md").read_text(encoding="utf-8")
PG_SECRET_KEY = "postgresql-password"  # the key the chart reads from global.postgresqlSecretName
WORKER = ["python", "-m", "ct_assets.training.pipes_worker"]
GPU = "nvidia.com/gpu"
OFFICIAL_SCHEMA_ENV = "CT_DAGSTER_CHART_SCHEMA"


def _pin(name: str) -> str:
    for dep in PYPROJECT["project"]["dependencies"]:
        m = re.fullmatch(rf"{re.escape(name)}==([\w.]+)", dep.strip())
        if m:
            return m.group(1)
    raise AssertionError(f"pyproject.toml pins no {name}")


DAGSTER, TORCH = _pin("dagster"), _pin("torch")
VERSION = PYPROJECT["project"]["version"]


def deploy_yaml(name: str):
    return yaml.safe_load((DEPLOY / name).read_text(encoding="utf-8"))


def user_deployment(values) -> dict:
    (ud,) = values["dagster-user-deployments"]["deployments"]
    return ud


def run_launcher(values) -> dict:
    return values["runLauncher"]["config"]["k8sRunLauncher"]


# --- checks: each returns a list of problems ---------------------------------------------------

def schema_problems(values, schema=SCHEMA) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    return sorted(f"{'/'.join(map(str, e.absolute_path)) or '<top level>'}: {e.message}"
                  for e in validator.iter_errors(values))


def _k8s(model, data, where: str, problems: list[str], keys_only: bool = False) -> None:
    try:
        snake = k8s_snake_case_dict(model, data)
        if not keys_only:  # a partial object (container_config) is checked the way dagster-k8s does
            k8s_model_from_dict(model, snake)
    except Exception as err:  # noqa: BLE001 - the kubernetes models raise plain exceptions
        problems.append(f"{where}: {err}")


def k8s_problems(values) -> list[str]:
    problems: list[str] = []
    ud, rl = user_deployment(values), run_launcher(values)
    for where, obj in (("user deployment", ud), ("run launcher", rl)):
        for i, item in enumerate(obj.get("env", [])):
            _k8s(k8s.V1EnvVar, item, f"{where} env[{i}]", problems)
        for i, item in enumerate(obj.get("volumeMounts", [])):
            _k8s(k8s.V1VolumeMount, item, f"{where} volumeMounts[{i}]", problems)
        for i, item in enumerate(obj.get("volumes", [])):
            _k8s(k8s.V1Volume, item, f"{where} volumes[{i}]", problems)
        for key, model in (("resources", k8s.V1ResourceRequirements), ("securityContext", k8s.V1SecurityContext),
                           ("podSecurityContext", k8s.V1PodSecurityContext)):
            if obj.get(key):
                _k8s(model, obj[key], f"{where} {key}", problems)
    probe = {k: v for k, v in ud.get("startupProbe", {}).items() if k != "enabled"}
    _k8s(k8s.V1Probe, probe, "user deployment startupProbe", problems)
    run_cfg = rl.get("runK8sConfig") or {}
    _k8s(k8s.V1Container, run_cfg.get("containerConfig") or {}, "runK8sConfig.containerConfig", problems, True)
    _k8s(k8s.V1PodSpec, run_cfg.get("podSpecConfig") or {}, "runK8sConfig.podSpecConfig", problems, True)
    return problems


def env_problems(env: list[dict], where: str) -> list[str]:
    """The server profile's variables are all there (server_profile accepts them) and every
    secret is a secretKeyRef."""
    by_name: dict[str, dict] = {}
    problems = []
    for entry in env:
        if entry["name"] in by_name:
            problems.append(f"{where}: {entry['name']} is set twice")
        by_name[entry["name"]] = entry
    if by_name.get(PROFILE_ENV, {}).get("value") != SERVER:
        problems.append(f"{where}: {PROFILE_ENV} must be {SERVER!r}")
    for name in ("CT_HOME", *SERVER_REQUIRED):
        if name not in by_name:
            problems.append(f"{where}: {name} is not set")
    for name in SECRET_ENV:
        entry = by_name.get(name, {})
        if "value" in entry or "secretKeyRef" not in entry.get("valueFrom", {}):
            problems.append(f"{where}: {name} must come from a Secret (valueFrom.secretKeyRef), never a literal")
    seen = {name: e.get("value", "<from a secret>") for name, e in by_name.items()}
    try:
        server_profile(seen)
    except ValueError as err:
        problems.append(f"{where}: {err}")
    return problems


def secret_problems(values) -> list[str]:
    """Postgres: the chart and ct_assets read one database with one password, from one Secret."""
    pg, ud = values["postgresql"], user_deployment(values)
    env = {e["name"]: e for e in ud["env"]}
    problems = []
    if values.get("generatePostgresqlPasswordSecret") is not False:
        problems.append("generatePostgresqlPasswordSecret must be false (the chart would write the password)")
    if pg.get("postgresqlPassword"):
        problems.append("postgresql.postgresqlPassword is a literal password")
    want = {"name": values["global"]["postgresqlSecretName"], "key": PG_SECRET_KEY}
    got = env.get(PG_ENV["password"], {}).get("valueFrom", {}).get("secretKeyRef")
    if got != want:
        problems.append(f"{PG_ENV['password']} reads {got}, not the chart's Postgres secret {want}")
    same = {"hostname": pg["postgresqlHost"], "port": str(pg["service"]["port"]),
            "username": pg["postgresqlUsername"], "db_name": pg["postgresqlDatabase"]}
    for key, chart_value in same.items():
        if env.get(PG_ENV[key], {}).get("value") != chart_value:
            problems.append(f"{PG_ENV[key]} is not the chart's Postgres {key} ({chart_value!r})")
    return problems


def secret_refs(env: list[dict]) -> set[tuple[str, str]]:
    refs = (e.get("valueFrom", {}).get("secretKeyRef") for e in env)
    return {(r["name"], r["key"]) for r in refs if r}


def rendered_instance(values) -> dict:
    """The dagster.yaml sections the chart's configmap-instance.yaml renders from these values
    (templates/helpers/instance/_run-coordinator.tpl and _concurrency.tpl, as of the chart with
    the top-level `concurrency` key): an unset or empty queued-run-coordinator field is left out."""
    daemon, conc = values["dagsterDaemon"], values.get("concurrency") or {}
    out: dict = {"telemetry": {"enabled": values["telemetry"]["enabled"]}}
    rc = daemon["runCoordinator"]
    if rc["enabled"]:
        q = rc["config"]["queuedRunCoordinator"]
        names = {"maxConcurrentRuns": "max_concurrent_runs", "tagConcurrencyLimits": "tag_concurrency_limits",
                 "dequeueIntervalSeconds": "dequeue_interval_seconds", "dequeueUseThreads": "dequeue_use_threads",
                 "dequeueNumWorkers": "dequeue_num_workers"}
        cfg = {snake: q[k] for k, snake in names.items() if q.get(k) not in (None, [], False)}
        block = q.get("blockOpConcurrencyLimitedRuns")
        if block:
            cfg["block_op_concurrency_limited_runs"] = {"enabled": block["enabled"],
                                                        "op_concurrency_slot_buffer": block["opConcurrencySlotBuffer"]}
        out["run_coordinator"] = {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator",
                                  **({"config": cfg} if cfg else {})}
    monitoring = daemon["runMonitoring"]
    if monitoring["enabled"]:
        out["run_monitoring"] = {re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(): v for k, v in monitoring.items()}
    if conc.get("enabled"):
        section: dict = {}
        pools = {"default_limit": conc.get("pools", {}).get("defaultLimit"),
                 "granularity": conc.get("pools", {}).get("granularity"),
                 "op_granularity_run_buffer": conc.get("pools", {}).get("opGranularityRunBuffer")}
        if any(v is not None for v in pools.values()):
            section["pools"] = {k: v for k, v in pools.items() if v is not None}
        runs = conc.get("runs", {})
        if runs.get("maxConcurrentRuns") is not None or runs.get("tagConcurrencyLimits"):
            section["runs"] = {}
            if runs.get("maxConcurrentRuns") is not None:
                section["runs"]["max_concurrent_runs"] = runs["maxConcurrentRuns"]
            if runs.get("tagConcurrencyLimits"):
                section["runs"]["tag_concurrency_limits"] = [
                    {"key": t["key"], **({"value": t["value"]} if t.get("value") else {}), "limit": t["limit"]}
                    for t in runs["tagConcurrencyLimits"]]
        out["concurrency"] = section
    return out


def load_instance(tmp_path: Path, instance: dict):
    """Loads the rendered sections in the pinned Dagster (SQLite storage stands in for Postgres)."""
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump({"storage": {"sqlite": {"base_dir": str(tmp_path)}},
                                                           **instance}))
    with DagsterInstance.from_config(str(tmp_path)) as inst:
        assert type(inst.run_coordinator).__name__ == "QueuedRunCoordinator"
        return inst.get_concurrency_config()


def pod_problems(spec) -> list[str]:
    try:  # what PipesK8sClient.run does with base_pod_spec (it refuses unknown keys)
        body = build_pod_body(pod_name="lora-adapter-check", image=None, command=None,
                              env_vars={"DAGSTER_PIPES_CONTEXT": "x"}, base_pod_meta=None, base_pod_spec=spec)
    except Exception as err:  # noqa: BLE001 - dagster-k8s and the kubernetes models raise plain exceptions
        return [f"dagster-k8s cannot build the pod: {err}"]
    problems = env_problems(spec["containers"][0].get("env", []), "training-pod.yaml")
    container = body.spec.containers[0]
    if container.command != WORKER:
        problems.append(f"the container runs {container.command}, not {WORKER}")
    if ((container.resources and container.resources.limits) or {}).get(GPU) != "1":
        problems.append(f"no GPU: resources.limits[{GPU!r}] must be '1'")
    if not body.spec.node_selector or not any(t.key == GPU for t in body.spec.tolerations or []):
        problems.append(f"no GPU pool: a nodeSelector and a toleration for {GPU} are needed")
    if body.spec.restart_policy != "Never":
        problems.append("restartPolicy must be Never: a retry is a new pod that resumes from the checkpoint")
    ct_home = next((e.value for e in container.env if e.name == "CT_HOME"), None)
    mounts = {m.mount_path: m.name for m in container.volume_mounts or []}
    volumes = {v.name: v for v in body.spec.volumes or []}
    ckpt = mounts.get(f"{ct_home}/checkpoints")
    if ckpt is None or volumes.get(ckpt) is None or volumes[ckpt].persistent_volume_claim is None:
        problems.append(f"{ct_home}/checkpoints must be mounted from a PersistentVolumeClaim")
    return problems


def dockerfile_problems(text: str) -> list[str]:
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    problems = []
    expect = {"base image": r"^FROM python:3\.11-slim\s*$", "TORCH build arg": r"^ARG TORCH=cpu\s*$",
              "torch index": r"--index-url \"?https://download\.pytorch\.org/whl/\$\{TORCH\}\"?",
              "the project with its server extra": r"pip install \"?\.\[server\]\"?"}
    problems += [f"Dockerfile: no {what} ({pattern})" for what, pattern in expect.items()
                 if not re.search(pattern, text, re.M)]
    pins = re.findall(r"torch==([\w.+]+)", text)
    if pins != [TORCH]:
        problems.append(f"Dockerfile pins torch {pins}, pyproject.toml torch=={TORCH}")
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append("Dockerfile: the image must end as a non-root USER")
    if re.search(r"^ENTRYPOINT", text, re.M):
        problems.append("Dockerfile: an ENTRYPOINT would be prepended to the chart's and the launchers' args")
    cmd = re.search(r"^CMD (\[.*\])\s*$", text, re.M)
    module = PYPROJECT["tool"]["dagster"]["module_name"]
    if not cmd or json.loads(cmd.group(1))[:3] != ["dagster", "api", "grpc"] or \
            json.loads(cmd.group(1))[-2:] != ["-m", module]:
        problems.append(f"Dockerfile: CMD must be dagster api grpc ... -m {module}")
    return problems


def torch_variants(text: str) -> set[str]:
    m = re.search(r'case "\$TORCH" in\s*\\?\s*([\w|]+)\)', text)
    return set(m.group(1).split("|")) if m else set()


def version_problems(values, pod) -> list[str]:
    problems = [f"{where} image tag {img['tag']!r} is not dagster=={DAGSTER}"
                for where, img in (("webserver", values["dagsterWebserver"]["image"]),
                                   ("daemon", values["dagsterDaemon"]["image"])) if img["tag"] != DAGSTER]
    if f"dagster/dagster {DAGSTER}" not in (DEPLOY / "values.yaml").read_text(encoding="utf-8").split("\n", 2)[0]:
        problems.append(f"values.yaml's first line must name the chart, dagster/dagster {DAGSTER}")
    if f"--version {DAGSTER}" not in README:
        problems.append(f"deploy/README.md must install the chart with --version {DAGSTER}")
    ud = user_deployment(values)
    variants = torch_variants(DOCKERFILE)
    code_image = f"{ud['image']['repository']}:{ud['image']['tag']}"
    for where, image in (("code location", code_image), ("training pod", pod["containers"][0]["image"])):
        repo, _, tag = image.rpartition(":")
        version, _, variant = tag.partition("-")
        if repo != ud["image"]["repository"] or version != VERSION or variant not in variants:
            problems.append(f"{where} image {image}: want {ud['image']['repository']}:{VERSION}-<one of {variants}>")
    if ud.get("dagsterApiGrpcArgs") != ["-m", PYPROJECT["tool"]["dagster"]["module_name"]]:
        problems.append("the code location must serve -m " + PYPROJECT["tool"]["dagster"]["module_name"])
    return problems


def official_schema(schema: dict) -> dict:
    """The chart's values.schema.json made usable on an override file, offline: `required` is
    dropped (helm checks the values merged with the chart's defaults, which hold the required
    keys), and the references to kubernetesjsonschema.dev are dropped (their objects are
    checked against the kubernetes models above instead)."""
    if isinstance(schema, dict):
        return {k: official_schema(v) for k, v in schema.items()
                if k != "required" and not (k == "$ref" and str(v).startswith("http"))}
    if isinstance(schema, list):
        return [official_schema(v) for v in schema]
    return schema
