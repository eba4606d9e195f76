"""The pendulum's optimum, and how far the trained controllers are from it.

``diffsim.controllers.ValueIteration`` solves the swing-up (Pendulum-v1's dynamics, cost and
2 N m torque limit, 200 steps) by value iteration on grids of increasing size, each run as
a greedy one-step look-ahead through the env's own transition and evaluated by
``diffsim.evaluate``'s protocol (1000 fixed start states from seed 0, gymnasium's reset
distribution). The mean return converges as the grid is refined: the change between the
last two rows bounds how far the finest grid is from the optimum of the task. With
``--checkpoints``, trained controllers (``diffsim train``/``compare`` checkpoints of the
pendulum) are evaluated on the same episodes and their gap to the optimum printed.

Prints a markdown table and one final JSON line.

    python benchmarks/optimal.py [--episodes 1000] [--finest 801]
    python benchmarks/optimal.py --checkpoints runs/compare/pendulum/dp-seed*.eqx
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import jax
import numpy as np

import diffsim
from diffsim.controllers import ValueIteration
from diffsim.envs.pendulum import Pendulum

BOUNDS = {"theta_dot": (-8.0, 8.0)}
"""The speed saturates at Pendulum-v1's 8 rad/s; the angle is periodic."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--finest", type=int, default=801, help="nodes per state, finest grid")
    parser.add_argument("--checkpoints", nargs="*", default=[])
    args = parser.parse_args()
    env = Pendulum()
    grids = [(n, 41) for n in (101, 201, 401) if n < args.finest] + [(args.finest, 81)]
    rows, previous = [], None
    print("| nodes | controls | solve s | mean return | median return | change |")
    print("|---|---|---|---|---|---|")
    for nodes, actions in grids:
        started = time.perf_counter()
        optimum = ValueIteration.solve(env, BOUNDS, grid=(nodes, nodes), actions=actions)
        jax.block_until_ready(optimum.value)
        seconds = time.perf_counter() - started
        result = diffsim.evaluate(env, optimum, episodes=args.episodes, seed=0)
        median = float(np.median(np.asarray(result.returns)))
        change = None if previous is None else result.mean - previous
        previous = result.mean
        rows.append(
            dict(nodes=nodes, actions=actions, solve_seconds=round(seconds, 1),
                 mean=round(result.mean, 2), median=round(median, 2),
                 change=None if change is None else round(change, 2))
        )  # fmt: skip
        print(
            f"| {nodes} x {nodes} | {actions} | {seconds:.1f} | {result.mean:.2f} | "
            f"{median:.2f} | {'' if change is None else f'{change:+.2f}'} |",
            flush=True,
        )
    gaps = {}
    for path in args.checkpoints:
        trained_env, controller = diffsim.load_trained("pendulum", path)
        mean = diffsim.evaluate(trained_env, controller, episodes=args.episodes, seed=0).mean
        gaps[path] = {"mean": round(mean, 2), "gap": round(previous - mean, 2)}
        print(f"{path}: {mean:.2f}, {previous - mean:.2f} below the optimum")
    machine = f"{platform.machine()}, {jax.devices()[0].platform}, jax {jax.__version__}"
    print(json.dumps({"machine": machine, "episodes": args.episodes, "grids": rows,
                      "checkpoints": gaps}))  # fmt: skip


if __name__ == "__main__":
    main()
