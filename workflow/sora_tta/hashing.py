"""One hash for the project: canonical JSON, its digest, seeds derived from names, file hashes.

Every identity (a variant's folder digest, a run's configuration hash, an adapter's resume
identity) is :func:`digest` of :func:`canonical_json`, so equal settings give equal names
whichever module computes them. Torch-free.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

#: Hex characters of a configuration or adaptation hash (``meta.json``, resume identity).
HASH_LENGTH = 16


def canonical_json(data: Any) -> str:
    """Key-sorted compact JSON: equal data give equal text. Non-JSON values (paths) are
    written as their text; NaN is refused (it is not equal to itself)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False, default=str)


def digest(data: Any, length: int = HASH_LENGTH) -> str:
    """The first ``length`` hex characters of the SHA-256 of :func:`canonical_json`."""
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()[:length]


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from ``parts`` (e.g. global seed, video id, variant), stable across runs."""
    text = "\x1f".join(str(part) for part in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a whole file, read in chunks."""
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            sha.update(block)
    return sha.hexdigest()
