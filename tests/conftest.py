"""Shared test configuration.

Every jaxtyping shape annotation in the package is checked at run time during the tests
(jaxtyping's import hook with beartype), implicit rank promotion is an error, and numerics
tests that need float64 use the ``x64`` fixture; everything else runs in float32, the
library default.
"""

import os
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
# One JAX persistent compilation cache for the whole run, shared by the xdist workers, the
# CLI subprocesses and the notebook kernels (they inherit the environment): many tests
# compile the same programs (a trebuchet shot, a pendulum training step) in fresh `jit`
# wrappers or fresh processes. Results are unchanged; only compilations are skipped. It
# lives in the ignored build/ folder (`make clean` removes it).
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    str(Path(__file__).resolve().parents[1] / "build" / "jax-cache-tests"),
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

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


# `make test` hands whole files to the xdist workers in collection order (`--dist loadfile
# --no-loadscope-reorder`): the longest files go first, so that no worker is left with a
# long file while the other idles (measured on a 2-core machine with an empty compilation
# cache: 6:51-7:28 in xdist's default order, by number of tests; 6:36 in this one). Ordered
# by their seconds then; a stale order costs wall time, never a result.
LONGEST_FIRST = (
    "test_distributed.py",  # 3 processes
    "test_scale.py",
    "test_train.py",
    "test_trebuchet_cli.py",
    "test_controllers.py",
    "test_identify.py",
    "test_check_env.py",
    "test_cli.py",
    "test_rollout.py",
    "test_rl.py",
    "test_notebooks.py",
    "test_cartpole.py",
    "test_compare.py",
    "test_cli_runs.py",
)


def pytest_configure(config):
    missing = [name for name in LONGEST_FIRST if not Path(__file__).with_name(name).exists()]
    if missing:
        raise pytest.UsageError(f"tests/conftest.py's LONGEST_FIRST names missing files: {missing}")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: files keep theirs


@pytest.fixture
def x64():
    """Enable float64 for the duration of one test."""
    with jax.enable_x64(True):
        yield
