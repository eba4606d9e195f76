"""The ``diffsim`` command line: ``diffsim train ENV``, ``diffsim eval ENV CHECKPOINT``,
``diffsim compare ENV``,
and the commands that env plug-ins add (``diffsim shoot``, ``diffsim aim``).

Every command prints a clean one-line error (no traceback) on bad arguments or files
and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from ._errors import CommandInterrupted, DiffsimError, first_line
from ._registry import command_plugins


class _Parser(argparse.ArgumentParser):
    """argparse with two changes: option values such as ``-1e6`` or ``-inf`` are numbers, not
    options (so that the command's own check can refuse a non-finite one by name), and a
    usage error is one line on stderr (exit status 2)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(
            r"^-((\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|inf|infinity|nan)$", re.IGNORECASE
        )

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="diffsim", description="Differentiable physics and control in JAX.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from . import _cli_compare, _cli_train

    _cli_train.add_commands(subparsers)
    _cli_compare.add_commands(subparsers)
    for add_commands in command_plugins():
        add_commands(subparsers)
    return parser


def emit(result: dict, as_json: bool) -> None:
    """Print a command's result: one JSON object with ``--json``, else ``key: value`` lines."""
    if as_json:
        print(json.dumps(result))
    else:
        for name, value in result.items():
            print(f"{name}: {value}")


def _use_compilation_cache() -> Path:
    """JAX's persistent compilation cache in the user's cache folder (``DIFFSIM_CACHE_DIR``
    overrides it), so a repeated command skips compilations it has done before."""
    import jax

    folder = Path(
        os.environ.get("DIFFSIM_CACHE_DIR")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "diffsim" / "jax"
    )
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    """Run a ``diffsim`` command; returns its exit status (0, 2 for bad input, a failed
    computation or too little memory, 130/143 after SIGINT/SIGTERM, 141 when the reader of
    its output has gone). Errors are one line on stderr."""
    import equinox as eqx
    import jax

    parser = _build_parser()
    args = parser.parse_args(argv)
    prefix = f"diffsim {args.command}"
    try:
        if hasattr(args, "validate"):
            args.validate(args)  # every argument and path, before anything is compiled
        _use_compilation_cache()
        result = args.run(args)
    except CommandInterrupted as interrupted:
        print(f"{prefix}: {interrupted}", file=sys.stderr)
        return interrupted.exit_code
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return 130
    except (
        DiffsimError,
        OSError,
        OverflowError,
        eqx.EquinoxRuntimeError,
        eqx.EquinoxTracetimeError,
    ) as error:
        print(f"{prefix}: error: {first_line(error)}", file=sys.stderr)
        return 2
    except jax.errors.JaxRuntimeError as error:
        if "RESOURCE_EXHAUSTED" not in str(error):
            raise
        sizes = [name for name in ("batch_size", "episodes", "seeds") if hasattr(args, name)]
        smaller = " or ".join(f"--{name.replace('_', '-')}" for name in sizes) or "problem"
        print(
            f"{prefix}: error: out of memory: {first_line(error)}; try a smaller {smaller}",
            file=sys.stderr,
        )
        return 2
    if result is not None:
        try:
            emit(result, getattr(args, "json", False))
            sys.stdout.flush()
        except BrokenPipeError:  # the reader has gone (`diffsim list | head -1`)
            # as Python's documentation (signal module, "Note on SIGPIPE") does, with the
            # status a shell shows for a process that SIGPIPE ended: 128 + 13
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141
    return 0


if __name__ == "__main__":
    sys.exit(main())
