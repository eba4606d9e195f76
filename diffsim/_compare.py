"""``diffsim compare``: differentiable training against RL baselines on the very same env,
one evaluation protocol for all, written out as JSON, a Markdown table and two plots.

Every method (an installed :class:`diffsim.AbstractMethod`) builds one controller per seed;
each final controller is evaluated by :func:`diffsim.evaluate` (deterministic policy, ``episodes``
fixed start states from ``eval_seed``) and saved as a checkpoint that ``diffsim eval ENV
PATH`` loads and evaluates to the same number. Imported only when asked (it needs
matplotlib for the plots and, for the RL methods, rejax).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import _validate as validate
from ._checkpoint import save_checkpoint
from ._env import AbstractEnv
from ._errors import DiffsimError
from ._evaluate import Evaluation, evaluate, initial_states
from ._methods import CURVE_EPISODES, CURVE_SEED, AbstractMethod, MethodRun, resolve
from ._recipe import Recipe
from ._registry import env_name, env_record, load_recipe
from ._rollout import Controller, rollout
from ._sharding import Devices, as_mesh, check_divisible
from ._stateful import AbstractStatefulController
from ._timing import Stopwatch, seconds_per_step


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def default_out(env: str) -> Path:
    """``runs/compare/`` and the env's name (:func:`env_name`), as ``diffsim train``'s
    ``runs/NAME``."""
    return Path("runs") / "compare" / env_name(env)


def threshold_key(value: float) -> str:
    """How a threshold is named in ``results.json``: ``-160.0 -> "-160"``."""
    return f"{value:g}"


def prepare(
    env: str,
    methods: Sequence[str] | None,
    *,
    seeds: int,
    episodes: int,
    devices: Devices = None,
) -> tuple[Recipe, AbstractEnv, list[AbstractMethod]]:
    """Check everything before any work: the env, the methods (known, fitting the action
    space, their extras installed), the counts, the devices (the recipe's batch must split
    over them; the recipe returned trains on them)."""
    if isinstance(methods, str):
        raise DiffsimError(
            f"methods must be a list of method names, e.g. ['dp', 'sac'], got {methods!r}"
        )
    validate.positive_int("seeds", seeds)
    validate.positive_int("episodes", episodes)
    recipe = load_recipe(env)
    if devices is not None:
        mesh = as_mesh(devices)
        check_divisible(mesh, recipe.train_options.get("batch_size", 64), "the recipe's batch_size")
        options = recipe.train_options | {"devices": mesh}
        recipe = dataclasses.replace(recipe, train_options=options)
    instance = recipe.make_env()
    return recipe, instance, resolve(methods, recipe, instance)


def compare(
    env: str,
    *,
    methods: Sequence[str] | None = None,
    seeds: int = 5,
    eval_seed: int = 0,
    episodes: int = 1000,
    quick: bool = False,
    out: str | os.PathLike | None = None,
    devices: Devices = None,
    log: Callable[[str], None] | None = _stderr,
) -> dict:
    """Train every method on ``env`` for seeds ``0 .. seeds-1``, evaluate and save each
    final controller, and write ``results.json``, ``table.md``, ``curves_steps.png`` and
    ``curves_time.png`` under ``out`` (default ``runs/compare/ENV``). The first two are
    written again as each method finishes, so an interrupted comparison keeps the methods
    it finished (its ``results.json`` has no ``wall_seconds`` yet). An earlier
    comparison's files in ``out`` are removed first, said on ``log``.

    Args:
        env: an installed recipe's name (``pendulum``, ``cartpole``, ...) or
            ``path/to/file.py:Name`` (:func:`diffsim.load_recipe`).
        methods: names of installed methods (``dp``, ``ppo``, ``sac``, ``dqn``, ``lqr``,
            ``mpc`` ship with diffsim); default: those that run by default
            (:attr:`diffsim.AbstractMethod.by_default`) and fit the env.
        seeds: training seeds ``0 .. seeds-1`` per method.
        eval_seed, episodes: the final evaluation: ``episodes`` fixed start states drawn
            from ``eval_seed``, deterministic policy, the same for every method.
        quick: short budgets (tests, notebooks); numbers are not comparable with full runs.
        out: output folder.
        devices: split each ``dp`` seed's batch over these devices (``jax.devices()``, a
            list of devices or a ``jax.sharding.Mesh``, as for :class:`diffsim.Trainer`):
            the seeds stay one vmapped program, each seed's episodes sharded along the
            batch axis. The other methods run on JAX's default device.
        log: receives one progress line at a time (default: stderr); ``None`` is silent.

    Returns:
        The content of ``results.json``: ``{"env", "eval_seed", "episodes", "methods":
        {name: [{"seed", "mean_return", "std_return", "checkpoint", "env_steps",
        "train_seconds", "compile_seconds", "env_steps_to", "seconds_to", ...}]}, ...}``.

    Example: ``diffsim.compare("pendulum", methods=["dp", "sac"], seeds=3)``.
    """
    validate.seed("eval_seed", eval_seed)
    validate.boolean("quick", quick)
    recipe, instance, chosen = prepare(
        env, methods, seeds=seeds, episodes=episodes, devices=devices
    )
    out = validate.writable_folder("out", default_out(env) if out is None else Path(out))
    log = log or (lambda line: None)
    _replace_earlier_run(out, log)
    results = {
        "env": env,
        "eval_seed": eval_seed,
        "episodes": episodes,
        "quick": quick,
        "seeds": seeds,
        "thresholds": list(recipe.thresholds),
        "metrics": sorted(recipe.metrics),
        "curve_episodes": CURVE_EPISODES,
        "curve_seed": CURVE_SEED,
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
        f"{jax.devices()[0].platform}, jax {jax.__version__}",
        "settings": {m.name: m.describe(recipe, instance, quick) for m in chosen},
        "methods": {},
    }
    started = time.perf_counter()
    for method in chosen:
        log(f"{method.name}: {results['settings'][method.name]}, {seeds} seeds")
        runs = method.run(recipe, list(range(seeds)), quick=quick, log=log)
        rows, measured = [], {}
        for run in runs:
            # an untrained method hands every seed the same controller: measured once
            key = id(run.controller), id(run.env)
            if key not in measured:
                measured[key] = _measure(recipe, run, eval_seed, episodes)
            row = _save(env, recipe, method, run, out, eval_seed, episodes, *measured[key])
            rows.append(row)
            log(
                f"{method.name} seed {run.seed}: mean return {row['mean_return']:.2f} over "
                f"{episodes} episodes, {1e6 * row['seconds_per_step']:.0f} us per control step "
                f"-> {row['checkpoint']}"
            )
        results["methods"][method.name] = rows
        _write(results, out)  # an interrupted comparison keeps the methods it finished
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    _write(results, out)
    plot_curves(results, out)
    return results


def _write(results: dict, out: Path) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "table.md").write_text(table(results))


COMPARE_FILES = ("results.json", "table.md", "curves_steps.png", "curves_time.png")
"""The files a comparison writes beside its ``METHOD-seedN.eqx`` checkpoints."""


def _replace_earlier_run(out: Path, log: Callable[[str], None]) -> None:
    """Remove an earlier comparison's files from ``out``, saying so: none of its
    checkpoints is left beside this run's results to be read as one of them."""
    earlier = [out / name for name in COMPARE_FILES if (out / name).is_file()]
    earlier += sorted(
        path
        for path in out.glob("*-seed*.eqx")
        if path.stem.rpartition("-seed")[2].isdigit()
    )
    if earlier:
        log(f"replacing the earlier comparison in {out} ({len(earlier)} files)")
        for path in earlier:
            path.unlink()


