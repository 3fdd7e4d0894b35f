"""A stage's output folder: where its work lives, who holds it, and what it may replace.

Every stage (mine, synth, mix, run, report) goes through one `StageOutput`, on any
fsspec filesystem (local disk, `s3://`, `gs://`, `hdfs://`), so the rules below are
written once:

* **Work is keyed by a fingerprint** of the stage's resolved config and the code
  version (`fingerprint`), under `OUTPUT/_work/<fingerprint[:16]>/`: a changed config
  or a new version of instructmix never picks up stale checkpoints.
* **One run at a time**: `lock()` writes `OUTPUT/_lock.json` with the run's id; a
  second run into the same folder stops at once with an error naming the holder.
  A lock left by a dead process on this host is taken over (a kill must not
  block the re-run that resumes it).
* **A run replaces only what it wrote**: the files a finished run published are
  listed in its `_stats.json` (`outputs`); `claim()` refuses a folder holding any
  other file (the user's own data, another tool's output) unless `overwrite`, and
  refuses an output that is, or lies inside or around, an input. `publish()`
  removes the previous run's files that the new run did not write again, so every
  reader sees exactly what the new `_stats.json`/manifest lists.
* **Writes are atomic**: a file appears under its final name only when complete
  (`write_bytes`, `write_json`: a temporary name starting with "." then a rename;
  on object stores, where a PUT is already atomic, the object is written directly).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from jobs.errors import UserError

WORK_DIR = "_work"
STATS_FILE = "_stats.json"
LOCK_FILE = "_lock.json"
# Names a stage itself writes beside its outputs and never counts as foreign.
OWN_NAMES = (WORK_DIR, STATS_FILE, LOCK_FILE)
_CODE_PACKAGES = ("jobs", "transforms", "templates")


@cache
def code_version() -> str:
    """A hash of the installed code (Python, YAML, Jinja and word lists of the shipped packages).

    Part of every fingerprint: work written by another version of a miner or a
    prompt is never reused. Computed once per process, on the driver only.
    """
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for package in _CODE_PACKAGES:
        for path in sorted((root / package).rglob("*")):
            if path.is_file() and path.suffix in {".py", ".yaml", ".jinja", ".txt", ".jsonl"} \
                    and "__pycache__" not in path.parts:
                h.update(path.relative_to(root).as_posix().encode())
                h.update(path.read_bytes())
    return h.hexdigest()


def fingerprint(stage: str, config: Any, *upstream: str, with_code: bool = True) -> str:
    """The one fingerprint function: stage name, resolved config (a pydantic model or
    plain data), upstream fingerprints and, unless `with_code=False`, the code version."""
    if hasattr(config, "model_dump"):
        config = config.model_dump(mode="json")
    payload = json.dumps({"stage": stage, "config": config, "upstream": list(upstream)},
                         sort_keys=True, ensure_ascii=False, default=str)
    h = hashlib.sha256(payload.encode())
    if with_code:
        h.update(code_version().encode())
    return h.hexdigest()


def new_run_id() -> str:
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"


def _is_local(fs) -> bool:
    return isinstance(fs, LocalFileSystem)


def pid_alive(pid: int) -> bool:
    """Whether process `pid` on this host still runs; a zombie (exited, not yet reaped) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _norm(fs, path: str) -> str:
    return fs._strip_protocol(path).rstrip("/")


