"""``diffsim train ENV`` and ``diffsim eval ENV CHECKPOINT``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax.random as jr

from ._checkpoint import load_checkpoint, read_metadata, save_checkpoint
from ._errors import DiffsimError
from ._evaluate import evaluate, initial_states
from ._recipe import Recipe
from ._rollout import rollout


def _recipes() -> dict[str, Recipe]:
    from diffsim import envs

    return envs.RECIPES


def add_commands(subparsers) -> None:
    names = sorted(_recipes())
    train = subparsers.add_parser(
        "train", help="train a controller for an env", description="Train a controller."
    )
    train.add_argument("env", choices=names, help="environment name")
    train.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    train.add_argument("--out", type=Path, default=None, help="output folder (default runs/ENV)")
    train.add_argument("--episodes", type=int, default=None, help="final evaluation episodes")
    train.add_argument(
        "--quick", action="store_true", help="the recipe's short run (for tests and demos)"
    )
    train.add_argument(
        "--plots", action="store_true", help="also write learning-curve/trajectory plots, a GIF"
    )
    train.add_argument("--json", action="store_true", help="print one JSON object")
    train.set_defaults(run=_train)

    evaluate_parser = subparsers.add_parser(
        "eval", help="evaluate a checkpoint on fixed seeds", description="Evaluate a checkpoint."
    )
    evaluate_parser.add_argument("env", choices=names, help="environment name")
    evaluate_parser.add_argument("checkpoint", type=Path, help="checkpoint file")
    evaluate_parser.add_argument("--episodes", type=int, default=1000)
    evaluate_parser.add_argument("--seed", type=int, default=0, help="evaluation seed")
    evaluate_parser.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate_parser.set_defaults(run=_evaluate)


def _train(args) -> dict:
    recipe = _recipes()[args.env]
    episodes = recipe.eval_episodes if args.episodes is None else args.episodes
    out = Path("runs") / args.env if args.out is None else args.out
    if out.exists() and not out.is_dir():
        raise DiffsimError(f"--out {out} exists and is not a folder")
    started = time.perf_counter()
    controller, env, history = recipe.run(args.seed, quick=args.quick, progress=True)
    wall = time.perf_counter() - started
    checkpoint = save_checkpoint(
        out / "controller.eqx",
        (env, controller),
        {
            "env": args.env,
            "seed": args.seed,
            "quick": args.quick,
            "env_steps": history.total_env_steps,
        },
    )
    (out / "history.json").write_text(json.dumps(history.to_dict()))
    result = evaluate(env, controller, episodes=episodes, seed=recipe.eval_seed)
    summary = {
        "env": args.env,
        "seed": args.seed,
        "checkpoint": str(checkpoint),
        "env_steps": history.total_env_steps,
        "episodes_of_training": history.total_env_steps / env.episode_steps,
        "wall_seconds": round(wall, 2),
        "compile_seconds": round(history.compile_seconds, 2),
        "evaluation": result.summary(),
    }
    if args.plots:
        summary["plots"] = _write_plots(out, env, controller, history)
    return summary


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
    axes = plot_trajectory(trajectory)
    axes[0].figure.savefig(out / "trajectory.png", dpi=120)
    plt.close(axes[0].figure)
    written = [str(out / "learning_curve.png"), str(out / "trajectory.png")]
    try:
        anim = animate(env, trajectory, every=2)
    except NotImplementedError:
        return written
    anim.save(out / "animation.gif", writer="pillow", fps=max(1, round(1 / (2 * env.control_dt))))
    return [*written, str(out / "animation.gif")]


def _evaluate(args) -> dict:
    recipe = _recipes()[args.env]
    metadata = read_metadata(args.checkpoint)
    if metadata.get("env") != args.env:
        raise DiffsimError(
            f"{args.checkpoint} was trained on {metadata.get('env')!r}, not {args.env!r}"
        )
    like = recipe.make_env()
    env, controller = load_checkpoint(
        args.checkpoint, (like, recipe.make_controller(like, jr.key(0)))
    )
    result = evaluate(env, controller, episodes=args.episodes, seed=args.seed)
    return {"mean": result.mean, "std": result.std, "episodes": result.episodes}
