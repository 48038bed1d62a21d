"""CT_PROFILE: which engines hold the state (pure: no Dagster).

``local`` (the default, zero set-up): SQLite Dagster storage, MLflow on SQLite with
artifacts on disk, the lake and the landing zone as folders, all under CT_HOME.

``server``: Postgres for Dagster's run, event-log and schedule storage (dagster-postgres),
an MLflow tracking server (its own database and artifact store), and the lake and the
landing zone on an object store (``s3://``; any S3-protocol server through
``AWS_ENDPOINT_URL``). Every value comes from the environment; the secrets (the Postgres
password, credentials inside the tracking URI, the S3 keys) are never written to a file:
``dagster.yaml`` names them as ``{env: ...}``, resources take them as ``EnvVar``, and
boto reads its own ``AWS_*`` variables.

``deploy/`` (Helm values, Dockerfile) sets exactly these variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

PROFILE_ENV = "CT_PROFILE"
LOCAL, SERVER = "local", "server"
PROFILES = (LOCAL, SERVER)

# dagster-postgres's ``postgres_db`` keys -> the variables that carry them.
PG_ENV = {
    "hostname": "CT_PG_HOST",
    "port": "CT_PG_PORT",
    "username": "CT_PG_USER",
    "password": "CT_PG_PASSWORD",
    "db_name": "CT_PG_DB",
}
MLFLOW_TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"  # MLflow's own variable
LAKE_URL_ENV = "CT_LAKE_URL"
LANDING_URL_ENV = "CT_LANDING_URL"
# Read by boto/s3fs themselves, listed so errors and docs can name them.
S3_ENV = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
SECRET_ENV = (PG_ENV["password"], MLFLOW_TRACKING_URI_ENV, "AWS_SECRET_ACCESS_KEY")
# The registry lock spec meaning "a Postgres advisory lock" (ct_assets.registry.guards).
PG_ADVISORY_LOCK = "postgres-advisory-lock"
SERVER_REQUIRED = (*PG_ENV.values(), MLFLOW_TRACKING_URI_ENV, LAKE_URL_ENV, LANDING_URL_ENV)


class ProfileError(ValueError):
    """CT_PROFILE names no profile, or the server profile lacks a variable it needs."""


def profile_name(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    name = env.get(PROFILE_ENV, LOCAL).strip() or LOCAL
    if name not in PROFILES:
        raise ProfileError(f"{PROFILE_ENV}={name!r}: expected one of {', '.join(PROFILES)}")
    return name


def missing_server_env(env: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if env is None else env
    return [k for k in SERVER_REQUIRED if not env.get(k)]


@dataclass(frozen=True)
class Profile:
    """What the chosen profile decided. URLs here are not secret (no credentials in them);
    the tracking URI is read from the environment where it is used."""

    name: str
    lake_url: str
    landing_url: str

    @property
    def is_server(self) -> bool:
        return self.name == SERVER


def server_profile(env: Mapping[str, str] | None = None) -> Profile:
    env = os.environ if env is None else env
    missing = missing_server_env(env)
    if missing:
        raise ProfileError(f"{PROFILE_ENV}=server needs {', '.join(missing)} in the environment "
                           "(deploy/README.md lists every variable)")
    for key in (LAKE_URL_ENV, LANDING_URL_ENV):
        if "://" not in env[key]:
            raise ProfileError(f"{key}={env[key]!r}: the server profile keeps data on an object store; "
                               "give a URL such as s3://bucket/lake")
    return Profile(SERVER, env[LAKE_URL_ENV].rstrip("/"), env[LANDING_URL_ENV].rstrip("/"))