def _measure(recipe: Recipe, run: MethodRun, eval_seed: int, episodes: int):
    """The final evaluation of a run's controller, its metrics, and its compute: seconds
    of the evaluation (compilation excluded) and of one control step."""
    with Stopwatch() as watch:
        result = evaluate(run.env, run.controller, episodes=episodes, seed=eval_seed)
    metrics = {
        metric: episode_metric(run.env, run.controller, fn, episodes, eval_seed)
        for metric, fn in sorted(recipe.metrics.items())
    }
    compute = {
        "seconds_per_step": seconds_per_step(run.env, run.controller),
        "eval_seconds": round(watch.seconds, 3),
    }
    return result, metrics, compute


def _save(
    name: str,
    recipe: Recipe,
    method: AbstractMethod,
    run: MethodRun,
    out: Path,
    eval_seed: int,
    episodes: int,
    result: Evaluation,
    metrics: dict,
    compute: dict,
) -> dict:
    """Save the run's controller as a checkpoint and return its ``results.json`` row."""
    checkpoint = out / f"{method.name}-seed{run.seed}.eqx"
    metadata = env_record(name) | {
        "env_type": type(run.env).__name__,
        "method": method.name,
        "seed": run.seed,
        "controller": run.spec,
        "eval_seed": eval_seed,
        "episodes": episodes,
        "mean_return": result.mean,
    }
    save_checkpoint(checkpoint, (run.env, run.controller), metadata)
    row = {
        "seed": run.seed,
        "mean_return": result.mean,
        "median_return": float(np.median(np.asarray(result.returns))),
        "std_return": result.std,
        "checkpoint": str(checkpoint),
        "env_steps": run.env_steps,
        "train_seconds": round(run.train_seconds, 3),
        "compile_seconds": round(run.compile_seconds, 3),
        "seeds_in_program": run.seeds_in_program,
        "env_steps_to": {},
        "seconds_to": {},
    } | compute
    for threshold in recipe.thresholds:
        reached = [i for i, r in enumerate(run.curve_returns) if r >= threshold]
        key = threshold_key(threshold)
        row["env_steps_to"][key] = run.curve_steps[reached[0]] if reached else None
        row["seconds_to"][key] = round(run.curve_seconds[reached[0]], 3) if reached else None
    if metrics:
        row["metrics"] = metrics
    row["curve"] = {
        "env_steps": run.curve_steps,
        "seconds": [round(s, 3) for s in run.curve_seconds],
        "returns": run.curve_returns,
    }
    return row


