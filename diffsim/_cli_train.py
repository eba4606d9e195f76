"""``diffsim train ENV`` and ``diffsim eval ENV CHECKPOINT``."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shlex
import socket
import sys
import time
import zlib
from pathlib import Path

from . import _validate as validate
from ._checkpoint import read_metadata
from ._errors import CommandInterrupted, DiffsimError, first_line
from ._evaluate import evaluate, initial_states
from ._recipe import Recipe, adam_cosine
from ._registry import env_name, env_record, load_recipe, recipes, same_env
from ._rollout import rollout
from ._runner import TrainingInterrupted
from ._sharding import as_mesh, check_divisible, gather
from ._train import check_same_settings

CHECKPOINT_EVERY = 10
"""``--checkpoint-every``'s default (updates)."""
JOIN_TIMEOUT = 300
"""``--join-timeout``'s default: seconds a process of a run of several processes waits for
the others to join (JAX's own default)."""
ENV_HELP = (
    "an installed env's name (see `diffsim list`), or path/to/file.py:Name, or package.module:Name"
)


def add_commands(subparsers) -> None:
    train = subparsers.add_parser(
        "train",
        help="train a controller for an env",
        description="Train a controller with the env's recipe. The checkpoint (model and "
        "whole training state) is written at every evaluation, every --checkpoint-every "
        "updates and on Ctrl-C / SIGTERM; --resume continues from it.",
    )
    train.add_argument("env", help=ENV_HELP)
    train.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    train.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default runs/ENV, or runs/NAME for path/to/file.py:NAME and "
        "package.module:NAME)",
    )
    train.add_argument(
        "--episodes",
        type=int,
        default=None,
        help="final evaluation episodes (default: the recipe's, 1000)",
    )
    train.add_argument(
        "--quick", action="store_true", help="the recipe's short run (for tests and demos)"
    )
    train.add_argument(
        "--checkpoint-every",
        type=int,
        default=CHECKPOINT_EVERY,
        help=f"updates between checkpoints (default {CHECKPOINT_EVERY}; 0: only at evaluations)",
    )
    train.add_argument(
        "--resume", action="store_true", help="continue the run saved in --out's checkpoint"
    )
    train.add_argument(
        "--keep-last",
        action="store_true",
        help="keep the last controller instead of the best evaluated one (the default guards "
        "against a late collapse)",
    )
    train.add_argument(
        "--plots", action="store_true", help="also write learning-curve/trajectory plots, a GIF"
    )
    for flag, kind, what in (
        ("--iterations", int, "optimiser updates (replaces the recipe's, quick or not)"),
        ("--batch-size", int, "episodes simulated in parallel per update"),
        ("--window", int, "control steps per differentiated window"),
        (
            "--lr",
            float,
            "learning rate of Adam with cosine decay and clipping (replaces the "
            "recipe's optimiser)",
        ),
    ):
        train.add_argument(flag, type=kind, default=None, help=what)
    train.add_argument(
        "--devices",
        default=None,
        help="split the batch over devices: 'all' (jax.devices()) or a count N (the first N); "
        "the batch size must be a multiple of it",
    )
    train.add_argument(
        "--distributed",
        action="store_true",
        help="join a run of several processes, found from the cluster's environment "
        "(SLURM, Open MPI, ...; jax.distributed.initialize()); with --devices all the "
        "batch is split over every process's devices",
    )
    train.add_argument(
        "--coordinator",
        default=None,
        metavar="HOST:PORT",
        help="join a run of several processes coordinated at HOST:PORT (process 0's "
        "address), with --num-processes and --process-id",
    )
    train.add_argument("--num-processes", type=int, default=None, help="processes in the run")
    train.add_argument("--process-id", type=int, default=None, help="this process, 0 to N-1")
    train.add_argument(
        "--join-timeout",
        type=int,
        default=JOIN_TIMEOUT,
        metavar="S",
        help=f"seconds to wait for every process of the run to join (default {JOIN_TIMEOUT})",
    )
    train.add_argument("--json", action="store_true", help="print one JSON object")
    train.set_defaults(run=_train, validate=_validate_train)

    listing = subparsers.add_parser(
        "list", help="the envs diffsim knows", description="List installed envs and recipes."
    )
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    listing.set_defaults(run=_list)

    evaluate_parser = subparsers.add_parser(
        "eval",
        help="evaluate a checkpoint on fixed seeds",
        description="Evaluate a checkpoint written by `diffsim train` or diffsim.train().",
    )
    evaluate_parser.add_argument("env", help=ENV_HELP)
    evaluate_parser.add_argument("checkpoint", type=Path, help="checkpoint file")
    evaluate_parser.add_argument(
        "--episodes",
        type=int,
        default=1000,
        help="episodes, from fixed start states (default 1000)",
    )
    evaluate_parser.add_argument(
        "--seed", type=int, default=0, help="evaluation seed (default 0)"
    )
    evaluate_parser.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate_parser.set_defaults(run=_evaluate, validate=_validate_evaluate)


