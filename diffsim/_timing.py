"""The compute time of one control step: what a controller costs at run time."""

from __future__ import annotations

import time

import equinox as eqx
import jax

from ._env import AbstractEnv
from ._evaluate import initial_states
from ._rollout import Controller, _act
from ._stateful import AbstractStatefulController


def seconds_per_step(
    env: AbstractEnv,
    controller: Controller | AbstractStatefulController,
    *,
    repeats: int = 20,
    seed: int = 0,
) -> float:
    """Median wall-clock seconds of one control step of ``controller`` on ``env``, as a
    deployed controller runs it: one state (the first evaluation start state from
    ``seed``), observation, controller output and its control, compiled once as one
    ``jax.jit`` call (compilation excluded: one warm-up call first; the time includes
    JAX's dispatch of the call, a few microseconds). For an
    :class:`AbstractStatefulController` it is one ``step`` from ``init()`` (MPC: a whole
    plan optimisation).

    Args:
        env: the environment.
        controller: a ``controller(t, observation)`` or a stateful controller.
        repeats: timed calls; the median is returned.
        seed: the seed of the start state.

    Returns:
        Seconds per control step on the default device.

    Example: ``diffsim.seconds_per_step(env, policy)`` (tens of microseconds for a small
    network on a CPU) against ``diffsim.seconds_per_step(env, mpc)`` (milliseconds).
    """
    y = initial_states(env, 1, seed)[0]
    stateful = isinstance(controller, AbstractStatefulController)
    memory = controller.init() if stateful else None
    arrays, static = eqx.partition((env, controller, memory, y), eqx.is_array)

    @jax.jit
    def one_step(arrays):
        env, controller, memory, y = eqx.combine(arrays, static)
        return _act(env, controller, memory, 0.0, y)

    jax.block_until_ready(one_step(arrays))
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(one_step(arrays))
        times.append(time.perf_counter() - started)
    return float(sorted(times)[len(times) // 2])
