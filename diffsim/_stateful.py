"""Controllers with memory between control steps: the plug-in point for planners (MPC's
warm start), observers and recurrent policies."""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import equinox as eqx
from jaxtyping import Array, ArrayLike, Float, PyTree, Real


class AbstractStatefulController(eqx.Module):
    """A controller that carries explicit state from one control step to the next, as an
    optax transformation carries its own: ``state = controller.init()``, then at every
    control step ``output, state = controller.step(state, t, x)``.

    :func:`diffsim.rollout` threads the state through its ``lax.scan`` (fresh from
    :meth:`init` at the start of every rollout), so :func:`diffsim.evaluate`,
    ``diffsim eval`` and ``diffsim compare`` take such a controller wherever they take a
    ``controller(t, observation)``. ``x`` is the env's observation, or its state when the
    class sets ``full_state = True`` (a planner given the exact state, as MPC usually is:
    privileged information a policy does not get). :class:`diffsim.Trainer` trains one on
    whole episodes (``window=None``; a window cut from an episode would restart the state).
    ``mode="feedback"`` rollouts need a stateless controller (the state advances once per
    control step, not per solver stage).

    Example:
        ```python
        import jax.numpy as jnp
        import diffsim

        class Integral(diffsim.AbstractStatefulController):   # PI control of the angle
            kp: float = 20.0
            ki: float = 5.0

            def init(self):
                return jnp.zeros(())                # the integral of the error (rad s)

            def step(self, state, t, x):
                error = -jnp.arctan2(x[1], x[0])    # the pendulum observes (cos, sin, speed)
                state = state + 0.05 * error
                return jnp.stack([self.kp * error + self.ki * state - 2.0 * x[2]]), state

        env = diffsim.envs.Pendulum(start=(0.3, 0.3))
        diffsim.evaluate(env, Integral(), episodes=100).mean
        ```
    """

    full_state: ClassVar[bool] = False
    """Whether :meth:`step` receives the env's state ``y`` rather than ``env.observe(y)``."""

    @abc.abstractmethod
    def init(self) -> PyTree[Any]:
        """The state before the first control step of an episode."""

    @abc.abstractmethod
    def step(
        self, state: PyTree[Any], t: Real[ArrayLike, ""], x: Float[Array, " o"]
    ) -> tuple[Float[Array, " k"], PyTree[Any]]:
        """The controller output at time ``t`` (s) for the observation (or state) ``x``,
        and the state for the next control step; the output, shape ``(k,)``, becomes a
        control through the env's action space as a stateless controller's does."""