def episode_metric(
    env: AbstractEnv,
    controller: Controller | AbstractStatefulController,
    metric: Callable,
    episodes: int,
    seed: int,
) -> float:
    """The mean over the evaluation episodes of ``metric(env, trajectory)`` (a boolean
    criterion gives the fraction of episodes meeting it)."""
    states = initial_states(env, episodes, seed)

    @eqx.filter_jit
    def values(env, controller, states):
        return jax.vmap(lambda y: metric(env, rollout(env, controller, y)))(states)

    return float(jnp.mean(jnp.asarray(values(env, controller, states), jnp.float32)))


def _quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    low, median, high = np.percentile(np.asarray(values, np.float64), [25, 50, 75])
    return float(low), float(median), float(high)


def table(results: dict) -> str:
    """The Markdown table of ``results``: per method, the mean return over episodes (what
    rl-baselines3-zoo publishes) and the median over episodes, each as the median over seeds
    with the interquartile range; the worst seed; with an ``optimal`` row, every method's
    gap to it; budgets, seconds and the thresholds reached."""
    thresholds = [threshold_key(t) for t in results["thresholds"]]
    optimum = results["methods"].get("optimal")
    best = None if not optimum else statistics.median(r["mean_return"] for r in optimum)
    header = [
        "method",
        "settings",
        "final return: mean over episodes, median over seeds [IQR]",
        "median over episodes, median over seeds [IQR]",
        "worst seed (mean)",
    ]
    header += ["gap to the optimum (mean)"] if best is not None else []
    header += [
        "env steps",
        "train s",
        "compile s",
    ]
    header += [f"reached {t}: seeds, env steps, s (median)" for t in thresholds]
    header += [f"{m} (fraction of episodes), median [IQR]" for m in results["metrics"]]
    header.append("compute per control step, us")
    lines = [
        f"`diffsim compare {results['env']}`{' --quick' if results['quick'] else ''}: "
        f"{results['seeds']} seeds per method, each final deterministic policy evaluated on "
        f"{results['episodes']} episodes from seed {results['eval_seed']}. Train seconds "
        "exclude compilation and the evaluations along training; RL seeds train together in "
        "one vmapped program (its time is each seed's). Thresholds are read on the learning "
        f"curve ({results['curve_episodes']} episodes from seed {results['curve_seed']}). "
        "Compute per control step: one state, compiled, the median of 20 calls (MPC optimises "
        f"a whole plan at every step). {results['machine']}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for name, rows in results["methods"].items():
        low, median, high = _quartiles([r["mean_return"] for r in rows])
        by_episode = _quartiles([r.get("median_return", float("nan")) for r in rows])
        together = rows[0]["seeds_in_program"]
        cells = [
            name,
            results["settings"].get(name, ""),
            f"{median:.1f} [{low:.1f}, {high:.1f}]",
            f"{by_episode[1]:.1f} [{by_episode[0]:.1f}, {by_episode[2]:.1f}]",
            f"{min(r['mean_return'] for r in rows):.1f}",
        ]
        cells += [f"{best - median:.1f}"] if best is not None else []
        cells += [
            f"{statistics.median(r['env_steps'] for r in rows):,.0f}",
            f"{statistics.median(r['train_seconds'] for r in rows):.1f}"
            + (f" ({together} seeds)" if together > 1 else ""),
            f"{statistics.median(r['compile_seconds'] for r in rows):.1f}",
        ]
        trained = any(r["curve"]["returns"] for r in rows)
        for key in thresholds:
            if not trained:
                cells.append("n/a (not trained)")
                continue
            reached = [r for r in rows if r["env_steps_to"][key] is not None]
            cell = f"{len(reached)}/{len(rows)}"
            if reached:
                steps = statistics.median(r["env_steps_to"][key] for r in reached)
                seconds = statistics.median(r["seconds_to"][key] for r in reached)
                cell += f", {steps:,.0f}, {seconds:.1f}"
            cells.append(cell)
        for metric in results["metrics"]:
            low, median, high = _quartiles([r["metrics"][metric] for r in rows])
            cells.append(f"{median:.3f} [{low:.3f}, {high:.3f}]")
        cells.append(f"{1e6 * statistics.median(r['seconds_per_step'] for r in rows):,.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_curves(results: dict, out: Path) -> list[Path]:
    """``curves_steps.png`` and ``curves_time.png``: per method, the median and
    interquartile range over seeds of the learning-curve return, against training env
    steps and against training seconds (compilation excluded), both on log axes."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    written = []
    for axis, label, filename in (
        ("env_steps", "training env steps", "curves_steps.png"),
        ("seconds", "training wall-clock, s (compilation excluded)", "curves_time.png"),
    ):
        figure, ax = plt.subplots(figsize=(6.4, 4.0))
        for name, rows in results["methods"].items():
            curves = [r["curve"] for r in rows if r["curve"]["returns"]]
            if not curves:
                continue
            length = min(len(c["returns"]) for c in curves)
            x = np.median([c[axis][:length] for c in curves], axis=0)
            returns = np.asarray([c["returns"][:length] for c in curves], np.float64)
            low, median, high = np.percentile(returns, [25, 50, 75], axis=0)
            shown = x > 0
            compile_s = statistics.median(r["compile_seconds"] for r in rows)
            (line,) = ax.plot(
                x[shown], median[shown], marker=".", label=f"{name} (compile {compile_s:.0f} s)"
            )
            ax.fill_between(x[shown], low[shown], high[shown], alpha=0.25, color=line.get_color())
        for name, rows in results["methods"].items():
            if not any(r["curve"]["returns"] for r in rows):  # not trained: its final return
                final = statistics.median(r["mean_return"] for r in rows)
                ax.axhline(final, linestyle=":", label=f"{name} (not trained)", color="black")
        for threshold in results["thresholds"]:
            ax.axhline(threshold, color="grey", linestyle="--", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel(f"mean return ({results['curve_episodes']} episodes)")
        ax.set_title(f"{results['env']}: median and IQR over {results['seeds']} seeds", fontsize=10)
        ax.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(out / filename, dpi=90)
        plt.close(figure)
        written.append(out / filename)
    return written
