"""Errors that diffsim raises for bad input, with messages that name the problem."""

import contextlib
from collections.abc import Iterator

import equinox as eqx
import jax


class DiffsimError(ValueError):
    """Bad input or an invalid numerical result (wrong shape, NaN state, non-physical
    parameter, solver failure, NaN gradient, unreadable checkpoint).

    The command-line interface prints these as one line, without a traceback.

    Example:
        ```python
        import diffsim

        try:
            diffsim.envs.Pendulum(m=-1.0)
        except diffsim.DiffsimError as error:
            print(error)   # names the parameter and its value
        ```
    """


class CommandInterrupted(Exception):
    """A command line run stopped by a signal after saving its work: the CLI prints the
    message as one line and exits with ``exit_code`` (130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


@contextlib.contextmanager
def runtime_errors_as_diffsim_errors() -> Iterator[None]:
    """Re-raise equinox's runtime errors (the checks ``eqx.error_if`` puts inside compiled
    code) as :class:`DiffsimError` with the same first line, at public entry points that
    run outside the user's ``jit``."""
    try:
        yield
    except (eqx.EquinoxRuntimeError, eqx.EquinoxTracetimeError) as error:
        raise DiffsimError(first_line(error)) from None
    except jax.errors.JaxRuntimeError as error:  # the same check, run outside eqx.filter_jit
        if "EquinoxRuntimeError: " not in str(error):
            raise
        raise DiffsimError(first_line(error)) from None


def first_line(error: BaseException) -> str:
    """The message of ``error`` on one line: for equinox's runtime errors, the message
    given to ``eqx.error_if`` (not the stack trace that surrounds it)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        for marker in ("EquinoxRuntimeError: ", "EquinoxTracetimeError: "):
            if marker in line:
                return line.split(marker, 1)[1]
    return lines[0] if lines else type(error).__name__
