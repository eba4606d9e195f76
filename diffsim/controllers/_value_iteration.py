"""The optimum of a small control problem, computed rather than trained: value iteration on
a grid of states, then a greedy one-step look-ahead through the env's own transition."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Real

from diffsim import AbstractEnv, AbstractStatefulController, Box, DiffsimError

from ._checks import Integer, is_integer


class ValueIteration(AbstractStatefulController):
    """The optimal controller of an env with a 2-dimensional state and one bounded control,
    computed by dynamic programming (Bellman 1957) on a grid of states.

    :meth:`solve` builds it: ``value`` is the optimal cost of the env's whole episode
    (``episode_steps`` control steps, the terminal cost included) from every node of a
    ``grid[0] x grid[1]`` grid, by ``episode_steps`` sweeps of
    ``V(y) = min_u step_cost(y, u, y') + V(y')``, ``y' = transition(y, u)`` over
    ``actions`` evenly spaced controls, ``V(y')`` interpolated bilinearly (angles
    periodically, other states clipped to their bounds). In closed loop,
    :meth:`step` takes the same minimum at the exact state, through the env's own
    transition, with ``V`` interpolated: a greedy one-step look-ahead. The grid's error
    shrinks as it is refined (``benchmarks/optimal.py`` measures the convergence), so on a
    fine grid its return is the physical limit of the task, the row that every trained
    controller's gap is measured from.

    It is a :class:`diffsim.AbstractStatefulController` with ``full_state = True`` (it
    acts on the state, as MPC does) that carries nothing between steps. The dynamics and
    costs are taken at ``t = 0``: time-invariant envs only.

    Example:
        ```python
        import math
        import diffsim
        from diffsim.controllers import ValueIteration

        env = diffsim.envs.Pendulum()
        optimum = ValueIteration.solve(env, {"theta_dot": (-8.0, 8.0)}, grid=(41, 41),
                                       actions=11)
        diffsim.evaluate(env, optimum, episodes=20).mean   # about -120 on this coarse grid
        ```
    """

    full_state: ClassVar[bool] = True

    env: AbstractEnv
    value: Float[Array, "a b"]
    low: Float[Array, "2"]
    high: Float[Array, "2"]
    actions: Float[Array, " k"]
    periodic: tuple[bool, bool] = eqx.field(static=True)

    @classmethod
    def solve(
        cls,
        env: AbstractEnv,
        bounds: Mapping[str, tuple[float | int, float | int]] | None = None,
        *,
        grid: Sequence[Integer] | np.ndarray = (401, 401),
        actions: Integer = 41,
    ) -> ValueIteration:
        """Value iteration over the env's episode on a grid.

        Args:
            env: an env with a state of shape ``(2,)`` and a :class:`diffsim.Box` action
                space of one control with finite bounds.
            bounds: ``{state name: (low, high)}`` (names from ``env.variables.states``),
                the range of each state the grid covers; an angle
                (``Quantity(angle=True)``) covers ``[-pi, pi)`` periodically unless given.
            grid: nodes along each state (each at least 3).
            actions: evenly spaced controls from the lower to the upper bound (at least
                2).

        Returns:
            The controller, its ``value`` of shape ``grid``.

        Raises:
            DiffsimError: for an env of another shape, unbounded controls, a missing or
                empty range, or a value that is not finite.
        """
        empty = cls.unsolved(env, bounds, grid=grid, actions=actions)
        axes = [
            jnp.linspace(a, b, n, endpoint=not p)
            for a, b, n, p in zip(
                empty.low, empty.high, empty.value.shape, empty.periodic, strict=True
            )
        ]
        value = _iterate(empty, axes[0], axes[1])
        if not bool(jnp.all(jnp.isfinite(value))):
            raise DiffsimError(
                f"value iteration on {type(env).__name__} gave non-finite costs: a transition "
                "or cost is not finite somewhere on the grid; narrow the bounds"
            )
        return eqx.tree_at(lambda c: c.value, empty, value)

    @classmethod
    def unsolved(
        cls,
        env: AbstractEnv,
        bounds: Mapping[str, tuple[float | int, float | int]] | None = None,
        *,
        grid: Sequence[Integer] | np.ndarray = (401, 401),
        actions: Integer = 41,
    ) -> ValueIteration:
        """The controller of :meth:`solve`'s arguments with a zero ``value``: the
        structure a checkpoint of a solved one loads into. Raises as :meth:`solve`."""
        low, high, periodic, grid, count = _grid(env, bounds, grid, actions)
        space = env.action_space
        controls = jnp.linspace(space.low[0], space.high[0], count)
        return cls(env, jnp.zeros(grid), low, high, controls, periodic)

    def init(self) -> Float[Array, ""]:
        """Nothing is carried between steps."""
        return jnp.zeros(())

    def step(
        self, state: Float[Array, ""], t: Real[ArrayLike, ""], x: Float[Array, " 2"]
    ) -> tuple[Float[Array, " 1"], Float[Array, ""]]:
        """The control minimising ``step_cost + V(next state)`` at the state ``x``."""
        scores = jax.vmap(lambda u: _look_ahead(self, self.value, t, x, u))(self.actions)
        return self.actions[jnp.argmin(scores)][None], state

    def cost_to_go(self, y: Float[Array, " 2"]) -> Float[Array, ""]:
        """The interpolated optimal cost of an episode from the state ``y``."""
        return _interpolate(self, self.value, y)


def _grid(env, bounds, grid, actions):
    if not isinstance(env, AbstractEnv):
        raise DiffsimError(f"ValueIteration needs a diffsim.AbstractEnv, got {env!r:.60}")
    space = env.action_space
    if (
        env.state_size != 2
        or not isinstance(space, Box)
        or space.control_size != 1
        or not bool(jnp.all(space.bounded))
    ):
        raise DiffsimError(
            f"ValueIteration needs a state of 2 components and one bounded continuous control; "
            f"{type(env).__name__} has {env.state_size} states and a "
            f"{type(space).__name__} of {space.control_size} controls"
            + ("" if not isinstance(space, Box) else f" in [{space.low}, {space.high}]")
        )
    try:
        sizes = tuple(grid)
    except TypeError:  # not iterable: a single number
        sizes = ()
    if len(sizes) != 2 or not all(is_integer(n) and n >= 3 for n in sizes):
        raise DiffsimError(f"grid must be two integers of at least 3, got {grid!r}")
    if not is_integer(actions) or actions < 2:
        raise DiffsimError(f"actions must be an integer of at least 2, got {actions!r}")
    quantities = env.variables.states
    bounds = dict(bounds or {})
    unknown = set(bounds) - {q.name for q in quantities}
    if unknown:
        raise DiffsimError(
            f"bounds name {sorted(unknown)}, not states of {type(env).__name__} "
            f"({[q.name for q in quantities]})"
        )
    low, high, periodic = [], [], []
    for quantity in quantities:
        if quantity.name in bounds:
            a, b = _range(quantity.name, bounds[quantity.name])
        elif quantity.angle:
            a, b = -math.pi, math.pi
        else:
            raise DiffsimError(
                f"ValueIteration needs the range of {quantity.name}: pass "
                f"bounds={{{quantity.name!r}: (low, high)}}"
            )
        if not (math.isfinite(a) and math.isfinite(b) and a < b):
            raise DiffsimError(
                f"bounds of {quantity.name} must be finite, low < high, got {(a, b)}"
            )
        low.append(a)
        high.append(b)
        periodic.append(quantity.angle and quantity.name not in bounds)
    return jnp.array(low), jnp.array(high), tuple(periodic), tuple(map(int, sizes)), int(actions)


def _range(name, given):
    """``(low, high)`` of one state's bounds, as two floats."""
    try:
        values = np.asarray(given)
    except ValueError:  # ragged
        values = None
    if values is None or values.shape != (2,) or values.dtype.kind not in "iuf":
        raise DiffsimError(f"bounds of {name} must be a pair (low, high) of numbers, got {given!r}")
    return float(values[0]), float(values[1])


