"""Full-setting timings of ``diffsim compare``: DP against the rejax baselines, per env.

Runs what ``diffsim compare ENV --seeds N`` runs (the recipe for ``dp``; rejax PPO/SAC/DQN
with rl-baselines3-zoo's settings and budgets, seeds vmapped), prints the table, each
method's wall-clock for all its seeds (compilation included and apart), the whole
command's wall-clock against the issue's target (pendulum, 5 seeds: under 5 minutes on
2 CPU cores), and one JSON line per env.

    python benchmarks/compare.py pendulum cartpole [--seeds 5] [--episodes 1000] [--quick]

Outputs (checkpoints, results.json, table.md, plots) go to runs/compare/ENV.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax

import diffsim
from diffsim._compare import table

TARGET_SECONDS = {"pendulum": 300.0}
"""Wall-clock targets for 5 seeds on 2 CPU cores."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("envs", nargs="*", default=["pendulum", "cartpole"])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    machine = (
        f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores, load average "
        f"{os.getloadavg()[0]:.1f} at start, jax {jax.__version__}"
    )
    for env in args.envs:
        started = time.perf_counter()
        results = diffsim.compare(env, seeds=args.seeds, episodes=args.episodes, quick=args.quick)
        wall = time.perf_counter() - started
        print(table(results))
        record = {
            "benchmark": "compare",
            "env": env,
            "seeds": args.seeds,
            "episodes": args.episodes,
            "quick": args.quick,
            "machine": machine,
            "wall_seconds": round(wall, 1),
        }
        for name, rows in results["methods"].items():
            together = rows[0]["seeds_in_program"] > 1
            train = rows[0]["train_seconds"] if together else sum(r["train_seconds"] for r in rows)
            compiled = (
                rows[0]["compile_seconds"] if together else sum(r["compile_seconds"] for r in rows)
            )
            returns = sorted(r["mean_return"] for r in rows)
            record |= {
                f"{name}_train_seconds_all_seeds": round(train, 1),
                f"{name}_compile_seconds_all_seeds": round(compiled, 1),
                f"{name}_median_return": round(returns[len(returns) // 2], 2),
                f"{name}_env_steps": rows[0]["env_steps"],
            }
            print(
                f"{name}: {len(rows)} seeds, {train:.1f} s training + {compiled:.1f} s "
                f"compilation ({'one vmapped program' if together else 'one after the other'})"
            )
        target = TARGET_SECONDS.get(env)
        if target is not None and args.seeds == 5 and not args.quick:
            record["target_seconds"] = target
            print(f"whole comparison: {wall:.0f} s (target {target:.0f} s on 2 idle cores)")
        print(json.dumps(record))


if __name__ == "__main__":
    main()
