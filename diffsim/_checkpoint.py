"""Checkpoints: a JSON header plus equinox's leaf serialisation, written atomically.

File layout: the line ``diffsim-checkpoint 1``, one line of JSON metadata, then the
arrays as written by ``eqx.tree_serialise_leaves`` (NumPy ``.npy`` records, no pickle).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import equinox as eqx
from jaxtyping import PyTree

from ._errors import DiffsimError

_MAGIC = b"diffsim-checkpoint 1\n"


def save_checkpoint(path: str | os.PathLike, tree: PyTree, metadata: dict | None = None) -> Path:
    """Write ``tree``'s arrays and JSON-serialisable ``metadata`` to ``path`` atomically
    (a temporary file in the same folder, fsynced, then renamed over ``path``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        header = json.dumps(metadata or {}).encode() + b"\n"
    except TypeError as error:
        raise DiffsimError(f"checkpoint metadata must be JSON-serialisable: {error}") from None
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(_MAGIC)
            file.write(header)
            eqx.tree_serialise_leaves(file, tree)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _open_checkpoint(path):
    path = Path(path)
    if not path.is_file():
        raise DiffsimError(f"no checkpoint file at {path}")
    file = path.open("rb")
    if file.readline() != _MAGIC:
        file.close()
        raise DiffsimError(f"{path} is not a diffsim checkpoint")
    try:
        metadata = json.loads(file.readline())
    except json.JSONDecodeError:
        file.close()
        raise DiffsimError(f"{path} has a corrupt header") from None
    return file, metadata


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata stored with a checkpoint."""
    file, metadata = _open_checkpoint(path)
    file.close()
    return metadata


def load_checkpoint(path: str | os.PathLike, like: PyTree) -> PyTree:
    """Load the arrays saved at ``path`` into a tree shaped like ``like`` (e.g. a freshly
    initialised controller of the same architecture)."""
    file, _ = _open_checkpoint(path)
    with file:
        try:
            return eqx.tree_deserialise_leaves(file, like)
        except Exception as error:  # equinox raises several types for a mismatched tree
            raise DiffsimError(
                f"{path} does not match the expected model structure: {error}"
            ) from None
