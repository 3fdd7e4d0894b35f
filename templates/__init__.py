"""Editable data (YAML phrasings, Jinja templates) that the transforms read.

Files here are package data, read with importlib.resources so they are found
the same way in a checkout, an installed wheel and a Spark `--py-files` zip.
"""

from __future__ import annotations

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
