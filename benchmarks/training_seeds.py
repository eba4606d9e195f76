"""Train an env's recipe (what ``diffsim train ENV`` runs) over several seeds.

Counts follow ``shared/specs/evaluation.md``: every simulated training step counts, in every
parallel episode; wall-clock includes compilation (also reported alone); each seed is
evaluated on 1000 fixed episodes from seed 0. Prints one row per seed, the median and the
worst seed next to the published anchors as ratios, and one JSON line.

    python benchmarks/training_seeds.py pendulum [--seeds 8] [--episodes 1000]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import diffsim
from diffsim.envs import RECIPES

# Published reference points: (label, return, training env steps).
ANCHORS = {
    "pendulum": [
        ("SAC, rl-baselines3-zoo", -157.0, 20_000),
        ("TD3, rl-baselines3-zoo", -151.9, 20_000),
        ("TQC, rl-baselines3-zoo", -151.3, 20_000),
    ],
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env", choices=sorted(RECIPES))
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--episodes", type=int, default=1000)
    args = parser.parse_args()
    recipe = RECIPES[args.env]

    rows = []
    print(f"{'seed':>4}{'return':>10}{'env steps':>12}{'episodes':>10}{'wall s':>8}{'compile s':>10}")
    for seed in range(args.seeds):
        started = time.perf_counter()
        controller, env, history = recipe.run(seed, progress=False)
        wall = time.perf_counter() - started
        result = diffsim.evaluate(env, controller, episodes=args.episodes, seed=recipe.eval_seed)
        row = {
            "seed": seed,
            "return": result.mean,
            "env_steps": history.total_env_steps,
            "episodes": history.total_env_steps / env.episode_steps,
            "wall_seconds": wall,
            "compile_seconds": history.compile_seconds,
        }
        rows.append(row)
        print(
            f"{seed:>4}{row['return']:>10.1f}{row['env_steps']:>12,}{row['episodes']:>10.0f}"
            f"{wall:>8.1f}{history.compile_seconds:>10.1f}"
        )

    returns = [r["return"] for r in rows]
    walls = [r["wall_seconds"] for r in rows]
    steps = rows[0]["env_steps"]
    record = {
        "benchmark": "training_seeds",
        "env": args.env,
        "seeds": args.seeds,
        "episodes": args.episodes,
        "machine": f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores",
        "median_return": statistics.median(returns),
        "worst_return": min(returns),
        "median_wall_seconds": statistics.median(walls),
        "worst_wall_seconds": max(walls),
        "env_steps": steps,
    }
    print(
        f"median {record['median_return']:.1f}, worst {record['worst_return']:.1f}; wall-clock "
        f"median {record['median_wall_seconds']:.1f} s, worst {record['worst_wall_seconds']:.1f} s"
    )
    for label, anchor_return, anchor_steps in ANCHORS.get(args.env, []):
        key = label.split(",")[0].lower()
        record[f"median_return_vs_{key}_ratio"] = round(record["median_return"] / anchor_return, 3)
        record[f"env_steps_vs_{key}_ratio"] = round(steps / anchor_steps, 1)
        print(
            f"  vs {label} ({anchor_return} after {anchor_steps:,} steps): cost ratio "
            f"{record['median_return'] / anchor_return:.3f}, env-step ratio {steps / anchor_steps:.0f}"
        )
    print(json.dumps(record))


if __name__ == "__main__":
    main()
