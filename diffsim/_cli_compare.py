"""``diffsim compare ENV``: differentiable training against RL baselines."""

from __future__ import annotations

import signal
from pathlib import Path

from . import _validate as validate
from ._cli_train import ENV_HELP, devices
from ._errors import CommandInterrupted, DiffsimError


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="differentiable training against RL baselines on the same env",
        description="Train the env's recipe (dp) and RL baselines for several seeds, "
        "evaluate every final deterministic policy on the same fixed episodes, save each as a "
        "checkpoint that `diffsim eval` reads, and write results.json, table.md, "
        "curves_steps.png and curves_time.png.",
    )
    parser.add_argument("env", help=ENV_HELP)
    parser.add_argument(
        "--methods",
        default=None,
        help=f"comma-separated, from the installed methods: {_installed()} (default: "
        "those marked *, where they fit the env)",
    )
    parser.add_argument("--seeds", type=int, default=5, help="training seeds 0..N-1 (default 5)")
    parser.add_argument("--eval-seed", type=int, default=0, help="evaluation seed (default 0)")
    parser.add_argument(
        "--episodes", type=int, default=1000, help="final evaluation episodes (default 1000)"
    )
    parser.add_argument("--quick", action="store_true", help="short budgets (tests, demos)")
    parser.add_argument(
        "--devices",
        default=None,
        help="split each dp seed's batch over devices: 'all' (jax.devices()) or a count N "
        "(the first N); the recipe's batch size must be a multiple of it",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default runs/compare/ENV; runs/compare/NAME for a FILE.py:NAME or "
        "module:NAME env)",
    )
    parser.add_argument("--json", action="store_true", help="print results.json")
    parser.set_defaults(run=_compare, validate=_validate)


def _installed() -> str:
    from ._methods import methods

    return ", ".join(
        f"{name}{'*' if method.by_default else ''}" for name, method in sorted(methods().items())
    )


def _validate(args) -> None:
    from ._compare import default_out, prepare

    validate.seed("--eval-seed", args.eval_seed)
    validate.positive_int("--seeds", args.seeds)
    validate.positive_int("--episodes", args.episodes)
    args.method_names = None
    if args.methods is not None:
        args.method_names = [m.strip() for m in args.methods.split(",") if m.strip()]
        if not args.method_names:
            raise DiffsimError(f"--methods names no method: {args.methods!r}")
    args.device_list = None if args.devices is None else devices(args.devices)
    prepare(
        args.env,
        args.method_names,
        seeds=args.seeds,
        episodes=args.episodes,
        devices=args.device_list,
    )
    if args.out is None:
        args.out = default_out(args.env)
    validate.writable_folder("--out", args.out)


def _compare(args) -> dict:
    from ._compare import compare, table

    def stop(number, frame):
        raise CommandInterrupted(
            f"stopped by {signal.Signals(number).name}: {args.out / 'results.json'} holds the "
            "methods that had finished, if any (a comparison does not resume)",
            128 + number,
        )

    handlers = {number: signal.signal(number, stop) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        results = compare(
            args.env,
            methods=args.method_names,
            seeds=args.seeds,
            eval_seed=args.eval_seed,
            episodes=args.episodes,
            quick=args.quick,
            out=args.out,
            devices=args.device_list,
        )
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
    if args.json:
        return results
    print(table(results), end="")
    print(f"written to {args.out}: results.json, table.md, curves_steps.png, curves_time.png")
    return None