def _output_folder(args) -> Path:
    """``--out``, else ``runs/`` and the env's name (:func:`env_name`)."""
    return Path("runs") / env_name(args.env) if args.out is None else args.out


def _joins_processes(args) -> bool:
    """Whether the command joins a run of several processes, once its flags are checked
    (without JAX: before anything waits)."""
    validate.positive_int("--join-timeout", args.join_timeout)
    explicit = (args.coordinator, args.num_processes, args.process_id)
    if all(value is None for value in explicit) and not args.distributed:
        return False
    if args.distributed and any(value is not None for value in explicit):
        raise DiffsimError(
            "--distributed finds the run in the cluster's environment, --coordinator, "
            "--num-processes and --process-id name it: give one or the other"
        )
    if any(value is not None for value in explicit):
        if any(value is None for value in explicit):
            raise DiffsimError(
                "--coordinator, --num-processes and --process-id go together, got "
                f"{args.coordinator!r}, {args.num_processes!r}, {args.process_id!r}"
            )
        validate.positive_int("--num-processes", args.num_processes)
        if not 0 <= args.process_id < args.num_processes:
            raise DiffsimError(
                f"--process-id must be from 0 to {args.num_processes - 1}, got {args.process_id}"
            )
        host, _, port = args.coordinator.rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise DiffsimError(
                f"--coordinator must be HOST:PORT, a port from 1 to 65535, got {args.coordinator!r}"
            )
    if args.devices is None:
        raise DiffsimError(
            "a run of several processes splits its batch over them: add --devices all "
            "(without it every process would train the whole batch alone)"
        )
    return True


def _join_processes(args) -> None:
    """Join the run of several processes (``jax.distributed.initialize``) before JAX
    touches a device, saying so first: the others are waited for up to
    ``--join-timeout`` s. A process other than the first waits for the coordinator
    itself, so that one never started is a :class:`DiffsimError`, not JAX's abort."""
    import jax

    if args.distributed:
        where = "the run the cluster's environment describes"
    else:
        where = f"process {args.process_id} of {args.num_processes} at {args.coordinator}"
    print(
        f"diffsim train: joining {where}, waiting up to {args.join_timeout} s for every "
        "process",
        file=sys.stderr,
        flush=True,
    )
    deadline = time.monotonic() + args.join_timeout
    if args.coordinator is not None and args.process_id != 0:
        _wait_for_coordinator(args.coordinator, args.join_timeout)
    try:
        jax.distributed.initialize(
            args.coordinator, args.num_processes, args.process_id,
            initialization_timeout=max(1, round(deadline - time.monotonic())),
        )
    except (RuntimeError, ValueError) as error:
        raise DiffsimError(f"cannot join the distributed run: {first_line(error)}") from None
    _keep_stdout_for_results()


def _wait_for_coordinator(address: str, timeout: int) -> None:
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise DiffsimError(
                    f"no coordinator answered at {address} in {timeout} s: start process 0 "
                    "there (its --coordinator is its own address)"
                ) from None
            time.sleep(1)


def _keep_stdout_for_results() -> None:
    """Send what the collectives' libraries print on standard output (Gloo's peer counts)
    to standard error, keeping standard output for the command's result (``--json``: one
    JSON object)."""
    sys.stdout.flush()
    results = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = open(results, "w", buffering=1, encoding=sys.stdout.encoding)  # noqa: SIM115


def _agree_across_processes(args) -> None:
    """A :class:`DiffsimError`, on every process, unless all the processes of the run were
    started with the same options (each would otherwise run another program: a mix of
    seeds, mismatched collectives)."""
    import jax
    import numpy as np
    from jax.experimental import multihost_utils

    if jax.process_count() == 1:
        return
    options = _options(args) | {
        "out": str(_output_folder(args)),
        "devices": args.devices,
        "episodes": args.episodes,
        "checkpoint-every": args.checkpoint_every,
        "resume": args.resume,
        "plots": args.plots,  # they gather the model: a collective
    }
    codes = [zlib.crc32(json.dumps(value).encode()) & 0x7FFFFFFF for value in options.values()]
    every = np.asarray(multihost_utils.process_allgather(np.asarray(codes, np.int32)))
    differ = [name for i, name in enumerate(options) if len(set(every[:, i].tolist())) > 1]
    if differ:
        mine = ", ".join(_as_given(name, options[name]) for name in differ)
        raise DiffsimError(
            f"the processes of this run were started with different {', '.join(differ)} "
            f"(process {jax.process_index()}: {mine}): start the same command on every process"
        )


