"""Which launcher CT_TRAINING_LAUNCHER builds, and what the k8s one would submit.

Why: the Kubernetes launcher cannot run here (no cluster), and its mistakes would show up
only on a GPU node: a secret written into the Pod object in clear, a lost GPU limit, the
wrong command. So the pod it would create is built with dagster-k8s's own builder and
read back; the client's run is replaced by a recorder, so nothing contacts a cluster.
"""

from __future__ import annotations

import sys

import pytest
import yaml
from dagster import PipesSubprocessClient
from dagster_k8s import PipesK8sClient

from ct_assets.training.launcher import (
    WORKER_MODULE,
    K8sLauncher,
    LauncherError,
    SubprocessLauncher,
    build_launcher,
    read_pod_spec,
)

GPU_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"labels": {"app": "ct-training"}},
    "spec": {
        "nodeSelector": {"nvidia.com/gpu.present": "true"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "containers": [{
            "name": "training",
            "resources": {"limits": {"nvidia.com/gpu": 1}},
            "env": [{"name": "MLFLOW_TRACKING_URI",
                     "valueFrom": {"secretKeyRef": {"name": "ct-mlflow", "key": "tracking-uri"}}}],
            "volumeMounts": [{"name": "ct-home", "mountPath": "/ct_home"}],
        }],
        "volumes": [{"name": "ct-home", "persistentVolumeClaim": {"claimName": "ct-home"}}],
    },
}
K8S_ENV = {"CT_TRAINING_LAUNCHER": "k8s", "CT_TRAINING_IMAGE": "registry.example/ct:1.2",
           "CT_TRAINING_NAMESPACE": "ml"}
PIPES_ENV = {"DAGSTER_PIPES_CONTEXT": "ctx", "DAGSTER_PIPES_MESSAGES": "msgs"}


class RecordingK8sClient(PipesK8sClient):
    """PipesK8sClient whose run records its arguments instead of creating a pod."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[dict] = []

    def run(self, **kwargs):
        self.calls.append(kwargs)
        return "invocation"


@pytest.fixture
def gpu_pod(tmp_path):
    path = tmp_path / "training-pod.yaml"
    path.write_text(yaml.safe_dump(GPU_POD))
    return path


@pytest.mark.parametrize("env", [
    {},  # unset: the default
    {"CT_TRAINING_LAUNCHER": "subprocess"},
    {"CT_TRAINING_LAUNCHER": "  "},  # blank counts as unset
])
def test_the_default_launcher_is_a_terminating_subprocess_of_this_interpreter(env):
    launcher = build_launcher(env)
    assert isinstance(launcher, SubprocessLauncher) and isinstance(launcher.client, PipesSubprocessClient)
    assert launcher.client.forward_termination  # a cancelled run stops the training too
    assert launcher.command == [sys.executable, "-m", WORKER_MODULE]


def test_an_unknown_launcher_is_an_error_naming_it():
    with pytest.raises(LauncherError, match=r"CT_TRAINING_LAUNCHER='slurm'.*subprocess, k8s"):
        build_launcher({"CT_TRAINING_LAUNCHER": "slurm"})


def test_the_k8s_launcher_submits_the_worker_on_the_gpu_pod_with_the_secret_left_to_its_secret_ref(gpu_pod):
    launcher = build_launcher(K8S_ENV, pod_spec=gpu_pod)
    assert isinstance(launcher, K8sLauncher) and isinstance(launcher.client, PipesK8sClient)
    env = {"MLFLOW_TRACKING_URI": "https://ops:s3cret@mlflow.example", "CT_EXTRA": "1"}

    launcher.client = recorder = RecordingK8sClient()
    assert launcher.launch(context="ctx", extras={"partition": "2026-09-05"}, env=env) == "invocation"
    (call,) = recorder.calls
    assert call["context"] == "ctx" and call["extras"] == {"partition": "2026-09-05"}
    assert (call["image"], call["namespace"]) == ("registry.example/ct:1.2", "ml")
    assert call["command"] == ["python", "-m", WORKER_MODULE]
    assert call["env"] == {"CT_EXTRA": "1"}, "the pod spec declares MLFLOW_TRACKING_URI: its secretKeyRef wins"

    pod = launcher.pod_body("ct-training-pod", env, PIPES_ENV)
    (container,) = pod.spec.containers
    assert (container.name, container.image) == ("training", "registry.example/ct:1.2")
    assert container.command == ["python", "-m", WORKER_MODULE]
    assert str(container.resources.limits["nvidia.com/gpu"]) == "1"
    assert pod.spec.node_selector == {"nvidia.com/gpu.present": "true"} and pod.spec.restart_policy == "Never"
    assert pod.spec.volumes[0].persistent_volume_claim.claim_name == "ct-home"
    assert pod.metadata.name == "ct-training-pod" and pod.metadata.labels["app"] == "ct-training"
    by_name = {e.name: e for e in container.env}
    assert {"DAGSTER_PIPES_CONTEXT", "DAGSTER_PIPES_MESSAGES", "CT_EXTRA", "MLFLOW_TRACKING_URI"} <= set(by_name)
    uri = by_name["MLFLOW_TRACKING_URI"]
    assert uri.value is None and uri.value_from.secret_key_ref.name == "ct-mlflow"
    assert "s3cret" not in str(pod.to_dict()), "the tracking URI's password reached the Pod object"


def test_the_k8s_launcher_refuses_to_write_an_undeclared_secret_into_the_pod(tmp_path):
    launcher = build_launcher(K8S_ENV, pod_spec=tmp_path / "absent.yaml")  # no pod spec: image and command only
    with pytest.raises(LauncherError, match=r"MLFLOW_TRACKING_URI would be written into the training pod in clear"):
        launcher.run_args({}, {"MLFLOW_TRACKING_URI": "https://ops:s3cret@mlflow.example"})


def test_the_k8s_launcher_needs_an_image_from_the_env_or_the_pod_spec(tmp_path, gpu_pod):
    with pytest.raises(LauncherError, match="CT_TRAINING_IMAGE"):
        build_launcher({"CT_TRAINING_LAUNCHER": "k8s"}, pod_spec=gpu_pod)
    bare = tmp_path / "bare.yaml"  # a bare PodSpec (no kind: Pod) that names the image itself
    bare.write_text(yaml.safe_dump({"containers": [{"name": "t", "image": "registry.example/ct:2"}]}))
    assert read_pod_spec(bare) == ({"containers": [{"name": "t", "image": "registry.example/ct:2"}]}, {})
    launcher = build_launcher({"CT_TRAINING_LAUNCHER": "k8s"}, pod_spec=bare)
    assert launcher.pod_body("p", {}).spec.containers[0].image == "registry.example/ct:2"
