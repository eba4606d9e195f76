"""Checks shared by the controllers: callables, integers, and static (trace-time) shapes."""

from __future__ import annotations

import numbers

import jax.numpy as jnp
import numpy as np

from diffsim import DiffsimError

Integer = int | np.integer
"""A Python or NumPy integer (a count, a size)."""


def check_callable(owner: str, name: str, value) -> None:
    """Raise unless ``value`` can be called as ``value(t, observation)``."""
    if not callable(value):
        raise DiffsimError(
            f"{owner} needs a {name} callable as {name}(t, observation), got {value!r:.60}"
        )


def is_integer(value) -> bool:
    """A Python or NumPy integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_shape(owner: str, what: str, value, expected: tuple[int, ...], against: str) -> None:
    """Raise unless ``value`` has shape ``expected`` (that of ``against``). ``.shape`` is
    static under ``jit`` and ``vmap``: the check costs nothing at run time."""
    shape = jnp.shape(value)
    if shape != tuple(expected):
        raise DiffsimError(
            f"{owner}: {what} has shape {shape}, but {against} has shape {tuple(expected)}"
        )
