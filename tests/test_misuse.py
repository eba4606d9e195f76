"""Every misuse of the public API is refused before any work with a :class:`DiffsimError`
whose one-line message names the argument and what it must be (or, for a missing
argument, Python's own ``TypeError`` naming it): never an AttributeError, an IndexError, a
JAX tracer error or a failure later on. The cases (``misuse_cases.py``) run in a process of
their own, as a user meets them: the suite's runtime type checks would answer first here.
The command line's bad inputs are in ``test_cli.py``; ``identify`` and ``Record`` in
``test_identify.py``."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from misuse_cases import MISSING, MISUSES


@pytest.fixture(scope="module")
def outcomes():
    code = "import json, misuse_cases; print(json.dumps(misuse_cases.outcomes()))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


NAMES = [m[0] for m in MISUSES]


@pytest.mark.parametrize("what, words", [(m[0], m[2]) for m in MISUSES], ids=NAMES)
def test_a_misuse_is_a_diffsim_error_that_names_what_is_wrong(outcomes, what, words):
    kind, message = outcomes[what]
    assert kind == "DiffsimError" and words in message and "\n" not in message, (kind, message)


@pytest.mark.parametrize("what, argument", [m[::2] for m in MISSING], ids=[m[0] for m in MISSING])
def test_a_missing_argument_is_pythons_type_error_naming_it(outcomes, what, argument):
    kind, message = outcomes[what]
    assert kind == "TypeError" and argument in message, (kind, message)
