"""A throwaway Postgres cluster on 127.0.0.1: initdb in a temp dir, one password user,
databases on demand; stopped by pid and deleted on exit.

The server binaries come from the distribution (Debian's ``postgresql`` package puts
them in /usr/lib/postgresql/<major>/bin, off PATH). Postgres refuses to run as root, so
under root the cluster belongs to the ``postgres`` user (or a system user created for
it). Settings are the stock ones, fsync included: the benchmark that uses this cluster
must measure a durable Postgres, not a tuned-down one.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from ct_assets.stack.process import LOOPBACK, ServerProcess, ServerStartError, free_port

ADMIN_ROLE = "ct_admin"  # the superuser initdb creates; reached only over the unix socket
SERVICE_USER = "ct-postgres"  # created under root when the distribution's `postgres` user is absent
INSTALL_HINT = ("install Debian's `postgresql` package (`apt-get install -y postgresql`; "
                ".ci/run does this when /usr/lib/postgresql/*/bin/postgres is missing)")


class PostgresNotInstalled(RuntimeError):
    """initdb/postgres are not on this machine."""


@dataclass(frozen=True)
class PostgresServer:
    """Where the cluster listens and who may log in. ``user`` owns every database made
    here and logs in over TCP with ``password`` (scram-sha-256), as a real deployment would."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)  # a repr lands in logs and pytest output
    db: str
    socket_dir: str
    pid: int

    def url(self, db: str | None = None) -> str:
        """libpq URL (psql, psycopg, MLflow's backend store). SQLAlchemy 2.1 reads its
        ``postgresql://`` as psycopg 3; hand dagster-postgres ``sqlalchemy_url()`` instead."""
        return (f"postgresql://{quote(self.user, safe='')}:{quote(self.password, safe='')}"
                f"@{self.host}:{self.port}/{quote(db or self.db, safe='')}")

    def sqlalchemy_url(self, db: str | None = None) -> str:
        """The URL naming psycopg2, the driver dagster-postgres is written for (its NOTIFY
        binds a parameter, which psycopg 3's server-side binding refuses)."""
        return self.url(db).replace("postgresql://", "postgresql+psycopg2://", 1)

    def connect_kwargs(self, db: str | None = None) -> dict:
        """psycopg2.connect(**kwargs) as the password user over TCP."""
        return {"host": self.host, "port": self.port, "user": self.user, "password": self.password,
                "dbname": db or self.db}

    def create_database(self, name: str) -> str:
        """A new database owned by ``user`` (MLflow keeps its own); returns the name."""
        from psycopg2 import sql

        with _admin_connection(self.socket_dir, self.port) as conn, conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(self.user)))
        return name


def postgres_bindir() -> Path:
    """The directory holding initdb and postgres: pg_config's, else the newest Debian
    major under /usr/lib/postgresql, else PATH. Raises PostgresNotInstalled naming the places looked."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(Path(out.stdout.strip()))
    majors = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major_of, reverse=True)
    candidates.extend(Path(p) for p in majors)
    on_path = shutil.which("postgres")
    if on_path:
        candidates.append(Path(on_path).parent)
    for bindir in candidates:
        if (bindir / "postgres").is_file() and (bindir / "initdb").is_file():
            return bindir
    looked = ", ".join(str(c) for c in candidates) or "no pg_config, no /usr/lib/postgresql/*/bin, none on PATH"
    raise PostgresNotInstalled(f"the Postgres server binaries (initdb, postgres) were not found ({looked}): "
                               f"{INSTALL_HINT}")


def _major_of(bindir: str) -> int:
    name = Path(bindir).parent.name
    return int(name) if name.isdigit() else -1


def cluster_owner() -> pwd.struct_passwd | None:
    """The non-root account the cluster runs as when we are root; None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", SERVICE_USER):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    cmd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        out = None
    if out is None or out.returncode != 0:
        why = "useradd is not installed" if out is None else out.stderr.strip()
        raise ServerStartError(f"Postgres refuses to run as root, there is no `postgres` user, and "
                               f"`{' '.join(cmd)}` failed ({why}): create a non-root user named "
                               f"`postgres` or {INSTALL_HINT}")
    return pwd.getpwnam(SERVICE_USER)


@contextmanager
def postgres_server(*, db: str = "ct", user: str = "ct", start_timeout: float = 60.0) -> Iterator[PostgresServer]:
    """Start a fresh cluster with database ``db`` owned by password user ``user``; yield
    its PostgresServer; on exit fast-shutdown it (SIGINT) and delete its directory."""
    bindir = postgres_bindir()
    owner = cluster_owner()
    root = Path(tempfile.mkdtemp(prefix="ct_pg_"))
    server: ServerProcess | None = None
    try:
        if owner is not None:
            os.chown(root, owner.pw_uid, owner.pw_gid)
        as_owner = {} if owner is None else {"user": owner.pw_uid, "group": owner.pw_gid}
        _initdb(bindir, root, as_owner)
        port = free_port()
        # SIGINT is Postgres's "fast" shutdown: it disconnects clients. SIGTERM ("smart")
        # would wait for every pooled connection a test left open.
        server = ServerProcess("postgres", [
            bindir / "postgres", "-D", root / "data",
            "-c", f"listen_addresses={LOOPBACK}", "-c", f"port={port}",
            "-c", f"unix_socket_directories={root}", "-c", "fsync=on",
        ], root / "postgres.log", cwd=root, stop_signal=signal.SIGINT, **as_owner).start()
        server.wait_until_ready(lambda: _accepts_admin(str(root), port), start_timeout, "accept connections")
        password = secrets.token_urlsafe(18)
        _create_login(str(root), port, user, password, db)
        yield PostgresServer(LOOPBACK, port, user, password, db, str(root), server.pid)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _initdb(bindir: Path, root: Path, as_owner: dict) -> None:
    # trust on the unix socket (its directory is private to the cluster's owner and root),
    # passwords on TCP: clients use TCP, the way they reach a real server.
    cmd = [str(bindir / "initdb"), "-D", str(root / "data"), "-U", ADMIN_ROLE, "--auth-local=trust",
           "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C"]
    # cwd=root: initdb as `postgres` cannot chdir back into root's home and says so.
    out = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False, **as_owner)
    if out.returncode != 0:
        raise ServerStartError(f"initdb failed with code {out.returncode} in {root} "
                               f"(the cluster owner must be able to write there): {' '.join(cmd)}\n"
                               f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}")


@contextmanager
def _admin_connection(socket_dir: str, port: int, timeout: int = 5):
    import psycopg2

    conn = psycopg2.connect(host=socket_dir, port=port, user=ADMIN_ROLE, dbname="postgres", connect_timeout=timeout)
    conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
    try:
        yield conn
    finally:
        conn.close()


def _accepts_admin(socket_dir: str, port: int) -> bool:
    import psycopg2

    try:
        with _admin_connection(socket_dir, port, timeout=1):
            return True
    except psycopg2.OperationalError:  # socket not there yet, or "the database system is starting up"
        return False


def _create_login(socket_dir: str, port: int, user: str, password: str, db: str) -> None:
    from psycopg2 import sql

    with _admin_connection(socket_dir, port) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(user), sql.Literal(password)))
        cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db), sql.Identifier(user)))

