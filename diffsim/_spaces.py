"""Action spaces: how a controller's output becomes the control the dynamics see."""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray, Real

from . import _validate as validate
from ._errors import DiffsimError


class AbstractActionSpace(eqx.Module):
    """Maps what a controller outputs to the control ``u`` fed to ``vector_field``.

    Example:
        ```python
        import jax.numpy as jnp
        import diffsim

        space = diffsim.envs.Pendulum().action_space   # Box(-2, 2): torque in N m
        space.to_control(jnp.array([3.0]))              # clipped to the bounds: [2.]
        space.controller_size, space.control_size       # (1, 1)
        ```
    """

    @property
    @abc.abstractmethod
    def controller_size(self) -> int:
        """Length of the vector a controller must output."""

    @property
    @abc.abstractmethod
    def control_size(self) -> int:
        """Length of the control vector ``u`` the dynamics see."""

    @abc.abstractmethod
    def to_control(
        self,
        output: Float[Array, " k"],
        estimator: AbstractEstimator | None = None,
        *,
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, " m"]:
        """The control applied for a controller output (``estimator`` only matters for
        discrete spaces: ``None`` means hard, non-differentiable choices)."""

    @abc.abstractmethod
    def from_action(self, action: ArrayLike) -> Float[Array, " m"]:
        """The control for an RL-style action (a vector for boxes, an index for discrete)."""


class Box(AbstractActionSpace):
    """Continuous controls in ``[low, high]``; outputs outside are clipped, as gym does.

    Infinite bounds are allowed (no clipping, e.g. the unclipped pendulum of the 2019 post).

    Example:
        ```python
        import jax.numpy as jnp
        import diffsim

        diffsim.Box(-2.0, 2.0)                 # one control in [-2, 2]
        diffsim.Box(jnp.array([0.0, -1.0]), jnp.array([40.0, 1.0]))   # two controls
        diffsim.Box(-jnp.inf, jnp.inf)         # unbounded: no clipping
        ```
    """

    low: Float[Array, " m"]
    high: Float[Array, " m"]

    def __init__(self, low, high):
        low = validate.numbers("Box's low", low, "numbers (the lowest controls)")
        high = validate.numbers("Box's high", high, "numbers (the highest controls)")
        self.low = jnp.atleast_1d(jnp.asarray(low, dtype=float))
        self.high = jnp.atleast_1d(jnp.asarray(high, dtype=float))
        for name, bound in (("low", low), ("high", high)):
            if isinstance(bound, np.ndarray) and np.any(np.isnan(bound)):
                raise DiffsimError(
                    f"Box's {name} must be numbers or infinities, not NaN, got {bound}"
                )
        if isinstance(low, np.ndarray) and isinstance(high, np.ndarray) and np.any(low > high):
            raise DiffsimError(f"Box's low must not exceed its high, got low {low} and high {high}")
        if self.low.shape != self.high.shape or self.low.ndim != 1:
            raise DiffsimError(
                f"Box bounds must be vectors of one shape, got {self.low.shape} and "
                f"{self.high.shape}"
            )

    @property
    def controller_size(self) -> int:
        return self.low.shape[0]

    @property
    def control_size(self) -> int:
        """The controller's output, clipped, is the control: the same size."""
        return self.controller_size

    @property
    def bounded(self) -> bool:
        """Whether every bound is finite (then policies squash their output into it)."""
        try:
            return bool(jnp.all(jnp.isfinite(self.low) & jnp.isfinite(self.high)))
        except jax.errors.ConcretizationTypeError:
            return True

    def to_control(self, output, estimator=None, *, key=None):
        return jnp.clip(output, self.low, self.high)

    def from_action(self, action: Real[ArrayLike, "*m"]) -> Float[Array, " m"]:
        if jnp.size(action) != self.low.size:
            raise DiffsimError(
                f"an action of this Box is {self.low.size} control value(s), got shape "
                f"{jnp.shape(action)}"
            )
        return self.to_control(jnp.reshape(jnp.asarray(action, self.low.dtype), self.low.shape))


