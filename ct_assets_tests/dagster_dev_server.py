"""A real `dagster dev` for the tests that drive it the way a user does: on a free
127.0.0.1 port, with a temporary CT_HOME, stopped by its process group.

Shared by ``test_dagster_dev.py`` (GraphQL launch) and ``test_ui_browser.py`` (headless
Chromium), so both exercise one server start-up and one shutdown.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from ct_assets.core.home import CtHome

REPO = Path(__file__).resolve().parents[1]
TERMINAL = ("SUCCESS", "FAILURE", "CANCELED")


@dataclass(frozen=True)
class DagsterDev:
    url: str
    home: CtHome
    log: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gql(url: str, query: str, variables: dict | None = None) -> dict:
    resp = requests.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30)
    resp.raise_for_status()
    body = resp.json()
    assert "errors" not in body, body
    return body["data"]


@contextlib.contextmanager
def running_dagster_dev(workdir: Path, start_timeout: float = 120) -> Iterator[DagsterDev]:
    """``dagster dev`` on the repo's workspace, its CT_HOME (and DAGSTER_HOME) under
    ``workdir``; yields once the webserver answers, stops the whole process group after."""
    home = CtHome(workdir / "ct_home").ensure()
    port = free_port()
    env = {**os.environ, "CT_HOME": str(home.root), "DAGSTER_HOME": str(home.dagster)}
    env.pop("CT_CONFIG", None)
    log_path = workdir / "dagster_dev.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port),
             "-w", "workspace.yaml"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            url = _wait_until_up(proc, port, log_path, start_timeout)
            yield DagsterDev(url=url, home=home, log=log_path)
        finally:
            _stop(proc)


def _wait_until_up(proc: subprocess.Popen, port: int, log_path: Path, timeout: float) -> str:
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"dagster dev exited: {log_path.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/server_info", timeout=2).ok:
                return url
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"dagster dev did not answer within {timeout:.0f} s")
        time.sleep(1)


def _stop(proc: subprocess.Popen) -> None:
    """SIGINT to the whole session (webserver, daemon, code server), then SIGKILL to what is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


STATUS = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"


def wait_for_run(url: str, run_id: str, timeout: float = 240) -> str:
    """The run's terminal status (or the last one seen when ``timeout`` runs out)."""
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = gql(url, STATUS, {"id": run_id})["runOrError"]["status"]
        if status in TERMINAL:
            break
        time.sleep(1)
    return status
