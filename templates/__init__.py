"""Editable data (YAML phrasings, Jinja templates) that the transforms read.

Files here are package data, read with importlib.resources so they are found
the same way in a checkout, an installed wheel and a Spark `--py-files` zip.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

import yaml


@cache
def _load(name: str) -> Any:
    source = resources.files(__name__).joinpath(name)
    if not source.is_file():
        raise FileNotFoundError(f"templates/{name}: no such template file in the `templates` package")
    return yaml.safe_load(source.read_text(encoding="utf-8"))


def load_yaml(name: str, key: str = "") -> Any:
    """Parsed `templates/<name>`, or the value at a dotted `key` inside it.

    Parsed once per process (workers import a miner once, then call it per page).
    The result is shared: treat it as read-only. A missing key raises a KeyError
    that names the file and the key, so an edited YAML fails at import, not
    halfway through a Spark job.
    """
    value = _load(name)
    walked = []
    for part in key.split(".") if key else ():
        walked.append(part)
        if not isinstance(value, dict) or part not in value:
            raise KeyError(f"templates/{name}: missing key '{'.'.join(walked)}'")
        value = value[part]
    return value


def read_user_yaml(source: Any, name: str, what: str, storage_options: dict | None = None) -> Any:
    """Parse a YAML file a user gave (formats, instruction templates, a config) with safe_load.

    `source`: a local path, an fsspec URL (read with `storage_options`) or a packaged
    file (importlib Traversable). Raises ValueError "`name`: cannot read the `what`: ..."
    or "`name`: not valid YAML: ...", so every loader reports a bad file the same way.
    """
    try:
        if isinstance(source, str) and "://" in source:
            import fsspec

            with fsspec.open(source, "r", encoding="utf-8", **(storage_options or {})) as f:
                text = f.read()
        elif isinstance(source, str):
            with open(source, encoding="utf-8") as f:
                text = f.read()
        else:
            text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{name}: cannot read the {what}: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{name}: not valid YAML: {exc}") from None


# An id of an entry in a user's YAML list (a surface format, an instruction template).
ENTRY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def checked_entry(entry: Any, name: str, noun: str, position: int, allowed: Sequence[str],
                  expected: Sequence[str] | None = None) -> tuple[str, str]:
    """The id of entry #`position` of a user's YAML list, and where it is ("FILE: NOUN 'id'") for
    later messages. Raises ValueError when it is not a mapping, has no valid `id`, or has a key
    outside `allowed`; `expected` are the keys the "not a mapping" message lists."""
    where = f"{name}: {noun} #{position}"
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where}: expected a mapping with keys {', '.join(expected or allowed)}")  # noqa: TRY004
    entry_id = entry.get("id")
    if not isinstance(entry_id, str) or not ENTRY_ID.match(entry_id):
        raise ValueError(f"{where}: `id` must be a name of letters, digits, '_', '-' or '.', got {entry_id!r}")
    where = f"{name}: {noun} {entry_id!r}"
    unknown = sorted(set(map(str, entry)) - set(allowed))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    return entry_id, where
