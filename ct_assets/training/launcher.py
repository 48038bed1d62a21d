"""Where lora_adapter's training process runs: a local subprocess (the default) or a
Kubernetes pod on a GPU node. Both speak Dagster Pipes to the same worker
(``python -m ct_assets.training.pipes_worker``), so the asset cannot tell them apart.

``CT_TRAINING_LAUNCHER`` chooses (``subprocess`` | ``k8s``). The k8s launcher takes its
image from ``CT_TRAINING_IMAGE``, its namespace from ``CT_TRAINING_NAMESPACE`` (else the
cluster's current one) and its base pod (GPU resources, node selector, volumes, secrets)
from ``deploy/training-pod.yaml`` when that file exists, or from ``CT_TRAINING_POD_SPEC``.
"""

from __future__ import annotations

import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from dagster import PipesSubprocessClient

from ct_assets.core.profile import SECRET_ENV

WORKER_MODULE = "ct_assets.training.pipes_worker"
LAUNCHER_ENV = "CT_TRAINING_LAUNCHER"
IMAGE_ENV = "CT_TRAINING_IMAGE"
NAMESPACE_ENV = "CT_TRAINING_NAMESPACE"
POD_SPEC_ENV = "CT_TRAINING_POD_SPEC"
# The checkout's deploy/ folder; an installed package has none and names the file by POD_SPEC_ENV.
DEFAULT_POD_SPEC = Path(__file__).resolve().parents[2] / "deploy" / "training-pod.yaml"
SUBPROCESS, K8S = "subprocess", "k8s"
LAUNCHERS = (SUBPROCESS, K8S)


class LauncherError(ValueError):
    """The launcher setting or its pod spec is unusable; the message names the culprit."""


class TrainingLauncher(ABC):
    """Starts one training process and waits for it; the Pipes session's result."""

    @abstractmethod
    def launch(self, context, extras: Mapping[str, Any], env: Mapping[str, str]):
        """Run the worker with ``extras`` (Pipes) and ``env`` (secrets): a
        PipesClientCompletedInvocation, or an exception if the process failed or vanished."""


class SubprocessLauncher(TrainingLauncher):
    def __init__(self, client: PipesSubprocessClient, python: str = sys.executable) -> None:
        self.client = client
        # The orchestrator's interpreter: the worker sees the same installed packages.
        self.command = [python, "-m", WORKER_MODULE]

    def launch(self, context, extras, env):
        return self.client.run(context=context, extras=dict(extras), command=self.command, env=dict(env))


class K8sLauncher(TrainingLauncher):
    def __init__(self, client, image: str | None, namespace: str | None,
                 base_pod_spec: Mapping[str, Any] | None = None, base_pod_meta: Mapping[str, Any] | None = None,
                 spec_source: str = "no pod spec") -> None:
        self.client, self.image, self.namespace = client, image, namespace
        self.base_pod_spec, self.base_pod_meta = dict(base_pod_spec or {}), dict(base_pod_meta or {})
        self.spec_source = spec_source
        # The image's interpreter; the pod has no orchestrator's sys.executable.
        self.command = ["python", "-m", WORKER_MODULE]
        first = (self.base_pod_spec.get("containers") or [{}])[0]
        if not (image or first.get("image")):
            raise LauncherError(f"{LAUNCHER_ENV}={K8S} needs an image: set {IMAGE_ENV} "
                                f"or containers[0].image in {spec_source}")
        self._declared = {e["name"] for e in first.get("env") or []}

    def pod_env(self, env: Mapping[str, str]) -> dict[str, str]:
        """What the pod gets as literal values. A variable the pod spec declares (a secretKeyRef)
        is the spec's: a literal would put the secret into the Pod object, readable by anyone
        allowed to get pods. A secret it does not declare is refused for the same reason."""
        out = {}
        for name, value in env.items():
            if name in self._declared:
                continue
            if name in SECRET_ENV:
                raise LauncherError(f"{name} would be written into the training pod in clear: declare it in "
                                    f"{self.spec_source} as containers[0].env with valueFrom.secretKeyRef")
            out[name] = value
        return out

    def run_args(self, extras: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
        """The arguments of PipesK8sClient.run, less the context."""
        return {"extras": dict(extras), "image": self.image, "command": self.command,
                "namespace": self.namespace, "env": self.pod_env(env),
                "base_pod_spec": self.base_pod_spec or None, "base_pod_meta": self.base_pod_meta or None}

    def pod_body(self, pod_name: str, env: Mapping[str, str], pipes_env: Mapping[str, str] | None = None):
        """The V1Pod ``launch`` would submit, built without a cluster (dagster-k8s's own builder)."""
        from dagster_k8s.pipes import build_pod_body

        args = self.run_args({}, env)
        return build_pod_body(pod_name=pod_name, image=args["image"], command=args["command"],
                              env_vars={**(pipes_env or {}), **self.client.env, **args["env"]},
                              base_pod_meta=args["base_pod_meta"], base_pod_spec=args["base_pod_spec"])

    def launch(self, context, extras, env):
        return self.client.run(context=context, **self.run_args(extras, env))


def read_pod_spec(path: Path) -> tuple[dict, dict]:
    """(pod spec, pod metadata) from a Pod manifest (kind: Pod) or a bare PodSpec; ({}, {}) if absent."""
    if not path.is_file():
        return {}, {}
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(doc, dict):
        raise LauncherError(f"{path}: expected a Pod manifest or a PodSpec mapping, got {type(doc).__name__}")
    if "spec" in doc or doc.get("kind") == "Pod":
        return dict(doc.get("spec") or {}), dict(doc.get("metadata") or {})
    return doc, {}


def build_launcher(env: Mapping[str, str] | None = None, pod_spec: Path | None = None) -> TrainingLauncher:
    """The launcher ``CT_TRAINING_LAUNCHER`` names (default: subprocess)."""
    env = os.environ if env is None else env
    kind = env.get(LAUNCHER_ENV, "").strip() or SUBPROCESS
    if kind == SUBPROCESS:
        # forward_termination: a cancelled run SIGINTs the worker, whose MLflow run then ends FAILED.
        return SubprocessLauncher(PipesSubprocessClient(forward_termination=True))
    if kind == K8S:
        try:
            from dagster_k8s import PipesK8sClient  # the `server` extra: only this launcher needs it
        except ModuleNotFoundError as err:
            raise LauncherError(f"{LAUNCHER_ENV}={K8S} needs dagster-k8s: pip install 'ct_assets[server]'") from err

        path = pod_spec or Path(env.get(POD_SPEC_ENV) or DEFAULT_POD_SPEC)
        spec, meta = read_pod_spec(path)
        return K8sLauncher(PipesK8sClient(), image=env.get(IMAGE_ENV) or None,
                           namespace=env.get(NAMESPACE_ENV) or None, base_pod_spec=spec, base_pod_meta=meta,
                           spec_source=str(path) if path.is_file() else f"{path} (absent)")
    raise LauncherError(f"{LAUNCHER_ENV}={kind!r}: expected one of {', '.join(LAUNCHERS)}")
