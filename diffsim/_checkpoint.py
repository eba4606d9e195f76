"""Checkpoints: a JSON header plus equinox's leaf serialisation, checksummed, written
atomically.

File layout: the line ``diffsim-checkpoint 2``, one line of JSON metadata (which records
the length and SHA-256 of what follows), then the arrays as written by
``eqx.tree_serialise_leaves`` (NumPy ``.npy`` records, no pickle). PRNG keys are stored as
their key data. A file that does not match its recorded length or checksum is reported as
corrupt or truncated, never loaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jax.experimental import multihost_utils
from jaxtyping import PyTree

from . import _validate as validate
from ._errors import DiffsimError, first_line
from ._sharding import gather

_MAGIC = b"diffsim-checkpoint 2\n"


def _is_key(leaf: Any) -> bool:
    return isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _keys_as_data(tree: PyTree) -> PyTree:
    return jax.tree_util.tree_map(lambda x: jr.key_data(x) if _is_key(x) else x, tree)


def save_checkpoint(path: str | os.PathLike, tree: PyTree, metadata: dict | None = None) -> Path:
    """Write ``tree``'s arrays and JSON-serialisable ``metadata`` to ``path`` atomically
    (a temporary file in the same folder, fsynced, then renamed over ``path``), so a
    crash or an interruption leaves either the old file or the new one, never half of one.

    Args:
        path: the file to write (its folder is created).
        tree: any pytree; its arrays are saved, its structure is not.
        metadata: a JSON-serialisable dict stored in the header.

    Returns:
        The path written.

    Raises:
        DiffsimError: metadata that is not JSON-serialisable, or a path that cannot be
            written.

    In a run of several processes (``jax.distributed``), every process calls it: the
    arrays spread over processes are gathered (a collective), and process 0 alone writes.

    Example: ``diffsim.save_checkpoint("runs/policy.eqx", (env, controller), {"seed": 0})``.
    """
    check_metadata(metadata)
    path = Path(path)
    tree = gather(_keys_as_data(tree))
    if jax.process_count() == 1:
        return _write(path, tree, metadata)
    try:  # of several processes, the first writes; all wait until it has
        if jax.process_index() == 0:
            _write(path, tree, metadata)
    finally:
        multihost_utils.sync_global_devices(f"diffsim checkpoint {path}")
    return path


def check_metadata(metadata: Any) -> None:
    """Refuse checkpoint ``metadata`` that is neither ``None`` nor a JSON-serialisable
    dict."""
    if metadata is not None and not isinstance(metadata, dict):
        raise DiffsimError(f"metadata must be a dict of JSON values, got {type(metadata).__name__}")
    try:
        json.dumps(metadata)
    except (TypeError, ValueError) as error:
        raise DiffsimError(f"checkpoint metadata must be JSON-serialisable: {error}") from None


def check_destination(path: str | os.PathLike, metadata: Any = None) -> Path:
    """``path`` as a ``Path``, once a checkpoint with ``metadata`` could be written there
    (a file, not a folder, in a folder that is created and written to): for an entry point
    that saves only after hours of work to call first."""
    check_metadata(metadata)
    path = _not_a_folder(Path(path))
    validate.writable_folder("the checkpoint's folder", path.parent)
    return path


def _not_a_folder(path: Path) -> Path:
    if path.is_dir():
        raise DiffsimError(f"cannot write a checkpoint at {path}: it is a folder (name a file)")
    return path


def _write(path: Path, tree: PyTree, metadata: dict | None) -> Path:
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, tree)
    arrays = buffer.getvalue()
    header = json.dumps(
        (metadata or {})
        | {"arrays_bytes": len(arrays), "arrays_sha256": hashlib.sha256(arrays).hexdigest()}
    )
    _not_a_folder(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # not mkstemp: its file is private (0600); this one gets the umask's mode, as
        # every other file a run writes
        temporary = path.parent / f".{path.name}.{secrets.token_hex(8)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        descriptor = os.open(temporary, flags, 0o666)
    except OSError as error:
        raise DiffsimError(f"cannot write a checkpoint at {path}: {error.strerror}") from None
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(_MAGIC)
            file.write(header.encode() + b"\n")
            file.write(arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise DiffsimError(
                f"cannot write a checkpoint at {path}: {error.strerror}"
            ) from None
        raise
    return path


def _read(path: str | os.PathLike) -> tuple[dict[str, Any], bytes]:
    path = Path(path)
    if not path.is_file():
        raise DiffsimError(f"no checkpoint file at {path}")
    with path.open("rb") as file:
        if file.readline() != _MAGIC:
            raise DiffsimError(f"{path} is not a diffsim checkpoint (or is of another version)")
        try:
            metadata = json.loads(file.readline())
            expected_bytes, expected_hash = metadata["arrays_bytes"], metadata["arrays_sha256"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise DiffsimError(f"{path} is a corrupt or truncated checkpoint (header)") from None
        arrays = file.read()
    if len(arrays) != expected_bytes or hashlib.sha256(arrays).hexdigest() != expected_hash:
        raise DiffsimError(
            f"{path} is a corrupt or truncated checkpoint ({len(arrays)} of "
            f"{expected_bytes} array bytes, checksum "
            f"{'matches' if hashlib.sha256(arrays).hexdigest() == expected_hash else 'differs'})"
        )
    return metadata, arrays


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata stored with a checkpoint (after checking the file is whole).

    Args:
        path: the checkpoint file.

    Returns:
        The JSON metadata dict saved with it.
    """
    return _read(path)[0]


def load_checkpoint(path: str | os.PathLike, like: PyTree) -> PyTree:
    """Load the arrays saved at ``path`` into a tree shaped like ``like`` (e.g. a freshly
    initialised controller of the same architecture).

    A checkpoint written by :func:`diffsim.train` stores ``(env, controller)`` first and
    the training state after it: ``load_checkpoint(path, (env, controller))`` reads the
    model and leaves the rest.

    Args:
        path: the checkpoint file.
        like: a pytree of the saved structure, e.g. ``(env, controller)``.

    Returns:
        ``like`` with the saved arrays in place of its own.

    Raises:
        DiffsimError: a missing, foreign, corrupt or truncated file, or one whose
            structure does not match ``like``.
    """
    _, arrays = _read(path)
    stream = io.BytesIO(arrays)
    try:
        loaded = eqx.tree_deserialise_leaves(stream, _keys_as_data(like))
    except Exception as error:  # equinox raises several types for a mismatched tree
        raise DiffsimError(
            f"{path} does not match the tree it is loaded into (has the env, the controller or "
            f"the training setup changed since it was saved: a field added or removed, "
            f"another dtype, another optimiser or trainable part?): {first_line(error)}"
        ) from None
    return jax.tree_util.tree_map(
        lambda template, x: (
            jr.wrap_key_data(x, impl=jr.key_impl(template)) if _is_key(template) else x
        ),
        like,
        loaded,
    )