def _coordinates(controller, y):
    """Per state: the lower node, the upper node and the fraction between them."""
    out = []
    for d, n in enumerate(controller.value.shape):
        low, high, periodic = controller.low[d], controller.high[d], controller.periodic[d]
        if periodic:
            x = jnp.mod((y[d] - low) / ((high - low) / n), n)
            lower = jnp.minimum(jnp.floor(x), n - 1)
            upper = jnp.mod(lower + 1, n)
        else:
            x = jnp.clip((y[d] - low) / ((high - low) / (n - 1)), 0, n - 1)
            lower = jnp.minimum(jnp.floor(x), n - 2)
            upper = lower + 1
        out.append((lower.astype(int), upper.astype(int), x - lower))
    return out


def _interpolate(controller, value, y):
    (a0, a1, fa), (b0, b1, fb) = _coordinates(controller, y)
    return (1 - fa) * ((1 - fb) * value[a0, b0] + fb * value[a0, b1]) + fa * (
        (1 - fb) * value[a1, b0] + fb * value[a1, b1]
    )


def _look_ahead(controller, value, t, y, u):
    """``step_cost + V(y')``, or the terminal cost of ``y'`` where the episode ends there."""
    env = controller.env
    y_next = env.transition(env, t, y, u[None])
    cost = env.step_cost(t, y, u[None], y_next)
    after = jnp.where(
        env.termination(y_next), env.terminal_cost(y_next), _interpolate(controller, value, y_next)
    )
    return cost + after


@eqx.filter_jit
def _iterate(controller, first, second):
    """``episode_steps`` sweeps of the Bellman update from the terminal cost; every node's
    transitions under every control are computed once, before the sweeps."""
    env = controller.env
    nodes = jnp.stack(jnp.meshgrid(first, second, indexing="ij"), axis=-1)
    t = jnp.zeros((), nodes.dtype)

    def successors(y, u):
        y_next = env.transition(env, t, y, u[None])
        cost = env.step_cost(t, y, u[None], y_next)
        (a0, a1, fa), (b0, b1, fb) = _coordinates(controller, y_next)
        return (a0, a1, b0, b1), (fa, fb, cost, env.termination(y_next), env.terminal_cost(y_next))

    def row(states):
        return jax.vmap(lambda y: jax.vmap(lambda u: successors(y, u))(controller.actions))(states)

    (a0, a1, b0, b1), (fa, fb, cost, done, end) = jax.lax.map(row, nodes)

    def sweep(_, value):
        after = (1 - fa) * ((1 - fb) * value[a0, b0] + fb * value[a0, b1]) + fa * (
            (1 - fb) * value[a1, b0] + fb * value[a1, b1]
        )
        return jnp.min(cost + jnp.where(done, end, after), axis=-1)

    terminal = jax.vmap(jax.vmap(env.terminal_cost))(nodes)
    return jax.lax.fori_loop(0, env.episode_steps, sweep, terminal)
