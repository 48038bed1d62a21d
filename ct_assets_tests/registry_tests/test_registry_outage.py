"""AdapterRegistry when its MLflow cannot be used: nothing listening, a backend answering
503, a SQLite path that cannot hold a database. Each is a RegistryUnavailableError naming
the URI or path, raised on the first request (counted, not timed). Last, a new SQLite
store is opened only under its init lock, so two processes cannot race its migration."""

from __future__ import annotations

import http.server
import socket
import sqlite3
import threading
from typing import ClassVar

import pytest

from ct_assets.registry.mlflow_registry import CHAMPION, AdapterRegistry, RegistryUnavailableError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


OPERATIONS = {"read alias": lambda r: r.get_alias(CHAMPION), "create run": lambda r: r.create_run(),
              "promote": lambda r: r.promote(1, "x", "y")}


def test_refused_connections_are_an_outage_naming_the_uri(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    uri = f"http://127.0.0.1:{_free_port()}"  # nothing listens: connection refused
    reg = AdapterRegistry(uri, (tmp_path / "artifacts").as_uri(), lock_path=tmp_path / "lock")
    for op in OPERATIONS.values():
        with pytest.raises(RegistryUnavailableError, match=uri):
            op(reg)


class _DownServer(http.server.BaseHTTPRequestHandler):
    """A proxy whose backend is down: every request is counted and answered 503."""

    requests: ClassVar[list[str]] = []

    def _answer(self) -> None:
        self.requests.append(self.path)
        self.send_response(503)
        self.end_headers()
        self.wfile.write(b"backend down")

    do_GET = do_POST = do_PATCH = do_DELETE = _answer

    def log_message(self, *args) -> None:
        pass


def test_an_outage_fails_each_operation_on_its_first_request(tmp_path, monkeypatch):
    """Fail fast, counted instead of timed: one request per operation, so neither MLflow
    (its retries are off here, as in the Makefile) nor the registry loops on an outage."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setattr(_DownServer, "requests", [])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _DownServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    uri = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        reg = AdapterRegistry(uri, (tmp_path / "artifacts").as_uri(), lock_path=tmp_path / "lock")
        for op in OPERATIONS.values():
            with pytest.raises(RegistryUnavailableError, match=uri):
                op(reg)
    finally:
        server.shutdown()
        server.server_close()
    assert [p.split("?")[0] for p in _DownServer.requests] == [
        "/api/2.0/mlflow/registered-models/get", "/api/2.0/mlflow/experiments/get-by-name",
        "/api/2.0/mlflow/registered-models/get"], _DownServer.requests


@pytest.mark.parametrize("where", ["db_is_a_directory", "parent_is_a_file"])
def test_unusable_sqlite_path_fails_fast(tmp_path, where):
    if where == "db_is_a_directory":
        db = tmp_path / "mlflow.db"
        db.mkdir()
    else:
        (tmp_path / "blocker").write_text("not a directory")
        db = tmp_path / "blocker" / "mlflow.db"
    reg = AdapterRegistry(f"sqlite:///{db}", (tmp_path / "artifacts").as_uri())
    with pytest.raises(RegistryUnavailableError, match=str(db)) as err:
        reg.get_alias(CHAMPION)
    # Fast by construction, not by the clock: the probe refused the path before any
    # MLflow client existed, so MLflow's retrying engine setup (~100 s) never ran.
    assert isinstance(err.value.__cause__, (sqlite3.Error, OSError)), repr(err.value.__cause__)
    assert reg._client is None


def test_the_sqlite_store_is_opened_only_under_the_init_lock(tmp_path, monkeypatch):
    """Two processes opening a new SQLite store at once collide in MLflow's migration
    ("table _alembic_tmp_latest_metrics already exists": CI saw it when the demo replay and
    its training worker started together). MlflowClient() opens the tracking store in its
    constructor, so it must be built while the init lock is held. Checked, not raced: the
    client factory records whether another open file description can take the lock."""
    import fcntl

    import ct_assets.registry.mlflow_registry as registry_module

    db = tmp_path / "mlflow.db"
    init_lock = tmp_path / "mlflow.db.init.lock"
    held: list[bool] = []
    real_client = registry_module.MlflowClient

    def client_under_watch(*args, **kwargs):
        with open(init_lock, "a") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
                held.append(False)
            except BlockingIOError:
                held.append(True)
        return real_client(*args, **kwargs)

    monkeypatch.setattr(registry_module, "MlflowClient", client_under_watch)
    reg = AdapterRegistry(f"sqlite:///{db}", (tmp_path / "artifacts").as_uri())
    assert reg.get_alias(CHAMPION) is None
    assert held == [True]
