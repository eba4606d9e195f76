"""Errors that diffsim raises for bad input, with messages that name the problem."""


class DiffsimError(ValueError):
    """Bad input or an invalid numerical result (wrong shape, NaN state, non-physical
    parameter, solver failure, NaN gradient, unreadable checkpoint).

    The command-line interface prints these as one line, without a traceback.
    """


class CommandInterrupted(Exception):
    """A command line run stopped by a signal after saving its work: the CLI prints the
    message as one line and exits with ``exit_code`` (130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code
