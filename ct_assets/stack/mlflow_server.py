"""A real MLflow tracking server on 127.0.0.1: its own database on the stack's Postgres,
artifacts proxied to s3://<bucket>/mlflow on the stack's S3 server.

Started as ``python -m mlflow server`` with this interpreter (the venv's mlflow), never
imported: only ct_assets.registry talks to MLflow. The CLI runs the database migrations
and then its uvicorn child; both sit in one process group, which is what we stop.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ct_assets.stack.postgres import PostgresServer
from ct_assets.stack.process import LOOPBACK, ServerProcess, free_port, http_status
from ct_assets.stack.s3 import S3Server

ARTIFACT_PREFIX = "mlflow"
# Migrating an empty database to MLflow 3's schema takes ~10-20 s; a loaded CI machine more.
START_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class MlflowServer:
    tracking_uri: str
    artifacts_destination: str
    db: str
    pid: int

    @property
    def port(self) -> int:
        return int(self.tracking_uri.rsplit(":", 1)[1])


def server_env(postgres: PostgresServer, s3: S3Server, db: str) -> dict[str, str]:
    """The server's environment. The backend URI carries the Postgres password, so it goes
    in MLflow's own MLFLOW_BACKEND_STORE_URI variable rather than on the command line,
    where every user of the machine can read it (ps)."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(s3.env())
    env.update({
        "MLFLOW_BACKEND_STORE_URI": postgres.url(db),
        # MLflow's S3 artifact repository reads its endpoint from here, not AWS_ENDPOINT_URL.
        "MLFLOW_S3_ENDPOINT_URL": s3.endpoint_url,
        # The GenAI job runner (a huey consumer plus a spool dir in /dev/shm) serves
        # nothing this project uses; off, the server starts faster and leaves nothing behind.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    })
    return env


@contextmanager
def mlflow_server(postgres: PostgresServer, s3: S3Server, *, db: str = "mlflow",
                  start_timeout: float = START_TIMEOUT_S) -> Iterator[MlflowServer]:
    """Create database ``db`` on ``postgres``, start the server on a free port, wait for
    /health, yield the MlflowServer; stop its process group on exit."""
    postgres.create_database(db)
    workdir = Path(tempfile.mkdtemp(prefix="ct_mlflow_"))
    port = free_port()
    tracking_uri = f"http://{LOOPBACK}:{port}"
    destination = f"s3://{s3.bucket}/{ARTIFACT_PREFIX}"
    argv = [sys.executable, "-m", "mlflow", "server", "--serve-artifacts", "--artifacts-destination", destination,
            "--host", LOOPBACK, "--port", str(port), "--workers", "1"]
    # cwd=workdir: a server started from the repo would drop ./mlruns or ./mlartifacts there.
    server = ServerProcess("mlflow server", argv, workdir / "mlflow.log", env=server_env(postgres, s3, db),
                           cwd=workdir)
    try:
        server.start()
        server.wait_until_ready(lambda: http_status(f"{tracking_uri}/health") == 200, start_timeout,
                                f"answer {tracking_uri}/health")
        yield MlflowServer(tracking_uri, destination, db, server.pid)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