class StageOutput:
    """The output folder of one stage run. `url` is a local path or an fsspec URL."""

    def __init__(self, stage: str, url: str, storage_options: dict | None = None, run_id: str | None = None):
        self.stage = stage
        self.url = url.rstrip("/") or url
        self.storage_options = dict(storage_options or {})
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **self.storage_options)
        self.root = self.root.rstrip("/") or self.root
        self.run_id = run_id or new_run_id()
        self._locked = False

    # --- paths -------------------------------------------------------------------------------

    def path(self, *parts: str) -> str:
        """A path inside the output, in the filesystem's own form (no protocol)."""
        return "/".join([self.root, *[p.strip("/") for p in parts if p]])

    def url_of(self, *parts: str) -> str:
        """A path inside the output as a URL other processes (Spark/Ray tasks) can open."""
        return "/".join([self.url, *[p.strip("/") for p in parts if p]])

    def work_dir(self, digest: str) -> str:
        return self.url_of(WORK_DIR, digest[:16])

    # --- reading and atomic writing ------------------------------------------------------------

    def exists(self, *parts: str) -> bool:
        return self.fs.exists(self.path(*parts))

    def read_json(self, *parts: str) -> Any:
        """The parsed file, or None when it is missing or unreadable (a half-written leftover)."""
        try:
            with self.fs.open(self.path(*parts), "rb") as f:
                return json.loads(f.read().decode("utf-8"))
        except (FileNotFoundError, NotADirectoryError, ValueError, UnicodeDecodeError):
            return None

    def write_bytes(self, relpath: str, data: bytes) -> None:
        write_atomic(self.fs, self.path(relpath), data)

    def write_json(self, relpath: str, data: Any) -> None:
        self.write_bytes(relpath, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False).encode("utf-8"))

    # --- one run at a time --------------------------------------------------------------------

    @contextmanager
    def lock(self) -> Iterator[StageOutput]:
        """Hold the folder for the length of the block; raises UserError naming a live holder."""
        self.acquire()
        try:
            yield self
        finally:
            self.release()

    def acquire(self) -> None:
        lock_path = self.path(LOCK_FILE)
        holder = self.read_json(LOCK_FILE) if self.fs.exists(lock_path) else None
        if holder is not None and not self._stale(holder):
            raise UserError(
                f"{self.url} is in use by another {holder.get('stage', '?')} run ({holder.get('run_id')}, "
                f"host {holder.get('host')}, pid {holder.get('pid')}, since {holder.get('started')}); "
                f"wait for it, or delete {self.url}/{LOCK_FILE} if that run is gone")
        self.fs.makedirs(self.root, exist_ok=True)
        mine = {"stage": self.stage, "run_id": self.run_id, "host": socket.gethostname(), "pid": os.getpid(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if _is_local(self.fs) and holder is None:
            # O_EXCL: of two runs starting together, exactly one creates the file.
            try:
                fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return self.acquire()
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(mine, f)
        else:
            write_atomic(self.fs, lock_path, json.dumps(mine).encode())
            # Object stores have no exclusive create: read back, the last writer wins.
            if (self.read_json(LOCK_FILE) or {}).get("run_id") != self.run_id:
                return self.acquire()
        self._locked = True

    def _stale(self, holder: dict) -> bool:
        if holder.get("run_id") == self.run_id:
            return True
        pid = holder.get("pid")
        return holder.get("host") == socket.gethostname() and isinstance(pid, int) and not pid_alive(pid)

    def release(self) -> None:
        if not self._locked:
            return
        holder = self.read_json(LOCK_FILE)
        if holder is None or holder.get("run_id") == self.run_id:
            try:
                self.fs.rm(self.path(LOCK_FILE))
            except FileNotFoundError:
                pass
        self._locked = False

    # --- what this run may replace --------------------------------------------------------------

    def previous_outputs(self) -> list[str] | None:
        """Relative paths the last finished run published (its `_stats.json`), or None."""
        stats = self.read_json(STATS_FILE)
        if not isinstance(stats, dict) or stats.get("stage") != self.stage:
            return None
        outputs = stats.get("outputs")
        return [str(p) for p in outputs] if isinstance(outputs, list) else None

    def listing(self) -> list[str]:
        """Every file under the output, relative, except the stage's own bookkeeping."""
        if not self.fs.exists(self.root):
            return []
        if not self.fs.isdir(self.root):
            raise UserError(f"output {self.url} is a file, not a folder; give a folder path")
        found = []
        for path in self.fs.find(self.root):
            rel = path[len(self.root):].lstrip("/")
            if rel.split("/", 1)[0] in OWN_NAMES:
                continue
            found.append(rel)
        return sorted(found)

    def claim(self, inputs: Iterable[str] = (), overwrite: bool = False, own: Iterable[str] = ()) -> None:
        """Refuse an output this run must not write into (see the module docstring).

        `own`: extra relative paths (or folder prefixes ending in "/") this stage
        recognises as its own even without a previous `_stats.json`.
        """
        me = _norm(self.fs, self.url)
        for item in inputs:
            try:
                fs_in, path_in = fsspec.core.url_to_fs(item, **self.storage_options)
            except (ValueError, ImportError):
                continue
            if type(fs_in) is not type(self.fs):
                continue
            there = _norm(fs_in, path_in.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0])
            if not there:
                continue
            if there == me or there.startswith(me + "/") or me.startswith(there.rstrip("/") + "/"):
                raise UserError(f"output {self.url} overlaps the input {item}: writing there would replace "
                                "or re-read the inputs; choose another output folder")
        if overwrite:
            return
        known = set(self.previous_outputs() or [])
        prefixes = tuple(p for p in own if p.endswith("/"))
        own_files = {p for p in own if not p.endswith("/")}
        # Hidden names are a writer's temporaries (`.NAME.tmp`, or a scratch folder such as the MDS
        # writer's `.shard.00000.mds.XXXX.tmp/`) left by a killed run: never foreign.
        foreign = [p for p in self.listing()
                   if p not in known and p not in own_files and not p.startswith(prefixes)
                   and not any(part.startswith(".") for part in p.split("/"))]
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise UserError(f"output {self.url} holds files this stage did not write ({shown}); "
                            "choose an empty folder, or pass --overwrite to replace its contents")

    def remove_stale(self, keep: Iterable[str], previous: Iterable[str] | None) -> list[str]:
        """Delete files the previous run published that this run did not write again."""
        keep = set(keep)
        removed = []
        for rel in previous or []:
            if rel not in keep and self.fs.exists(self.path(rel)):
                self.fs.rm(self.path(rel))
                removed.append(rel)
        return removed

    def remove_work(self) -> None:
        if self.fs.exists(self.path(WORK_DIR)):
            self.fs.rm(self.path(WORK_DIR), recursive=True)


def write_atomic(fs, path: str, data: bytes) -> None:
    """Write `data` at `path` so no reader ever sees a partial file."""
    with atomic_writer(fs, path) as f:
        f.write(data)


@contextmanager
def atomic_writer(fs, path: str) -> Iterator:
    """A binary file to write `path` through, which no reader sees until the block ends
    without an error: a temporary file renamed over `path` on a local disk, and one
    upload (an object appears whole or not at all) on an object store."""
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    if parent:
        fs.makedirs(parent, exist_ok=True)
    if not _is_local(fs):
        f = fs.open(path, "wb")
        try:
            yield f
        except BaseException:
            try:
                f.discard()  # s3fs: abort the multipart upload, so nothing appears
            finally:
                f.closed = True  # not committed by a close, now or when collected
            raise
        f.close()
        return
    tmp = f"{parent}/.{path.rsplit('/', 1)[-1]}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "wb") as f:
            yield f
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json_atomic(url: str, data: Any, storage_options: dict | None = None) -> None:
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    write_atomic(fs, path, json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8"))


def read_json(url: str, storage_options: dict | None = None) -> Any:
    """The parsed JSON file at `url`, or None when it is missing or unreadable."""
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    try:
        with fs.open(path, "rb") as f:
            return json.loads(f.read().decode("utf-8"))
    except (FileNotFoundError, NotADirectoryError, ValueError, UnicodeDecodeError):
        return None
