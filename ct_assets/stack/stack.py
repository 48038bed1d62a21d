"""The whole server profile on one machine: Postgres, an S3-protocol server and an MLflow
tracking server, and the environment that points CT_PROFILE=server at them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from ct_assets.core.profile import (LAKE_URL_ENV, LANDING_URL_ENV, MLFLOW_TRACKING_URI_ENV, PG_ENV, PROFILE_ENV,
                                    SERVER)
from ct_assets.stack.mlflow_server import MlflowServer, mlflow_server
from ct_assets.stack.postgres import PostgresServer, postgres_server
from ct_assets.stack.s3 import S3Server, s3_server

DAGSTER_DB = "dagster"
# Not a CT_PROFILE variable: MLflow clients that write artifacts straight to S3 (an
# experiment whose artifact root is s3://) read their endpoint from it.
MLFLOW_S3_ENDPOINT_ENV = "MLFLOW_S3_ENDPOINT_URL"


@dataclass(frozen=True)
class ServerStack:
    postgres: PostgresServer
    s3: S3Server
    mlflow: MlflowServer
    # Seconds each server took to answer, in start order (postgres, s3, mlflow).
    startup_seconds: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def lake_url(self) -> str:
        return f"s3://{self.s3.bucket}/lake"

    @property
    def landing_url(self) -> str:
        return f"s3://{self.s3.bucket}/landing"

    @property
    def pids(self) -> dict[str, int]:
        return {"postgres": self.postgres.pid, "s3": self.s3.pid, "mlflow": self.mlflow.pid}

    @property
    def ports(self) -> dict[str, int]:
        return {"postgres": self.postgres.port, "s3": self.s3.port, "mlflow": self.mlflow.port}

    def env(self) -> dict[str, str]:
        """Exactly the variables ct_assets.core.profile reads for CT_PROFILE=server, plus
        MLFLOW_S3_ENDPOINT_URL."""
        pg = self.postgres
        pg_values = {"hostname": pg.host, "port": str(pg.port), "username": pg.user, "password": pg.password,
                     "db_name": pg.db}
        return {
            PROFILE_ENV: SERVER,
            **{PG_ENV[key]: value for key, value in pg_values.items()},
            MLFLOW_TRACKING_URI_ENV: self.mlflow.tracking_uri,
            LAKE_URL_ENV: self.lake_url,
            LANDING_URL_ENV: self.landing_url,
            **self.s3.env(),
            MLFLOW_S3_ENDPOINT_ENV: self.s3.endpoint_url,
        }


@contextmanager
def server_stack(*, postgres: PostgresServer | None = None, s3: S3Server | None = None) -> Iterator[ServerStack]:
    """Start the servers (reusing a given ``postgres`` or ``s3``, which stay the caller's
    to stop) and yield the ServerStack; on exit stop what was started here, last first."""
    timings: dict[str, float] = {}
    with ExitStack() as started:
        t0 = time.monotonic()
        if postgres is None:
            postgres = started.enter_context(postgres_server(db=DAGSTER_DB))
            timings["postgres"] = time.monotonic() - t0
        t1 = time.monotonic()
        if s3 is None:
            s3 = started.enter_context(s3_server())
            timings["s3"] = time.monotonic() - t1
        t2 = time.monotonic()
        mlflow = started.enter_context(mlflow_server(postgres, s3))
        timings["mlflow"] = time.monotonic() - t2
        yield ServerStack(postgres, s3, mlflow, timings)
