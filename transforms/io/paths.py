"""Input files: which files a pattern names, and how one file that cannot be read is counted.

Every reader of every stage goes through here, so there is one rule for each of:

- which file endings mean which format (`FORMAT_ENDINGS`) and what each stage
  takes (`DOCUMENT_ENDINGS`, `PRETRAIN_ENDINGS`, `INSTRUCTION_ENDINGS`);
- which files a directory or glob yields (`expand_paths`);
- the one error for an input that names nothing (`NoInputError`), raised on
  the driver before any task starts, because a job without input is meaningless;
- what happens when one file of many cannot be read (`read_input`): a counted
  skip with a reason, never an exception, so the good records beside it and the
  other files' records are kept.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Iterator
from typing import TypeVar

import fsspec
from fsspec.implementations.local import LocalFileSystem

logger = logging.getLogger(__name__)

WARC_ENDINGS = (".warc", ".warc.gz", ".warc.zst", ".warc.lz4", ".wet", ".wet.gz", ".wet.zst")
JSON_LINES_ENDINGS = (".jsonl", ".jsonl.gz", ".jsonl.zst")
# A `.json` file is a JSON array (Alpaca) or JSON Lines under a .json name (BELLE,
# Self-Instruct, and dolma/CCNet's `.json.gz` shards): its first character decides.
JSON_ENDINGS = (".json", ".json.gz", ".json.zst")
PARQUET_ENDINGS = (".parquet",)
FORMAT_ENDINGS: dict[str, tuple[str, ...]] = {
    "warc": WARC_ENDINGS,
    "jsonl": JSON_LINES_ENDINGS,
    "json": JSON_ENDINGS,
    "parquet": PARQUET_ENDINGS,
}

# A plain `.json` beside shards is more often a config, a tokenizer or a manifest
# than data, so only the instruction side (Alpaca files are `.json`) takes it;
# compressed `.json.gz`/`.json.zst` are always shards.
_SHARD_JSON_ENDINGS = (".json.gz", ".json.zst")
DOCUMENT_ENDINGS = WARC_ENDINGS + JSON_LINES_ENDINGS + _SHARD_JSON_ENDINGS + PARQUET_ENDINGS
PRETRAIN_ENDINGS = JSON_LINES_ENDINGS + _SHARD_JSON_ENDINGS + PARQUET_ENDINGS
INSTRUCTION_ENDINGS = JSON_LINES_ENDINGS + JSON_ENDINGS + PARQUET_ENDINGS

_ARC_HINT = (
    "ARC files (the pre-WARC format) are not read; convert them to WARC first (e.g. `warcio recompress`)"
)
_WAT_HINT = "WAT files hold link metadata only, no page content; read the matching WARC or WET files"
_UNSUPPORTED_HINTS = {
    ".arc": _ARC_HINT,
    ".arc.gz": _ARC_HINT,
    ".wat": _WAT_HINT,
    ".wat.gz": _WAT_HINT,
    ".json": "a plain .json file may hold one JSON document, not JSON Lines; name JSON Lines files .jsonl",
}


class NoInputError(FileNotFoundError):
    """An input pattern that names no readable file: the job would have nothing to read."""


class UnsupportedInputError(ValueError):
    """A file named outright whose ending no reader of this stage takes."""


def file_format(path: str, endings: tuple[str, ...]) -> str:
    """The format of `path` by its name: "warc", "jsonl", "json" or "parquet".

    Only `endings` are accepted (the stage's choice); raises
    UnsupportedInputError naming the path, a hint for look-alike formats
    (ARC, WAT, plain .json) and the supported endings otherwise.
    """
    name = path.rstrip("/").lower()
    if name.endswith(endings):
        for fmt, format_endings in FORMAT_ENDINGS.items():
            if name.endswith(tuple(e for e in format_endings if e in endings)):
                return fmt
    hint = next((h for end, h in _UNSUPPORTED_HINTS.items() if name.endswith(end)), None)
    raise UnsupportedInputError(
        f"{path}: unsupported file type; {hint + '; ' if hint else ''}supported endings: {', '.join(endings)}"
    )


def expand_paths(
    patterns: list[str] | str, storage_options: dict | None = None, *, endings: tuple[str, ...]
) -> list[str]:
    """Input files for `patterns`: sorted, without duplicates.

    Each pattern is a local path or any fsspec URL (`s3://bucket/crawl/*.warc.gz`,
    `memory://...`), and is one of:

    - a file: it must have one of `endings` (UnsupportedInputError otherwise);
    - a directory: every file with one of `endings` below it, recursively;
      names starting with "." or "_" are left out, files and folders alike
      (Spark's `_temporary/`, `_SUCCESS`, `_stats.json`, `.crc` files);
    - a glob: each match is treated as above, except that matched files with
      another ending are left out, so `samples/*` skips the README; a name
      starting with "." or "_" is left out where a wildcard matched it (the
      same names a directory leaves out), kept where the pattern spells it.

    `storage_options` go to the filesystem (for anonymous S3 access:
    `{"anon": True}`). Local files come back as absolute paths, remote ones
    as URLs with their protocol. Raises NoInputError naming the pattern that
    yields no file.
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    if not patterns:
        raise NoInputError("no input patterns given")
    found: set[str] = set()
    for pattern in patterns:
        found.update(_expand_pattern(pattern, storage_options or {}, tuple(endings)))
    return sorted(found)


def _expand_pattern(pattern: str, storage_options: dict, endings: tuple[str, ...]) -> list[str]:
    fs, root = fsspec.core.url_to_fs(pattern, **storage_options)
    listed = ", ".join(endings)
    if fsspec.core.has_magic(root):
        files, others = [], []
        for path, info in sorted(fs.glob(root, detail=True).items()):
            if _bookkeeping_match(path, root):
                continue
            if info.get("type") == "directory":
                files.extend(_files_below(fs, path, endings))
            elif _has_ending(path, endings):
                files.append(path)
            else:
                others.append(path)
        if not files:
            also = f"; {len(others)} other file(s) matched, e.g. {others[0]}" if others else ""
            raise NoInputError(f"input {pattern!r}: no file matched with an ending of {listed}{also}")
    elif fs.isdir(root):
        files = _files_below(fs, root, endings)
        if not files:
            raise NoInputError(f"input {pattern!r}: directory holds no file ending in {listed}")
    elif fs.exists(root):
        try:
            file_format(root, endings)
        except UnsupportedInputError as exc:
            raise UnsupportedInputError(f"input {pattern!r}: {exc}") from None
        files = [root]
    else:
        raise NoInputError(f"input {pattern!r} does not exist")
    if isinstance(fs, LocalFileSystem):
        return files
    return [fs.unstrip_protocol(p) for p in files]


def _bookkeeping_match(path: str, pattern: str) -> bool:
    """Whether a glob match has a "." or "_" name that only a wildcard matched.

    Compared part by part with the pattern; below a `**` every such name counts
    as wildcard-matched.
    """
    pattern_parts = pattern.rstrip("/").split("/")
    for i, part in enumerate(path.rstrip("/").split("/")):
        if not part.startswith((".", "_")):
            continue
        spelled = pattern_parts[i] if i < len(pattern_parts) and "**" not in pattern_parts[: i + 1] else ""
        if not spelled.startswith((".", "_")):
            return True
    return False


def _has_ending(path: str, endings: tuple[str, ...]) -> bool:
    return path.rstrip("/").lower().endswith(endings)


def _files_below(fs: fsspec.AbstractFileSystem, root: str, endings: tuple[str, ...]) -> list[str]:
    root = root.rstrip("/")
    out = []
    for path in fs.find(root):
        relative = path[len(root) :].strip("/").split("/")
        if not any(part.startswith((".", "_")) for part in relative) and _has_ending(path, endings):
            out.append(path)
    return out


# --------------------------------------------------------------------------- reading one file

T = TypeVar("T")
# read(format, filesystem, path on that filesystem) -> the file's records
FormatReader = Callable[[str, fsspec.AbstractFileSystem, str], Iterator[T]]


def read_input(
    path: str,
    counters: collections.Counter,
    read: FormatReader,
    *,
    endings: tuple[str, ...],
    storage_options: dict | None = None,
) -> Iterator[T]:
    """What `read` gives out for one input file, every file-level failure a counted skip.

    Runs inside Spark/Ray tasks, one file per call, so one bad file must not
    fail the job. The format readers count the damage they understand
    (truncated or corrupt archives, bad lines, bad row groups) and keep the
    records around it; this frame counts the rest:

        skip:unsupported_format  the name has none of `endings`
        skip:unreadable_file     the file is missing, cannot be opened, or
                                 the filesystem fails while it is read
                                 (the records given out before are kept)
        skip:empty_file          the file has zero bytes
        skip:reader_error        an unexpected error (a bug): logged with its
                                 traceback, the rest of the file skipped

    Only a missing optional package (ImportError, e.g. s3fs for `s3://`)
    raises: no file of that filesystem could ever be read.

    A filesystem error is counted rather than raised even where a stage reads
    a file twice (the mixer): its second read checks that every document of
    the first is still there and stops with an error naming the file if not.
    """
    try:
        fmt = file_format(path, endings)
    except UnsupportedInputError as exc:
        counters["skip:unsupported_format"] += 1
        logger.warning("skipping %s", exc)
        return
    try:
        fs, fs_path = fsspec.core.url_to_fs(path, **(storage_options or {}))
        size = fs.size(fs_path)
    except ImportError:
        raise
    except Exception as exc:  # noqa: BLE001 - any filesystem error: this one file is unreadable
        counters["skip:unreadable_file"] += 1
        logger.warning("skipping unreadable file %s: %r", path, exc)
        return
    if size == 0:
        counters["skip:empty_file"] += 1
        return
    try:
        yield from read(fmt, fs, fs_path)
    except ImportError:
        raise
    except OSError as exc:  # the filesystem failed while reading; what was given out stays
        counters["skip:unreadable_file"] += 1
        logger.warning("%s: read failed, the rest of the file is skipped: %r", path, exc)
    except Exception:  # one odd file must not fail a whole job
        counters["skip:reader_error"] += 1
        logger.exception("unexpected error reading %s; the rest of the file is skipped", path)
