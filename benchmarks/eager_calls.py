"""Eager calls from a notebook loop: ``diffsim.rollout`` and ``diffsim.step`` called
outside ``jit``, against the same function wrapped in ``jax.jit`` by hand.

A user who loops over start states in a notebook calls ``diffsim.rollout(env, policy,
y0)`` as it is. diffsim compiles that call once per env, controller structure and
options, then reuses the program; each call still validates its inputs (shapes, NaN,
non-physical parameters) and, after the run, checks the trajectory for divergence,
which waits for the result. The reference is the fastest way to call the same
simulation from Python: the user's own ``jax.jit`` of it, with the policy's arrays as its
arguments (``eqx.partition``), compiled once, which checks nothing; blocked on its result
each call.

The default ``Pendulum()`` (4 Tsit5 steps per 0.05 s interval, 200 steps an episode)
under the default ``MLPPolicy.for_env`` (2 x 64 tanh), float32. Every call gets a new
start state (drawn before timing). Printed per function: the first call (compilation
included), the median of ``--calls`` later calls for diffsim and for the reference, and
the ratio reference / diffsim (1.0: no overhead). Ends with one JSON line.

    python benchmarks/eager_calls.py [--calls 200]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import equinox as eqx
import jax
import jax.random as jr

import diffsim
from diffsim import MLPPolicy
from diffsim.envs import Pendulum


def _times(call, inputs) -> list[float]:
    seconds = []
    for x in inputs:
        started = time.perf_counter()
        jax.block_until_ready(call(x))
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="later calls timed per function")
    args = parser.parse_args()

    env = Pendulum()
    policy = MLPPolicy.for_env(env, key=jr.key(0))
    states = jax.vmap(env.initial_state)(jr.split(jr.key(1), 2 * args.calls + 2))
    states = list(states)
    controls = list(jr.uniform(jr.key(2), (2 * args.calls + 2, 1), minval=-2.0, maxval=2.0))

    def eager_rollout(y0):
        return diffsim.rollout(env, policy, y0).total_cost

    params, static = eqx.partition(policy, eqx.is_array)
    jitted = jax.jit(
        lambda params, y0: diffsim.rollout(env, eqx.combine(params, static), y0).total_cost
    )

    def eager_step(yu):
        return diffsim.step(env, 0.0, *yu)[0]

    jitted_step = jax.jit(lambda y, u: diffsim.step(env, 0.0, y, u)[0])
    pairs = list(zip(states, controls, strict=True))
    cases = {
        "rollout": (eager_rollout, lambda y0: jitted(params, y0), states),
        "step": (eager_step, lambda yu: jitted_step(*yu), pairs),
    }
    record = {"benchmark": "eager_calls", "machine": platform.machine(), "calls": args.calls}
    print(f"{'function':<8} {'first call':>11} {'diffsim later':>14} {'jax.jit later':>14} ratio")
    for name, (ours, reference, inputs) in cases.items():
        first = _times(ours, inputs[:1])[0]
        _times(reference, inputs[1:2])  # the reference's compilation
        later = inputs[2:]
        # interleaved halves, so that a change of the machine's load hits both
        mine = _times(ours, later[::2]) + _times(ours, later[1::2])
        theirs = _times(reference, later[1::2]) + _times(reference, later[::2])
        ours_s, theirs_s = statistics.median(mine), statistics.median(theirs)
        print(
            f"{name:<8} {first:>10.3f}s {ours_s * 1e3:>12.2f}ms {theirs_s * 1e3:>12.2f}ms "
            f"{theirs_s / ours_s:.2f}"
        )
        record[name] = {
            "first_s": first,
            "diffsim_median_s": ours_s,
            "jit_median_s": theirs_s,
            "ratio": theirs_s / ours_s,
        }
    print(json.dumps(record))


if __name__ == "__main__":
    main()
