"""Session fixtures with real servers on localhost (ct_assets.stack): Postgres, moto as
the S3-protocol server, and an MLflow tracking server on both.

Lazy: a worker starts them only when one of its tests asks. Under ``pytest -n 2`` each
worker that asks has its own servers (own ports, own temp dirs), so tests never share
state across workers.

Missing Postgres binaries FAIL the tests that need them instead of skipping them: CI
must run the server profile, and a skip would let it pass without ever doing so.
"""

from __future__ import annotations

import pytest

from ct_assets import stack
from ct_assets.stack.postgres import PostgresNotInstalled, postgres_bindir
from ct_assets.stack.stack import DAGSTER_DB


@pytest.fixture(scope="session")
def postgres_server():
    missing = None
    try:
        postgres_bindir()
    except PostgresNotInstalled as err:  # its message says that .ci/run installs the package
        missing = str(err)
    if missing:
        pytest.fail(f"{missing}. The server-profile tests need a real Postgres; they are never skipped.",
                    pytrace=False)
    with stack.postgres_server(db=DAGSTER_DB) as server:
        yield server


@pytest.fixture(scope="session")
def s3_server():
    with stack.s3_server() as server:
        yield server


@pytest.fixture(scope="session")
def server_stack(postgres_server, s3_server):
    """The whole stack; ``.env()`` is the CT_PROFILE=server environment pointing at it."""
    with stack.server_stack(postgres=postgres_server, s3=s3_server) as servers:
        yield servers