class Discrete(AbstractActionSpace):
    """A finite set of controls ``values[i]``, chosen by a controller's ``n`` logits.

    Training through a discrete choice needs an :class:`AbstractEstimator` (straight-through,
    Gumbel-softmax); evaluation always takes the hard arg-max.

    Example:
        ```python
        import jax.numpy as jnp
        import diffsim

        space = diffsim.Discrete(jnp.array([[-10.0], [10.0]]))   # 2 choices of a 1-D control
        space.controller_size, space.control_size   # (2, 1): 2 logits in, 1 control out
        space.to_control(jnp.array([0.2, -0.1]))                  # hard arg-max: [-10.]
        ```
    """

    values: Float[Array, "n m"]

    def __init__(self, values):
        values = validate.numbers("Discrete's values", values, "numbers, one control per row")
        values = jnp.asarray(values, dtype=float)
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2 or values.shape[0] < 2:
            raise DiffsimError(
                f"Discrete needs at least two controls of shape (n, m), got {values.shape}"
            )
        self.values = values

    @property
    def num_actions(self) -> int:
        return self.values.shape[0]

    @property
    def controller_size(self) -> int:
        return self.values.shape[0]

    @property
    def control_size(self) -> int:
        return self.values.shape[1]

    def to_control(self, output, estimator=None, *, key=None):
        if estimator is None:
            weights = jax.nn.one_hot(jnp.argmax(output), self.num_actions, dtype=output.dtype)
        else:
            weights = estimator(output, key=key)
        return weights @ self.values

    def from_action(self, action: Int[ArrayLike, ""]) -> Float[Array, " m"]:
        """The control of action index ``action`` (an integer from 0 to ``num_actions -
        1``; under ``jit`` an index outside is clamped, as JAX indexes)."""
        dtype = jnp.result_type(action)
        if jnp.shape(action) != () or not jnp.issubdtype(dtype, jnp.integer):
            raise DiffsimError(
                f"a Discrete action is one integer index from 0 to {self.num_actions - 1}, "
                f"got shape {jnp.shape(action)} and dtype {dtype}"
            )
        return self.values[action]


class AbstractEstimator(eqx.Module):
    """Turns logits into (differentiable) choice weights over a discrete action set.

    ``__call__(logits, key=...)`` returns weights of shape ``(n,)``; their forward value is
    the one-hot of the chosen action for the straight-through estimators.

    Example:
        ```python
        import jax
        import jax.numpy as jnp
        import diffsim

        space = diffsim.Discrete(jnp.array([[-10.0], [10.0]]))   # push left or right, N
        push = lambda logits: space.to_control(logits, diffsim.StraightThrough())
        push(jnp.array([0.2, -0.1]))                              # hard choice: [-10.]
        jax.jacobian(push)(jnp.array([0.2, -0.1]))                # a gradient all the same
        ```
    """

    @abc.abstractmethod
    def __call__(
        self, logits: Float[Array, " n"], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, " n"]: ...

    needs_key: eqx.AbstractClassVar[bool]


class StraightThrough(AbstractEstimator):
    """Hard arg-max forward, identity backward: ``d weights / d logits = I``.

    With two actions of controls ``-F`` and ``+F`` this is exactly the 2019 post's
    ``sign`` estimator applied to the logit difference.

    Example:
        ```python
        import jax
        import jax.numpy as jnp
        import diffsim

        estimator = diffsim.StraightThrough()
        estimator(jnp.array([0.2, -0.1]))                   # one-hot of the arg-max: [1, 0]
        jax.jacobian(estimator)(jnp.array([0.2, -0.1]))     # the identity
        ```
    """

    needs_key: ClassVar[bool] = False

    def __call__(self, logits, *, key=None):
        hard = jax.nn.one_hot(jnp.argmax(logits), logits.shape[-1], dtype=logits.dtype)
        return logits + jax.lax.stop_gradient(hard - logits)


class GumbelSoftmax(AbstractEstimator):
    """Gumbel-softmax relaxation (Jang et al. 2017) at ``temperature``; with
    ``hard=True`` the forward pass takes the sampled one-hot and the backward pass the
    relaxed gradient (straight-through Gumbel).

    Example:
        ```python
        import jax.numpy as jnp
        import jax.random as jr
        import diffsim

        estimator = diffsim.GumbelSoftmax(temperature=0.5)
        estimator(jnp.array([0.2, -0.1]), key=jr.key(0))   # a sampled one-hot, relaxed gradient
        # in training: diffsim.Trainer(optimiser, batch_size=..., estimator=estimator)
        ```
    """

    temperature: float = 1.0
    hard: bool = eqx.field(static=True, default=True)
    needs_key: ClassVar[bool] = True

    def __check_init__(self):
        if not isinstance(self.temperature, jax.core.Tracer):
            validate.positive_float("temperature", self.temperature)

    def __call__(self, logits, *, key=None):
        if key is None:
            raise DiffsimError("GumbelSoftmax needs a key: pass key= to rollout or train")
        gumbel = -jnp.log(-jnp.log(jr.uniform(key, logits.shape, logits.dtype, 1e-10, 1.0)))
        soft = jax.nn.softmax((logits + gumbel) / self.temperature)
        if not self.hard:
            return soft
        hard = jax.nn.one_hot(jnp.argmax(soft), logits.shape[-1], dtype=logits.dtype)
        return soft + jax.lax.stop_gradient(hard - soft)


def describe_outputs(space: AbstractActionSpace) -> str:
    """What a controller must output for ``space``, in words, for messages."""
    if isinstance(space, Discrete):
        return f"one logit per action, {space.num_actions} actions"
    return f"one output per control dimension, {space.control_size}"
