"""Shared test configuration.

Every jaxtyping shape annotation in the package is checked at run time during the tests
(jaxtyping's import hook with beartype), implicit rank promotion is an error, and numerics
tests that need float64 use the ``x64`` fixture; everything else runs in float32, the
library default.
"""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402
import pytest  # noqa: E402
from jaxtyping import install_import_hook  # noqa: E402

# before anything imports diffsim: annotations of diffsim, diffsim.envs, diffsim.controllers
with install_import_hook("diffsim", "beartype.beartype"):
    import diffsim  # noqa: E402, F401
    import diffsim.controllers  # noqa: E402, F401
    import diffsim.envs  # noqa: E402, F401
    import diffsim.rl  # noqa: E402, F401

# implicit broadcasting between arrays of different rank hides shape bugs: make it an error
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def x64():
    """Enable float64 for the duration of one test."""
    with jax.enable_x64(True):
        yield
