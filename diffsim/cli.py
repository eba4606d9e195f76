"""The ``diffsim`` command line: ``diffsim train ENV``, ``diffsim eval ENV CHECKPOINT``,
and the commands that env plug-ins add (``diffsim shoot``, ``diffsim aim``).

Every command prints a clean one-line error (no traceback) on bad arguments or files
and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ._errors import DiffsimError


def _build_parser() -> argparse.ArgumentParser:
    from diffsim import envs

    parser = argparse.ArgumentParser(
        prog="diffsim", description="Differentiable physics and control in JAX."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from . import _cli_train

    _cli_train.add_commands(subparsers)
    for add_commands in envs.CLI_PLUGINS:
        add_commands(subparsers)
    return parser


def emit(result: dict, as_json: bool) -> None:
    """Print a command's result: one JSON object with ``--json``, else ``key: value`` lines."""
    if as_json:
        print(json.dumps(result))
    else:
        for name, value in result.items():
            print(f"{name}: {value}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.run(args)
    except (DiffsimError, FileNotFoundError, IsADirectoryError, PermissionError) as error:
        print(f"diffsim {args.command}: error: {error}", file=sys.stderr)
        return 2
    if result is not None:
        emit(result, getattr(args, "json", False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
