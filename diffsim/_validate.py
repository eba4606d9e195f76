"""Argument checks, one of each kind, so that every entry point refuses bad input alike:
before any work, with a :class:`DiffsimError` that names the argument, the value received
and what is expected. Booleans are never accepted as numbers."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import DiffsimError

SEED_RANGE = (0, 2**32 - 1)
"""Seeds accepted everywhere (those ``jax.random.key`` takes in float32 mode)."""


def _is_integer(value: Any) -> bool:
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, np.integer))


def _is_number(value: Any) -> bool:
    return not isinstance(value, (bool, np.bool_)) and isinstance(
        value, (int, float, np.integer, np.floating)
    )


def positive_int(name: str, value: Any) -> int:
    """``value`` as an ``int`` if it is a whole number of at least 1."""
    if not _is_integer(value) or value < 1:
        raise DiffsimError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def nonnegative_int(name: str, value: Any) -> int:
    """``value`` as an ``int`` if it is a whole number of at least 0."""
    if not _is_integer(value) or value < 0:
        raise DiffsimError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def optional_positive_int(name: str, value: Any) -> int | None:
    """``None``, or a positive integer (:func:`positive_int`)."""
    return None if value is None else positive_int(name, value)


def positive_float(name: str, value: Any) -> float:
    """``value`` as a ``float`` if it is a finite number above 0."""
    if not _is_number(value) or not (math.isfinite(value) and value > 0):
        raise DiffsimError(f"{name} must be a positive, finite number, got {value!r}")
    return float(value)


def boolean(name: str, value: Any) -> bool:
    """``value`` if it is ``True`` or ``False``."""
    if not isinstance(value, (bool, np.bool_)):
        raise DiffsimError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def writable_folder(name: str, folder: Path) -> Path:
    """``folder``, created, once a file could be written there: before any work starts."""
    if folder.exists() and not folder.is_dir():
        raise DiffsimError(f"{name} {folder} exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as error:
        raise DiffsimError(f"{name} {folder} is not a writable folder: {error.strerror}") from None
    return folder


def seed(name: str, value: Any) -> int:
    """``value`` as an ``int`` if it is a whole number in :data:`SEED_RANGE`."""
    low, high = SEED_RANGE
    if not _is_integer(value) or not low <= value <= high:
        raise DiffsimError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    return int(value)


def one_of(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices``."""
    choices = tuple(choices)
    if not any(value is choice or value == choice for choice in choices):
        listed = ", ".join(repr(choice) for choice in choices)
        raise DiffsimError(f"{name} must be one of {listed}, got {value!r}")
    return value


def instance(name: str, value: Any, kind: type | tuple[type, ...], expected: str) -> Any:
    """``value`` if it is an instance of ``kind``; ``expected`` says what that is in the
    user's words, e.g. ``"an optax.GradientTransformation such as optax.adam(1e-3)"``."""
    if not isinstance(value, kind):
        raise DiffsimError(f"{name} must be {expected}, got {_show(value)}")
    return value


def numbers(name: str, value: Any, expected: str = "numbers") -> Any:
    """``value`` as a float64 NumPy array, if it holds only numbers (traced values are
    returned as they are: they are numbers by construction)."""
    import jax

    if isinstance(value, jax.core.Tracer):
        return value
    if isinstance(value, (str, bytes)):
        raise DiffsimError(f"{name} must be {expected}, got {value!r}")
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DiffsimError(f"{name} must be {expected}, got {_show(value)}") from None


def callable_(name: str, value: Any, expected: str) -> Any:
    """``value`` if it can be called; ``expected`` describes the call, e.g.
    ``"a function callback(iteration, metrics)"``."""
    if not callable(value):
        raise DiffsimError(f"{name} must be {expected}, got {_show(value)}")
    return value


def optimiser(name: str, value: Any) -> Any:
    """``value`` if it is an optax transformation."""
    import optax

    return instance(
        name,
        value,
        optax.GradientTransformation,
        "an optax.GradientTransformation such as optax.adam(1e-3) or "
        "diffsim.adam_cosine(1e-2, iterations)",
    )


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"a {type(value).__name__}"


def prng_key(name: str, value: Any) -> Any:
    """``value`` if it is a JAX PRNG key: a typed key (``jax.random.key(0)``), or a raw
    ``uint32`` key of shape ``(2,)`` (``jax.random.PRNGKey(0)``)."""
    import jax
    import jax.numpy as jnp

    if isinstance(value, jax.Array):
        if jnp.issubdtype(value.dtype, jax.dtypes.prng_key) and value.shape == ():
            return value
        if value.dtype == jnp.uint32 and value.shape == (2,):
            return value
    raise DiffsimError(
        f"{name} must be a JAX PRNG key such as jax.random.key(0), got {_show(value)}"
    )
