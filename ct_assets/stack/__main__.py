"""``python -m ct_assets.stack``: start the local server stack, print the ``export``
lines that point a shell at it (CT_PROFILE=server), and keep it up until Ctrl-C.

The lines go to stdout and the progress to stderr, so
``python -m ct_assets.stack > stack.env`` then ``. ./stack.env`` in another shell works.
The printed values include the throwaway Postgres password and S3 keys of this stack:
they die with it.
"""

from __future__ import annotations

import shlex
import signal
import sys
import threading

from ct_assets.stack.stack import server_stack


def export_lines(env: dict[str, str]) -> str:
    return "\n".join(f"export {key}={shlex.quote(value)}" for key, value in env.items())


def main() -> int:
    stop = threading.Event()
    # SIGTERM (kill, a closing terminal's supervisor) must also reach the finally blocks
    # that stop the servers; by default it would end Python without running them.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print("starting Postgres, moto (S3) and the MLflow server ...", file=sys.stderr, flush=True)
    with server_stack() as stack:
        print(export_lines(stack.env()), flush=True)
        started = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in stack.startup_seconds.items())
        print(f"# up ({started}); pids {stack.pids}. Ctrl-C stops and deletes everything.",
              file=sys.stderr, flush=True)
        stop.wait()
    print("stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
