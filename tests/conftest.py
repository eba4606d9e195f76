"""Shared test configuration.

Numerics tests that need float64 use the ``x64`` fixture; everything else runs in
float32, the library default.
"""

import os

os.environ.setdefault("DIFFSIM_QUICK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402
import pytest  # noqa: E402

# implicit broadcasting between arrays of different rank hides shape bugs: make it an error
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def x64():
    """Enable float64 for the duration of one test."""
    with jax.enable_x64(True):
        yield