def _validate_train(args) -> None:
    joins = _joins_processes(args)
    validate.seed("--seed", args.seed)
    for name in ("episodes", "iterations", "batch_size", "window"):
        validate.optional_positive_int(f"--{name.replace('_', '-')}", getattr(args, name))
    if args.lr is not None:
        validate.positive_float("--lr", args.lr)
    validate.nonnegative_int("--checkpoint-every", args.checkpoint_every)
    if args.devices is not None:
        _device_count(args.devices)  # its form; the count against the devices after joining
    out = _output_folder(args)
    validate.writable_folder("--out", out)
    checkpoint = out / "controller.eqx"
    args.resumed_from = None
    if args.resume:
        metadata = read_metadata(checkpoint)
        saved = dict(metadata.get("options", {}))
        if same_env(metadata, args.env):
            saved["env"] = args.env  # the same file, named by another path
        check_same_settings(checkpoint, saved, _options(args), describe=_as_given)
        args.resumed_from = metadata.get("iteration")
    if joins:  # what follows builds the env: JAX's devices, which must join first
        _join_processes(args)
        _agree_across_processes(args)
    args.recipe = _with_overrides(load_recipe(args.env), args)


def _options(args) -> dict:
    """The command-line choices a run's result depends on (recorded in the checkpoint and
    required unchanged by ``--resume``)."""
    names = ("seed", "quick", "iterations", "batch_size", "window", "lr", "keep_last")
    return {"env": args.env} | {name.replace("_", "-"): getattr(args, name) for name in names}


def _flag(name: str, value) -> list[str]:
    """Option ``--name`` with ``value`` as command-line words: none where it was not given
    (``None``, or ``False`` for a switch), the bare flag for a switch given."""
    if value is None or value is False:
        return []
    return [f"--{name}"] if value is True else [f"--{name}", str(value)]


def _as_given(name: str, value) -> str:
    if name == "env":
        return f"env {value!r}"
    return " ".join(_flag(name, value)) or f"--{name} not given"


def _resume_command(args) -> str:
    """The command line that continues this run: its env, ``--out``, every option
    ``--resume`` requires unchanged and those of its evaluation and output, with the run's
    values, quoted for a POSIX shell."""
    words = ["diffsim", "train", args.env, "--out", str(_output_folder(args))]
    options = {name: value for name, value in _options(args).items() if name != "env"}
    if args.checkpoint_every != CHECKPOINT_EVERY:  # where a resumed run's calls end
        options["checkpoint-every"] = args.checkpoint_every
    for name in ("devices", "episodes", "plots", "json", "distributed", "coordinator",
                 "num_processes", "process_id"):  # fmt: skip
        options[name.replace("_", "-")] = getattr(args, name)
    if args.join_timeout != JOIN_TIMEOUT:
        options["join-timeout"] = args.join_timeout
    for name, value in options.items():
        words += _flag(name, value)
    return shlex.join([*words, "--resume"])


