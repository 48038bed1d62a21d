"""All-or-nothing writes of one step's lake files (pure: no Dagster).

Why a journal: one Dagster step can write several lake files (``validated_window`` and
``quarantined_rows`` from one multi_asset; every partition of a single-run backfill), and
Dagster calls the IO manager once per output. Renaming each file into place as it comes
was atomic per file only: a kill between two outputs left clean rows new and quarantined
rows old, so on disk clean + quarantined != raw. A filesystem (let alone S3) cannot rename
several files in one operation, so the commit point is one small file instead:

1. **Stage.** Each file of the step is written under
   ``<lake>/_staging/<run_id>/<step>/files/<asset>/<key>.parquet``. Nothing reads there.
2. **Commit.** After the step's last lake output, ``COMMIT.json`` (the list of staged
   files) is written in that step folder, atomically (temp + rename locally; one PUT on
   an object store). Its existence *is* the commit.
3. **Apply.** Each staged file is moved over its final path ``<lake>/<asset>/<key>.parquet``
   (unchanged, so ``partition_path`` callers keep working); then the step folder is removed.

What a crash at each point leaves:

- during 1, or between 1 and 2: staged files and no ``COMMIT.json``. The final files are
  the previous materialization's, all of them. The staged files are never read; they are
  removed at the next write once the run is known dead (``collect_garbage``).
- during 2: the temp file of ``COMMIT.json`` (ignored, removed with the folder) or the
  complete ``COMMIT.json``: nothing in between.
- during 3: some files moved, some not, and ``COMMIT.json`` present. Every reader and
  writer first rolls committed journals forward (``recover``), moving the rest, before it
  reads or commits anything: so no reader sees the mix. Moving is idempotent: a staged file
  that is gone was already moved (each is moved exactly once, so a late roll-forward never
  puts an old file over a newer one).
- after 3, before the folder is removed: ``recover`` finds nothing left to move and removes it.

Limits, on purpose: a kill leaves the process's writes in the page cache, which survives
it; power loss is not covered (no fsync). Two *concurrent* runs writing the same partition
are last-committer-wins, as Dagster itself does not serialize them. Two reads of different
files are not a snapshot: a commit may land between them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterable
from pathlib import PurePosixPath

import polars as pl
from upath import UPath

STAGING = "_staging"
JOURNAL = "COMMIT.json"
FILES = "files"
_SAFE_RUN = re.compile(r"^[\w-]+$")
# Temp files of this process carry its pid (`<name>.<pid>-<hex>.tmp`), so that the next
# write can tell an orphan (writer dead) from a file being written right now.
TMP_SUFFIX = ".tmp"
_TMP_PID = re.compile(r"\.(\d+)-[0-9a-f]{32}\.tmp$")


def is_local(path: UPath) -> bool:
    return path.protocol in ("", "file", "local")


def tmp_name(final_name: str) -> str:
    return f"{final_name}.{os.getpid()}-{uuid.uuid4().hex}{TMP_SUFFIX}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def write_bytes_atomic(path: UPath, data: bytes) -> None:
    if is_local(path):
        os.makedirs(os.path.dirname(path.path), exist_ok=True)
        tmp = os.path.join(os.path.dirname(path.path), tmp_name(path.name))
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path.path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    else:  # one PUT is atomic on an object store
        path.write_bytes(data)


def _rmtree(path: UPath) -> None:
    if is_local(path):
        shutil.rmtree(path.path, ignore_errors=True)
    elif path.exists():
        path.fs.rm(path.path, recursive=True)


def _move(src: UPath, dst: UPath) -> bool:
    """Move src over dst; False when src is already gone (moved by an earlier apply)."""
    if is_local(src):
        os.makedirs(os.path.dirname(dst.path), exist_ok=True)
        try:
            os.replace(src.path, dst.path)
        except FileNotFoundError:
            return False
        return True
    if not src.exists():
        return False
    # Copy then delete: a crash between them leaves src, and the next apply copies again.
    dst.write_bytes(src.read_bytes())
    src.unlink()
    return True


def relative_to_base(base: UPath, final: UPath) -> str:
    root, full = PurePosixPath(base.path), PurePosixPath(final.path)
    try:
        rel = full.relative_to(root)
    except ValueError:
        raise ValueError(f"lake file {final} is not under the lake {base}") from None
    if not rel.parts or rel.parts[0] == STAGING:
        raise ValueError(f"lake file {final} would land in the staging area")
    return rel.as_posix()


def stage_folder(base: UPath, run_id: str, step_key: str) -> UPath:
    if not _SAFE_RUN.match(run_id):
        raise ValueError(f"run id {run_id!r} cannot name a staging folder")
    # Step keys may hold brackets and dots; a digest names the folder, the journal names the step.
    return base / STAGING / run_id / hashlib.sha1(step_key.encode()).hexdigest()[:16]


class StepWrite:
    """The lake files of one step attempt: stage each, then commit all at once."""

    def __init__(self, base: UPath, run_id: str, step_key: str):
        self.base, self.run_id, self.step_key = base, run_id, step_key
        self.folder = stage_folder(base, run_id, step_key)
        self.files: list[str] = []

    def stage(self, frame: pl.DataFrame, final: UPath) -> None:
        rel = relative_to_base(self.base, final)
        staged = self.folder / FILES / rel
        # No temp file needed here: a half-written staged file is never named by a journal.
        if is_local(staged):
            os.makedirs(os.path.dirname(staged.path), exist_ok=True)
            frame.write_parquet(staged.path)
        else:
            with staged.open("wb") as fh:
                frame.write_parquet(fh)
        if rel not in self.files:
            self.files.append(rel)

    def commit(self, is_dead: Callable[[str], bool]) -> None:
        # Earlier committed journals go first, so none is applied after (over) this one.
        recover(self.base)
        journal = {"run_id": self.run_id, "step": self.step_key, "files": self.files}
        write_bytes_atomic(self.folder / JOURNAL, json.dumps(journal).encode())
        _apply(self.base, self.folder)
        collect_garbage(self.base, is_dead, folders={str(PurePosixPath(f).parent) for f in self.files},
                        keep_run=self.run_id)


def _journals(base: UPath) -> Iterable[UPath]:
    root = base / STAGING
    if not root.exists():
        return []
    out = []
    for run in root.iterdir():
        if run.is_dir():
            out.extend(step for step in run.iterdir() if step.is_dir() and (step / JOURNAL).exists())
    return out


def _apply(base: UPath, folder: UPath) -> None:
    journal_path = folder / JOURNAL
    try:
        journal = json.loads(journal_path.read_bytes())
    except FileNotFoundError:  # another process applied and removed it meanwhile
        return
    except (ValueError, OSError) as exc:
        raise ValueError(f"{journal_path}: unreadable commit journal ({exc}); "
                         "its files are staged but not in place") from exc
    for rel in journal["files"]:
        _move(folder / FILES / rel, base / rel)
    _rmtree(folder)
    run = folder.parent
    if is_local(run):
        try:
            os.rmdir(run.path)  # only when no other step of the run is staged there
        except OSError:
            pass


def recover(base: UPath) -> int:
    """Roll every committed journal forward; the number applied. Readers call it first."""
    found = list(_journals(base))
    for folder in found:
        _apply(base, folder)
    return len(found)


def collect_garbage(base: UPath, is_dead: Callable[[str], bool], folders: Iterable[str] = (),
                    keep_run: str | None = None) -> list[str]:
    """Remove staged leftovers of dead runs and temp-file orphans in ``folders``
    (lake-relative asset folders); the removed paths. Uncommitted staging of a run that
    may still be alive is kept: removing it would turn that run's commit into a loss."""
    removed = []
    root = base / STAGING
    if root.exists():
        for run in root.iterdir():
            if run.name == keep_run or not run.is_dir():
                continue
            if any((step / JOURNAL).exists() for step in run.iterdir() if step.is_dir()):
                continue  # committed: recover() owns it
            if is_dead(run.name):
                _rmtree(run)
                removed.append(str(run))
    for rel in folders:
        folder = base / rel
        if not folder.exists():
            continue
        for path in folder.iterdir():
            if not path.name.endswith(TMP_SUFFIX):
                continue
            owner = _TMP_PID.search(path.name)
            # A temp file without a pid is from a writer before this scheme: an orphan.
            if owner is None or not pid_alive(int(owner.group(1))):
                path.unlink(missing_ok=True)
                removed.append(str(path))
    return removed
