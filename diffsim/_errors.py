"""Errors that diffsim raises for bad input, with messages that name the problem."""


class DiffsimError(ValueError):
    """Bad input or an invalid numerical result (wrong shape, NaN state, non-physical
    parameter, solver failure, NaN gradient, unreadable checkpoint).

    The command-line interface prints these as one line, without a traceback.
    """
