"""What a failed registry call means, and the lock that serialises alias writes.

Errors that mean "MLflow is not reachable right now" become RegistryUnavailableError
(naming the URI) so a Dagster RetryPolicy can retry; everything else is RegistryError.
"""

from __future__ import annotations

import fcntl
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
import sqlalchemy.exc
from mlflow.exceptions import MlflowException

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


def outage_message(tracking_uri: str, op: str, detail: object) -> str:
    return f"MLflow at {tracking_uri} unavailable during {op}: {detail}"


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