def _with_overrides(recipe: Recipe, args) -> Recipe:
    options = dict(recipe.train_options)
    for name in ("batch_size", "window"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    changes = {"train_options": options}
    if args.iterations is not None:
        changes["iterations"] = changes["quick_iterations"] = args.iterations
    if args.lr is not None:
        changes["make_optimiser"] = functools.partial(adam_cosine, args.lr)
    if args.devices is not None:
        options["devices"] = devices(args.devices)
        check_divisible(as_mesh(options["devices"]), options.get("batch_size", 64), "batch size")
    return dataclasses.replace(recipe, **changes)


def _device_count(spec: str) -> int | None:
    """``--devices`` read without JAX: ``None`` for ``all``, else the count it asks for."""
    if spec == "all":
        return None
    if not spec.isdigit():
        raise DiffsimError(f"--devices must be 'all' or a count, got {spec!r}")
    return int(spec)


def devices(spec: str) -> list:
    """``--devices``: ``all`` or how many of ``jax.devices()``."""
    import jax

    available = jax.devices()
    count = _device_count(spec)
    if count is None:
        return available
    if not 1 <= count <= len(available):
        raise DiffsimError(
            f"--devices must be 'all' or a count from 1 to {len(available)} (the devices JAX "
            f"sees: {len(available)} {available[0].platform}), got {spec!r}"
        )
    return available[:count]


def _validate_evaluate(args) -> None:
    validate.seed("--seed", args.seed)
    validate.positive_int("--episodes", args.episodes)
    from ._methods import load_trained

    args.loaded = load_trained(args.env, args.checkpoint)  # checked: the file and its env


def _train(args) -> dict:
    import jax

    recipe = args.recipe
    episodes = recipe.eval_episodes if args.episodes is None else args.episodes
    out = _output_folder(args)
    checkpoint = out / "controller.eqx"
    first = jax.process_index() == 0  # of several processes, the first writes the files
    if first and not args.resume:
        _replace_earlier_run(out)
    try:
        env, controller, history = recipe.run(
            args.seed,
            quick=args.quick,
            progress=True,
            checkpoint=checkpoint,
            checkpoint_every=args.checkpoint_every,
            resume=checkpoint if args.resume else None,
            keep_best=not args.keep_last,
            metadata=env_record(args.env) | {"seed": args.seed, "quick": args.quick}
            | {"options": _options(args)},
        )
    except TrainingInterrupted as interrupted:
        raise CommandInterrupted(
            f"{interrupted}; continue with: {_resume_command(args)}",
            128 + interrupted.signal_number,
        ) from None
    if first:
        (out / "history.json").write_text(json.dumps(history.to_dict()))
    devices = recipe.train_options.get("devices")
    result = evaluate(env, controller, episodes=episodes, seed=recipe.eval_seed, devices=devices)
    summary = {
        "env": args.env,
        "seed": args.seed,
        "checkpoint": str(checkpoint),
        "kept": "last" if args.keep_last else "best",
        **({"resumed_from_iteration": args.resumed_from} if args.resume else {}),
        "env_steps": history.total_env_steps,
        "episodes_of_training": history.total_env_steps / env.episode_steps,
        "wall_seconds": round(history.train_seconds, 2),  # all parts of a resumed run
        "compile_seconds": round(history.compile_seconds, 2),
        "warnings": [w["message"] for w in history.warnings],
        "evaluation": result.summary(),
    }
    if args.plots:
        env, controller = gather((env, controller))
        if first:
            summary["plots"] = _write_plots(out, env, controller, history)
    return summary


RUN_FILES = (
    "controller.eqx",
    "history.json",
    "learning_curve.png",
    "trajectory.png",
    "animation.gif",
)
"""The files ``diffsim train`` writes in its folder."""


def _replace_earlier_run(out: Path) -> None:
    """Say that ``out`` holds an earlier run that this one replaces, and remove that run's
    files but its checkpoint, so that none of them is left beside this run's (an
    interrupted run writes no history, a run without --plots or of an env that draws
    nothing no plots). The checkpoint, which holds its run's history too, is overwritten
    by the first save; until then it is the earlier run, whole. Other files are left
    alone."""
    found = [name for name in RUN_FILES if (out / name).is_file()]
    if not found:
        return
    print(
        f"diffsim train: replacing the earlier run in {out} ({', '.join(found)})", file=sys.stderr
    )
    for name in found:
        if name != "controller.eqx":
            (out / name).unlink()


def _write_plots(out: Path, env, controller, history) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from .plotting import animate, plot_learning_curve, plot_trajectory

    ax = plot_learning_curve(history)
    ax.figure.savefig(out / "learning_curve.png", dpi=120)
    plt.close(ax.figure)
    y0 = initial_states(env, 1, seed=0)[0]
    trajectory = rollout(env, controller, y0)
    axes = plot_trajectory(env, trajectory)
    axes[0].figure.savefig(out / "trajectory.png", dpi=120)
    plt.close(axes[0].figure)
    written = [str(out / "learning_curve.png"), str(out / "trajectory.png")]
    try:
        anim = animate(env, trajectory, every=2)
    except NotImplementedError as error:
        print(
            f"diffsim train: animation.gif skipped: {first_line(error)} (an env's draw(y) "
            "method pictures a state)",
            file=sys.stderr,
        )
        return written
    anim.save(out / "animation.gif", writer="pillow", fps=max(1, round(1 / (2 * env.control_dt))))
    return [*written, str(out / "animation.gif")]


def _evaluate(args) -> dict:
    env, controller = args.loaded
    result = evaluate(env, controller, episodes=args.episodes, seed=args.seed)
    return result.summary() | {"mean": result.mean, "std": result.std}  # unrounded


def _list(args) -> dict:
    listing = {}
    for name, recipe in sorted(recipes().items()):
        env = recipe.make_env()
        space = env.action_space
        options = recipe.train_options
        variables = env.variables
        entry = {
            "env": type(env).__name__,
            "states": [q.label for q in variables.states],
            "observations": [q.label for q in variables.observations],
            "controls": [q.label for q in variables.controls],
            "actions": f"{type(space).__name__}({space.controller_size})",
            "control_dt_s": env.control_dt,
            "episode_steps": env.episode_steps,
            "recipe": f"{recipe.iterations} updates x {options.get('batch_size', 64)} episodes x "
            f"{options.get('window') or env.episode_steps} steps",
        }
        listing[name] = (
            entry
            if args.json
            else (
                f"{entry['env']}, state ({', '.join(entry['states'])}), controls "
                f"({', '.join(entry['controls'])}), {entry['actions']} actions, "
                f"{env.episode_steps} steps of {env.control_dt} s; recipe: {entry['recipe']}"
            )
        )
    return listing
