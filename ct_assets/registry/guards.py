"""What a failed registry call means, and the locks that serialise alias writes.

Errors that mean "MLflow is not reachable right now" become RegistryUnavailableError
(naming the URI) so a Dagster RetryPolicy can retry; everything else is RegistryError.
"""

from __future__ import annotations

import fcntl
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
import sqlalchemy.exc
from mlflow.exceptions import MlflowException

from ct_assets.core.profile import PG_ADVISORY_LOCK, PG_ENV

# MLflow reports "connection refused"/timeouts as INTERNAL_ERROR (REST client) and
# "database is locked" as TEMPORARILY_UNAVAILABLE (SQL store): all worth a retry.
_UNAVAILABLE_CODES = {"INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "SERVICE_UNDER_MAINTENANCE",
                      "REQUEST_LIMIT_EXCEEDED", "DEADLINE_EXCEEDED"}


class RegistryError(RuntimeError):
    """A registry operation failed for a reason retrying will not fix."""


class RegistryUnavailableError(RegistryError):
    """MLflow (tracking/registry store or artifact store) could not be reached."""


class ArtifactVerificationError(RegistryError):
    """Stored adapter artifacts differ from the local adapter directory."""


def redacted(uri: str) -> str:
    """A URI fit for a log line: a tracking server's URI may carry user:password@."""
    return re.sub(r"//[^/@]*@", "//***@", uri)


def outage_message(tracking_uri: str, op: str, detail: object) -> str:
    return f"MLflow at {redacted(tracking_uri)} unavailable during {op}: {detail}"


@contextmanager
def classify_failures(tracking_uri: str, op: str) -> Iterator[None]:
    """Re-raise whatever ``op`` raised as RegistryUnavailableError or RegistryError."""
    try:
        yield
    except MlflowException as e:
        if e.error_code in _UNAVAILABLE_CODES:
            raise RegistryUnavailableError(outage_message(tracking_uri, op, e.message)) from e
        raise RegistryError(f"{op} failed: {e.message}") from e
    except (OSError, sqlite3.Error, sqlalchemy.exc.SQLAlchemyError, requests.RequestException) as e:
        raise RegistryUnavailableError(outage_message(tracking_uri, op, e)) from e


@contextmanager
def exclusive_lock(lock_path: Path, timeout_s: float) -> Iterator[None]:
    """An inter-process flock on ``lock_path``; busy for longer than ``timeout_s`` is an
    outage (retryable), not a failure: the holder is another healthy writer."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as fh:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RegistryUnavailableError(f"registry lock {lock_path} busy for {timeout_s:.0f} s") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# A registry lock spec naming Postgres instead of a file: the server profile's writers run on
# several machines (pods), where a file lock serialises nothing. The connection is made from
# CT_PG_* at the moment of locking (ct_assets.core.profile), so no password is stored.
# pg_advisory_lock takes a bigint; any fixed key shared by every writer of the registry.
_ADVISORY_KEY = 0x0C7A55E75  # "ct assets"


@contextmanager
def postgres_advisory_lock(timeout_s: float) -> Iterator[None]:
    """A session-level Postgres advisory lock: released when we unlock, or by Postgres
    when our connection dies (a killed pod cannot leave it held)."""
    import psycopg2  # the server extra; only the server profile gets here

    env = {k: os.environ.get(v) for k, v in PG_ENV.items()}
    try:
        con = psycopg2.connect(host=env["hostname"], port=env["port"], user=env["username"],
                               password=env["password"], dbname=env["db_name"], connect_timeout=10)
    except psycopg2.Error as e:
        raise RegistryUnavailableError(f"registry lock: Postgres at {env['hostname']}:{env['port']} "
                                       f"unreachable: {e}") from e
    try:
        con.autocommit = True
        with con.cursor() as cur:
            deadline = time.monotonic() + timeout_s
            while True:
                cur.execute("SELECT pg_try_advisory_lock(%s)", (_ADVISORY_KEY,))
                if cur.fetchone()[0]:
                    break
                if time.monotonic() > deadline:
                    raise RegistryUnavailableError(f"registry lock (Postgres advisory lock {_ADVISORY_KEY}) "
                                                   f"busy for {timeout_s:.0f} s")
                time.sleep(0.05)
            try:
                yield
            finally:
                cur.execute("SELECT pg_advisory_unlock(%s)", (_ADVISORY_KEY,))
    finally:
        con.close()


def registry_lock(spec: str | Path, timeout_s: float):
    """The lock a spec names: PG_ADVISORY_LOCK, or a lock file path."""
    if str(spec) == PG_ADVISORY_LOCK:
        return postgres_advisory_lock(timeout_s)
    return exclusive_lock(Path(spec), timeout_s)
