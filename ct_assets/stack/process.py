"""A server child process: started in its own session with its output in a log file,
waited on until it answers, stopped by its pid and its process group.

Shared by the Postgres, moto and MLflow starters so that each of them says only what is
particular to its server (its command line, what "ready" means, which signal shuts it
down cleanly).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

LOOPBACK = "127.0.0.1"
LOG_TAIL_LINES = 40
# An HTTP(S)_PROXY in the environment must not swallow a probe of 127.0.0.1.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServerStartError(RuntimeError):
    """A server of the local stack exited or did not answer in time; the message carries its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now. The kernel picks it (bind to port 0);
    between our close and the server's bind another process could take it, which the
    starters report as a start failure with the server's own 'address in use' line."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def port_is_open(port: int, host: str = LOOPBACK) -> bool:
    """Whether something accepts TCP connections on host:port (used for 'free after stop')."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def http_status(url: str, timeout: float = 1.0) -> int | None:
    """The HTTP status a GET of ``url`` gets, or None while nothing answers there."""
    try:
        with _NO_PROXY.open(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:  # refused, reset or timed out: not listening yet
        return None


class ServerProcess:
    """One server child. ``start`` puts it in a new session, so its pid is also the id of
    a process group holding every helper it forks (uvicorn under the mlflow CLI, for
    example); ``stop`` signals that group, waits, and SIGKILLs what is left."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, *, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None, user: int | None = None, group: int | None = None,
                 stop_signal: int = signal.SIGTERM) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self._env = None if env is None else dict(env)
        self._cwd = cwd
        self._user, self._group = user, group
        self._stop_signal = stop_signal
        self._proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._proc.pid

    def start(self) -> ServerProcess:
        # Popen(user=, group=) switches uid between fork and exec, so the pid we hold is the
        # server itself; `runuser -u` would put a PAM session process in between.
        switch = {} if self._user is None else {"user": self._user, "group": self._group, "extra_groups": []}
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          env=self._env, cwd=self._cwd, start_new_session=True, **switch)
        return self

    def wait_until_ready(self, ready: Callable[[], bool], timeout: float, what: str) -> float:
        """Poll ``ready()`` until it is true; returns the seconds it took. Raises
        ServerStartError with the log's tail if the process exits first or time runs out
        (and stops it in the second case, so nothing is left listening)."""
        started = time.monotonic()
        delay = 0.05
        while True:
            code = self._proc.poll()
            if code is not None:
                raise ServerStartError(f"{self.name} exited with code {code} before {what}; "
                                       f"argv: {self.argv}\n{self.log_tail()}")
            if ready():
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                self.stop()
                raise ServerStartError(f"{self.name} did not {what} within {timeout:.0f} s; "
                                       f"argv: {self.argv}\n{self.log_tail()}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop signal to the group, SIGKILL after ``timeout``, then SIGKILL any member
        that outlived the leader (a helper that ignored the signal). Idempotent."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            _signal_group(proc.pid, self._stop_signal)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout)
        _signal_group(proc.pid, signal.SIGKILL)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        if not self.log_path.is_file():
            return f"(no log at {self.log_path})"
        text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return f"--- last {min(lines, len(text))} lines of {self.log_path} ---\n" + "\n".join(text[-lines:])


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:  # the group is already empty
        pass
