"""The controller table: a trained MLP (the env's recipe), LQR, a residual controller (LQR
plus a bounded trained correction) and MPC, on pendulum balance and cartpole balance.

Every controller is evaluated by ``diffsim.evaluate``'s protocol (the fixed start states of
``diffsim.initial_states(env, episodes, seed=0)``, returns with terminal costs; MPC too, a
controller with state that ``diffsim.rollout`` carries). Per-step compute time is
``diffsim.seconds_per_step``: the median wall-clock of one jitted control step for one
system (compilation excluded).

Prints a markdown table and one final JSON line.

    python benchmarks/controllers.py [--episodes 1000] [--mpc-episodes 100]
    python benchmarks/controllers.py --swingup

``--swingup`` instead runs MPC on the full pendulum swing-up (50 starts, horizons 20 and 40,
30 Adam updates a step) beside the trained recipe policy on the same starts.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import jax
import jax.numpy as jnp
import jax.random as jr
import optax

import diffsim
from diffsim.controllers import LQR, MPC, Residual
from diffsim.envs.cartpole import CartPole, GymEuler, shaped_balance_loss
from diffsim.envs.pendulum import Pendulum

PENDULUM_BALANCE = dict(start=(0.5, 0.5), episode_steps=100)
"""Pendulum balance: start ``theta ~ U[-0.5, 0.5]`` rad, ``theta_dot ~ U[-0.5, 0.5]`` rad/s,
100 steps (5 s), Pendulum-v1's cost and torque limit (2 N m; holding 0.5 rad needs 2.4)."""


def pendulum_controllers(env: Pendulum, seed: int = 0) -> dict:
    """The four controllers for the pendulum balance task, built/trained from ``seed``."""
    _, mlp, _ = diffsim.recipes()["pendulum"].run(seed, progress=False)
    lqr = LQR.from_env(
        env, jnp.zeros(2), jnp.zeros(1), jnp.diag(jnp.array([1.0, 0.1])), jnp.array([[0.001]])
    )
    residual = Residual.for_env(env, lqr, 1.0, key=jr.key(seed), observation_scale=(1.0, 1.0, 8.0))
    _, residual, _ = diffsim.train(
        env,
        residual,
        diffsim.adam_cosine(3e-3, 300),
        key=jr.key(seed + 1),
        iterations=300,
        batch_size=64,
        window=50,
        progress=False,
    )
    mpc = MPC(env, horizon=20, iterations=30, optimiser=optax.adam(0.1))
    return {"MLP (recipe)": mlp, "LQR": lqr, "residual (LQR + 1 N m)": residual, "MPC": mpc}


def cartpole_controllers(env: CartPole, seed: int = 0) -> dict:
    """The four controllers for continuous CartPole-v1 balance, built/trained from ``seed``."""
    _, mlp, _ = diffsim.recipes()["cartpole-continuous"].run(seed, progress=False)
    lqr = LQR.from_env(env, jnp.zeros(4), jnp.zeros(1), jnp.eye(4), 0.1 * jnp.eye(1))
    residual = Residual.for_env(
        env, lqr, 2.0, key=jr.key(seed), observation_scale=(2.4, 2.0, 0.21, 2.0)
    )
    _, residual, _ = diffsim.train(
        env,
        residual,
        diffsim.adam_cosine(3e-3, 100),
        key=jr.key(seed + 1),
        iterations=100,
        batch_size=16,
        window=50,
        carry_state=True,
        objective=shaped_balance_loss,
        progress=False,
    )
    mpc = MPC(
        env, horizon=25, iterations=10, optimiser=optax.adam(1.0), objective=shaped_balance_loss
    )
    return {"MLP (recipe)": mlp, "LQR": lqr, "residual (LQR + 2 N)": residual, "MPC": mpc}


def evaluate(env, controller, episodes: int) -> diffsim.Evaluation:
    """``diffsim.evaluate``'s protocol (seed 0), for a policy or an :class:`MPC` alike."""
    return diffsim.evaluate(env, controller, episodes=episodes, seed=0)


def measure(env, controller, episodes: int, mpc_episodes: int) -> dict:
    """Mean return over ``episodes`` fixed episodes (seed 0; ``mpc_episodes`` for MPC, and
    every controller also on those), and seconds per control step."""
    started = time.perf_counter()
    step = diffsim.seconds_per_step(env, controller)
    if isinstance(controller, MPC):
        episodes = mpc_episodes
    row = evaluate(env, controller, episodes).summary()
    row["mean_on_mpc_episodes"] = round(evaluate(env, controller, mpc_episodes).mean, 2)
    return row | {
        "seconds_per_step": step,
        "eval_seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--mpc-episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--swingup", action="store_true")
    args = parser.parse_args()
    tasks = {
        "pendulum balance": (Pendulum(**PENDULUM_BALANCE), pendulum_controllers),
        "cartpole balance (continuous)": (
            CartPole(transition=GymEuler(), action="continuous"),
            cartpole_controllers,
        ),
    }
    results = {}
    if args.swingup:
        tasks = {}
    print(
        f"| task | controller | mean return (episodes) | std | mean on the MPC's "
        f"{args.mpc_episodes} | compute per step |"
    )
    print("|---|---|---|---|---|---|")
    for task, (env, build) in tasks.items():
        for name, controller in build(env, args.seed).items():
            row = measure(env, controller, args.episodes, args.mpc_episodes)
            results[f"{task} / {name}"] = row
            print(
                f"| {task} | {name} | {row['mean']:.1f} ({row['episodes']}) | {row['std']:.1f} | "
                f"{row['mean_on_mpc_episodes']:.1f} | {1e6 * row['seconds_per_step']:.0f} us |",
                flush=True,
            )
    if args.swingup:
        env = Pendulum()
        _, mlp, _ = diffsim.recipes()["pendulum"].run(args.seed, progress=False)
        results["swing-up / MLP (recipe)"] = measure(env, mlp, 50, 50)
        for horizon in (20, 40):
            mpc = MPC(env, horizon=horizon, iterations=30, optimiser=optax.adam(0.1))
            results[f"swing-up / MPC H={horizon}"] = measure(env, mpc, 50, 50)
        for name in ("MLP (recipe)", "MPC H=20", "MPC H=40"):
            row = results[f"swing-up / {name}"]
            print(
                f"| pendulum swing-up | {name} | {row['mean']:.1f} (50) | {row['std']:.1f} | "
                f"{row['mean']:.1f} | {1e6 * row['seconds_per_step']:.0f} us |",
                flush=True,
            )
    machine = f"{platform.machine()} {platform.processor() or ''} jax {jax.__version__}".strip()
    print(json.dumps({"machine": machine, "seed": args.seed, "results": results}))


if __name__ == "__main__":
    main()
