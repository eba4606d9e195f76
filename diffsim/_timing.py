"""Clocks: wall-clock with JAX's compilation taken out, and the compute time of one
control step (what a controller costs at run time)."""

from __future__ import annotations

import time
from typing import Any

import equinox as eqx
import jax

from . import _validate as validate
from ._env import AbstractEnv
from ._evaluate import initial_states
from ._rollout import Controller, _act, check_model
from ._stateful import AbstractStatefulController

_COMPILE_EVENTS = frozenset(
    {
        "/jax/core/compile/jaxpr_trace_duration",
        "/jax/core/compile/jaxpr_to_mlir_module_duration",
        "/jax/core/compile/backend_compile_duration",
    }
)
_compiled = [0.0]


def _count_compile_time(event: str, duration: float, **_: Any) -> None:
    if event in _COMPILE_EVENTS:
        _compiled[0] += duration


jax.monitoring.register_event_duration_secs_listener(_count_compile_time)


class Stopwatch:
    """Times the work inside ``with`` blocks, keeping apart what JAX spent tracing and
    compiling: ``seconds`` (wall-clock, compilation excluded) and ``compile_seconds``
    accumulate over every block timed with the same stopwatch.

    Example:
        ```python
        import jax, jax.numpy as jnp
        import diffsim

        double = jax.jit(lambda x: 2.0 * x)
        watch = diffsim.Stopwatch()
        with watch:
            jax.block_until_ready(double(jnp.ones(3)))   # compiled, then run
        watch.seconds, watch.compile_seconds             # the run, and the compilation apart
        ```
    """

    def __init__(self):
        self.seconds = 0.0
        self.compile_seconds = 0.0

    def __enter__(self) -> Stopwatch:
        self._started, self._compiled = time.perf_counter(), _compiled[0]
        return self

    def __exit__(self, *exc_info) -> None:
        compiled = _compiled[0] - self._compiled
        self.compile_seconds += compiled
        self.seconds += max(0.0, time.perf_counter() - self._started - compiled)


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
    check_model("seconds_per_step", env, controller)
    validate.positive_int("repeats", repeats)
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
