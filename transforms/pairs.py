"""A miner's raw output (`Candidate`) and the stable id of a finished pair."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(slots=True)
class Candidate:
    """An instruction-response pair as a miner proposes it, before filtering."""

    instruction: str
    output: str
    kind: str
    miner: str
    confidence: float
    input: str = ""


def pair_id(source_url: str, kind: str, instruction: str, input_: str, output: str) -> str:
    """Content hash: the same page mined twice gives the same id."""
    h = hashlib.blake2b(digest_size=12)
    for part in (source_url, kind, instruction, input_, output):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


def source_url_key(url: str) -> int:
    """A signed 64-bit key of a page URL, for matching pairs to the page they were mined from.

    Scheme, a trailing slash and the fragment do not make two pages different.
    """
    u = url.strip()
    u = u.split("#", 1)[0]
    if "://" in u:
        u = u.split("://", 1)[1]
    u = u.rstrip("/")
    return int.from_bytes(hashlib.blake2b(u.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little", signed=True)
