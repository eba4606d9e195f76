"""Rollout throughput: diffsim against a hand-written ``jax.lax.scan``, in one run.

The pendulum (ODE form, the default integrator: 4 Tsit5 steps per 0.05 s control
interval) under a 64x64 MLP policy, 200 control steps. The reference is the same
dynamics, policy, cost and Runge-Kutta tableau written directly as a ``lax.scan``.
Measures env steps per second for the forward rollout and for the gradient of the
summed cost with respect to the policy, at batch 1 and 1024; prints a table and one
JSON line whose ``*_ratio`` keys are diffsim / hand-written (target >= 0.8).

    python benchmarks/rollout_throughput.py [--repeats 5] [--batches 1,1024]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

import diffsim
from diffsim.controllers import MLPPolicy
from diffsim.envs import Pendulum

STEPS = 200
SUBSTEPS = 4


def diffsim_total_cost(env, policy, y0):
    return diffsim.rollout(env, policy, y0, num_steps=STEPS).total_cost


def handwritten_total_cost(env, policy, y0):
    """The same closed loop with no diffsim and no diffrax machinery."""
    tableau = dfx.Tsit5.tableau
    a_lower = [jnp.asarray(a) for a in tableau.a_lower]
    b = jnp.asarray(tableau.b_sol)
    g, m, l, max_speed = env.g, env.m, env.l, env.max_speed
    h = env.control_dt / SUBSTEPS

    def field(y, torque):
        theta, theta_dot = y[0], y[1]
        acceleration = 3 * g / (2 * l) * jnp.sin(theta) + 3.0 / (m * l**2) * torque
        saturated = (theta_dot >= max_speed) & (acceleration > 0) | (theta_dot <= -max_speed) & (
            acceleration < 0
        )
        return jnp.stack([theta_dot, jnp.where(saturated, 0.0, acceleration)])

    def rk_step(y, torque):
        ks = [field(y, torque)]
        for i, a in enumerate(a_lower):
            ks.append(field(y + h * sum(a[j] * ks[j] for j in range(i + 1)), torque))
        return y + h * sum(b[j] * ks[j] for j in range(len(ks)))

    def body(y, _):
        observation = jnp.stack([jnp.cos(y[0]), jnp.sin(y[0]), y[1]])
        torque = jnp.clip(policy(0.0, observation)[0], -env.max_torque, env.max_torque)
        theta = (y[0] + jnp.pi) % (2 * jnp.pi) - jnp.pi
        cost = theta**2 + 0.1 * y[1] ** 2 + 0.001 * torque**2
        for _ in range(SUBSTEPS):
            y = rk_step(y, torque)
        return y, cost

    _, costs = jax.lax.scan(body, y0, None, length=STEPS)
    return jnp.sum(costs)


def _programs(total_cost):
    forward = eqx.filter_jit(
        lambda env, policy, ys: jnp.mean(jax.vmap(lambda y: total_cost(env, policy, y))(ys))
    )
    gradient = eqx.filter_jit(eqx.filter_grad(lambda policy, env, ys: forward(env, policy, ys)))
    return {
        "forward": lambda e, p, ys: forward(e, p, ys),
        "gradient": lambda e, p, ys: gradient(p, e, ys),
    }


def _seconds(program, args, repeats):
    jax.block_until_ready(program(*args))
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(program(*args))
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", default="1,1024")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]

    env = Pendulum()
    policy = MLPPolicy.for_env(env, width=64, depth=2, key=jr.key(0))
    y0 = diffsim.initial_states(env, max(batches), seed=0)
    ours, reference = _programs(diffsim_total_cost), _programs(handwritten_total_cost)
    check = ours["forward"](env, policy, y0[:8]), reference["forward"](env, policy, y0[:8])
    assert jnp.allclose(*check, rtol=1e-4), f"the two rollouts disagree: {check}"

    record = {
        "benchmark": "rollout_throughput",
        "env": "pendulum",
        "steps": STEPS,
        "machine": f"{platform.machine()} {jax.devices()[0].platform}",
        "jax": jax.__version__,
    }
    print(f"{'mode':<9}{'batch':>6}{'diffsim steps/s':>18}{'hand-written steps/s':>23}{'ratio':>8}")
    for mode in ("forward", "gradient"):
        for batch in batches:
            call = (env, policy, y0[:batch])
            ours_s = _seconds(ours[mode], call, args.repeats)
            reference_s = _seconds(reference[mode], call, args.repeats)
            ours_rate, reference_rate = batch * STEPS / ours_s, batch * STEPS / reference_s
            ratio = ours_rate / reference_rate
            print(f"{mode:<9}{batch:>6}{ours_rate:>18,.0f}{reference_rate:>23,.0f}{ratio:>8.2f}")
            record[f"{mode}_b{batch}_diffsim_steps_per_s"] = round(ours_rate)
            record[f"{mode}_b{batch}_handwritten_steps_per_s"] = round(reference_rate)
            record[f"{mode}_b{batch}_ratio"] = round(ratio, 3)
    print(json.dumps(record))


if __name__ == "__main__":
    main()
