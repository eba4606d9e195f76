"""Train a recipe (what ``diffsim train NAME`` runs) over several seeds, against anchors.

Counting follows ``docs/concepts/evaluation.md``: every simulated control step in training
counts, in every parallel episode (evaluation does not); "episodes" = env steps / episode
length. Each seed trains from scratch in this process (the first seed pays the compilation;
later seeds hit the jit cache, so their compile seconds are those of a warm process) and is
evaluated on 1000 episodes from a fixed seed, deterministic policy (hard discrete actions).

Prints one row per seed, the median and the worst seed, the ratios to the published anchors
(env steps, and return where the anchor has one), and one final JSON line whose ``*_ratio``
keys are diffsim / anchor.

    python benchmarks/training_seeds.py pendulum [--seeds 8] [--quick] [--episodes 1000]
    python benchmarks/training_seeds.py cartpole
    python benchmarks/training_seeds.py pendulum-sample-efficient --seeds 5
    python benchmarks/training_seeds.py cartpole-swingup --seeds 5

For the swing-up each row also gives the fraction of the evaluation episodes that balance
(``cartpole.balanced_second_half``: pole within 12 degrees of upright and cart on the track
for the whole second half), and the summary its median over seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import equinox as eqx
import jax

import diffsim
from diffsim.envs import cartpole

ANCHORS = {
    "pendulum": {
        "sac_zoo": (20_000, -157.0),
        "td3_zoo": (20_000, -151.9),
        "tqc_zoo": (20_000, -151.3),
    },
    "cartpole": {
        "post_2019": (2_500, None),
        "ppo_zoo": (100_000, 500.0),
        "dqn_zoo": (50_000, 500.0),
    },
    "cartpole-continuous": {"post_2019": (2_500, None), "ppo_zoo": (100_000, 500.0)},
}
ANCHORS["pendulum-sample-efficient"] = ANCHORS["pendulum"]
"""Published reference points by recipe: ``name: (training env steps, return)``
(rl-baselines3-zoo; the 2019 post's ~5 CartPole episodes counted as 5 x 500 steps)."""

SOLVED = {
    "pendulum": -160.0,
    "pendulum-sample-efficient": -160.0,
    "cartpole": 475.0,
    "cartpole-continuous": 475.0,
}
"""The return each headline claim has to reach."""

SUCCESS = {"cartpole-swingup": ("balanced_fraction", cartpole.balanced_second_half, 0.9)}
"""Per-episode success criteria by recipe: ``name: (key, criterion(env, trajectories),
fraction of episodes that must succeed)``."""


@eqx.filter_jit
def _success_fraction(criterion, env, controller, starts):
    trajectories = jax.vmap(lambda y: diffsim.rollout(env, controller, y))(starts)
    return criterion(env, trajectories).mean()


def run_seed(recipe: diffsim.Recipe, seed: int, *, quick: bool, episodes: int) -> dict:
    started = time.perf_counter()
    env, controller, history = recipe.run(seed, quick=quick, progress=False)
    wall = time.perf_counter() - started
    evaluation = diffsim.evaluate(env, controller, episodes=episodes, seed=recipe.eval_seed)
    extra = {}
    if recipe.name in SUCCESS:
        key, criterion, _ = SUCCESS[recipe.name]
        starts = diffsim.initial_states(env, episodes, recipe.eval_seed)
        extra[key] = float(_success_fraction(criterion, env, controller, starts))
    return extra | {
        "seed": seed,
        "env_steps": history.total_env_steps,
        "episodes": history.total_env_steps / env.episode_steps,
        "wall_seconds": wall,
        "compile_seconds": history.compile_seconds,
        "eval_mean": evaluation.mean,
        "eval_min_length": float(evaluation.lengths.min()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", choices=sorted(diffsim.recipes()))
    parser.add_argument("--seeds", type=int, default=8, help="training seeds 0..N-1 (default 8)")
    parser.add_argument("--first-seed", type=int, default=0, help="first training seed")
    parser.add_argument("--quick", action="store_true", help="2 seeds, the recipe's quick run")
    parser.add_argument("--episodes", type=int, default=1000, help="evaluation episodes")
    args = parser.parse_args()
    quick = args.quick or os.environ.get("DIFFSIM_QUICK", "0") == "1"
    seeds = min(args.seeds, 2) if quick else args.seeds
    recipe = diffsim.recipes()[args.recipe]
    solved = SOLVED.get(recipe.name)

    print(
        f"{recipe.name}: {seeds} seeds, {'quick' if quick else 'full'} runs, "
        f"{args.episodes} evaluation episodes; {platform.machine()}, "
        f"{len(os.sched_getaffinity(0))} cores"
    )
    print(
        f"{'seed':>4} {'env steps':>10} {'episodes':>8} {'wall s':>7} {'compile s':>9} "
        f"{'eval mean':>9} {'min len':>7}"
    )
    rows = []
    for seed in range(args.first_seed, args.first_seed + seeds):
        row = run_seed(recipe, seed, quick=quick, episodes=args.episodes)
        rows.append(row)
        print(
            f"{seed:>4} {row['env_steps']:>10,} {row['episodes']:>8.1f} "
            f"{row['wall_seconds']:>7.2f} {row['compile_seconds']:>9.2f} "
            f"{row['eval_mean']:>9.1f} {row['eval_min_length']:>7.0f}"
            + "".join(f" {k} {row[k]:.3f}" for k in row if k.endswith("_fraction"))
        )

    def median(key):
        return statistics.median(r[key] for r in rows)

    worst = min(rows, key=lambda r: r["eval_mean"])
    summary = {
        "benchmark": "training_seeds",
        "recipe": recipe.name,
        "quick": quick,
        "seeds": seeds,
        "evaluation_episodes": args.episodes,
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
        "median_env_steps": median("env_steps"),
        "median_episodes": median("episodes"),
        "median_wall_seconds": median("wall_seconds"),
        "max_wall_seconds": max(r["wall_seconds"] for r in rows),
        "first_seed_compile_seconds": rows[0]["compile_seconds"],
        "median_eval_mean": median("eval_mean"),
        "worst_eval_mean": worst["eval_mean"],
        "worst_seed": worst["seed"],
    }
    if solved is not None:
        summary["solved_threshold"] = solved
        summary["seeds_solved"] = sum(r["eval_mean"] >= solved for r in rows)
    if recipe.name in SUCCESS:
        key, _, needed = SUCCESS[recipe.name]
        summary[f"median_{key}"] = median(key)
        summary[f"min_{key}"] = min(r[key] for r in rows)
        summary[f"seeds_{key}_at_least_{needed:g}"] = sum(r[key] >= needed for r in rows)
        print(f"{key}: median {median(key):.3f}, worst {summary[f'min_{key}']:.3f}")
    print(
        f"median: {summary['median_env_steps']:,.0f} env steps "
        f"({summary['median_episodes']:.1f} episodes), {summary['median_wall_seconds']:.2f} s "
        f"wall (max {summary['max_wall_seconds']:.2f} s; first seed compiled "
        f"{summary['first_seed_compile_seconds']:.2f} s), evaluation "
        f"{summary['median_eval_mean']:.1f}"
    )
    print(
        f"worst:  seed {summary['worst_seed']}, evaluation {summary['worst_eval_mean']:.1f}"
        + (f"; reached {solved:g}: {summary['seeds_solved']}/{seeds} seeds" if solved else "")
    )
    for name, (anchor_steps, anchor_return) in ANCHORS.get(recipe.name, {}).items():
        steps_ratio = summary["median_env_steps"] / anchor_steps
        summary[f"env_steps_vs_{name}_ratio"] = steps_ratio
        line = f"vs {name} ({anchor_steps:,} steps"
        if anchor_return is not None:
            summary[f"return_vs_{name}_ratio"] = summary["median_eval_mean"] / anchor_return
            line += f", return {anchor_return:g}): return ratio "
            line += f"{summary[f'return_vs_{name}_ratio']:.3f},"
        else:
            line += "):"
        print(f"{line} env-step ratio {steps_ratio:.3g}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
