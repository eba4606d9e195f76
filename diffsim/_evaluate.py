"""Evaluation on fixed seeds: many deterministic episodes, summarised."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float

from . import _validate as validate
from ._env import AbstractEnv, batch_size
from ._errors import DiffsimError, runtime_errors_as_diffsim_errors
from ._rollout import Controller, as_floats, check_model, rollout
from ._sharding import Devices, as_mesh, gather, shard_batch
from ._stateful import AbstractStatefulController


class Evaluation(eqx.Module):
    """Returns of ``episodes`` evaluation episodes and their summary: ``returns`` and
    ``lengths`` (control steps) have shape ``(episodes,)``, or ``(envs, episodes)`` for a
    batch of envs; ``seed`` drew the start states.

    Example:
        ```python
        import jax.random as jr
        import diffsim
        from diffsim import MLPPolicy

        env = diffsim.envs.Pendulum()
        result = diffsim.evaluate(env, MLPPolicy.for_env(env, key=jr.key(0)), episodes=200, seed=0)
        result.returns.shape      # (200,)
        result.mean, result.std   # floats
        result.block_means()      # the two 100-episode means
        result.summary()          # a dict for printing
        ```
    """

    returns: Float[Array, "*envs episodes"]
    lengths: Float[Array, "*envs episodes"]
    seed: int = eqx.field(static=True)

    @property
    def mean(self) -> float:
        return float(jnp.mean(self.returns))

    @property
    def std(self) -> float:
        return float(jnp.std(self.returns))

    @property
    def episodes(self) -> int:
        """Episodes per env."""
        return int(self.returns.shape[-1])

    def block_means(self, block: int = 100) -> np.ndarray:
        """Means of consecutive blocks of ``block`` episodes (the spread of 100-episode
        averages that leaderboards report)."""
        returns = np.asarray(self.returns).reshape(-1)
        usable = (returns.size // block) * block
        return returns[:usable].reshape(-1, block).mean(axis=1)

    def summary(self, decimals: int = 2) -> dict:
        """Mean and std of the returns, the episodes, the seed, the mean episode length
        and the range of 100-episode means, rounded to ``decimals`` (float32 sums carry no
        more), for printing. The unrounded values are the properties and ``returns``."""
        blocks = self.block_means()
        out = {
            "mean": round(self.mean, decimals),
            "std": round(self.std, decimals),
            "episodes": self.episodes,
            "seed": self.seed,
            "mean_length": round(float(np.mean(np.asarray(self.lengths, np.float64))), decimals),
        }
        if blocks.size:
            out["block100_min"] = round(float(blocks.min()), decimals)
            out["block100_max"] = round(float(blocks.max()), decimals)
        return out


def initial_states(env: AbstractEnv, episodes: int, seed: int) -> Float[Array, "episodes n"]:
    """The fixed start states of evaluation: ``episodes`` draws from ``jr.key(seed)``.

    Args:
        env: the environment.
        episodes: how many start states.
        seed: the seed they are drawn from.

    Returns:
        The start states, shape ``(episodes, n)``.
    """
    check_model("initial_states", env, needs_controller=False)
    validate.positive_int("episodes", episodes)
    validate.seed("seed", seed)
    return start_states(env, jr.split(jr.key(seed), episodes))


def start_states(env: AbstractEnv, keys) -> Float[Array, "batch n"]:
    """``env.initial_state`` of each key, as floats: integer states are converted, as a
    state given to :func:`diffsim.rollout` is (evaluation, training and ``initial_states``
    draw theirs here)."""
    return as_floats(jax.vmap(env.initial_state)(keys))


def _episode_returns(env, controller, states):
    trajectories = jax.vmap(lambda y: rollout(env, controller, y))(states)
    return trajectories.episode_return, trajectories.length


@eqx.filter_jit
def _returns(env, controller, keys, batched):
    def one_env(env):
        return _episode_returns(env, controller, start_states(env, keys))

    return eqx.filter_vmap(one_env)(env) if batched else one_env(env)


def evaluate(
    env: AbstractEnv,
    controller: Controller | AbstractStatefulController,
    *,
    episodes: int = 1000,
    seed: int = 0,
    devices: Devices = None,
) -> Evaluation:
    """Run ``episodes`` full episodes of the deterministic policy from the fixed start
    states :func:`initial_states` ``(env, episodes, seed)``.

    ``env`` may be a batch of envs built with ``eqx.filter_vmap`` (domain-randomised
    evaluation): every env runs the same ``episodes`` start draws, and the returns have
    shape ``(envs, episodes)``. Discrete action spaces take hard arg-max choices. Returns
    include the terminal cost.

    Args:
        env: an env, or a batch of envs built with ``eqx.filter_vmap``.
        controller: a callable ``controller(t, observation)``, or an
            :class:`AbstractStatefulController` (MPC), its state fresh in every episode.
        episodes: episodes per env, at least 1.
        seed: the seed of the start states (:func:`initial_states`).
        devices: ``jax.devices()``, a list of devices or a ``jax.sharding.Mesh`` to split
            the episodes over; a count that does not divide evenly is padded with repeats
            of the first start state, whose returns are dropped. The returns are those of
            one device up to float rounding, which a chaotic closed loop can amplify (a
            program for another number of episodes per device rounds differently): compare
            evaluations on the same devices. ``None``: the default device.

    Returns:
        An :class:`Evaluation`, returns and lengths of shape ``(episodes,)`` (or
        ``(envs, episodes)``).

    Raises:
        DiffsimError: for ``episodes`` < 1, a controller of the wrong output size, a
            non-finite return (the simulation diverged).

    Example: ``diffsim.evaluate(env, policy, episodes=1000, seed=0).summary()``;
    ``diffsim.evaluate(eqx.filter_vmap(lambda g: Pendulum(g=g))(gs), policy).returns``.
    """
    check_model("evaluate", env, controller)
    validate.positive_int("episodes", episodes)
    validate.seed("seed", seed)
    mesh = as_mesh(devices)
    with runtime_errors_as_diffsim_errors():
        keys = jr.split(jr.key(seed), episodes)  # the draws of initial_states(env, episodes, seed)
        if mesh is not None:
            padding = -episodes % mesh.size
            keys = jnp.concatenate([keys, jnp.repeat(keys[:1], padding)])
            keys = shard_batch(keys, mesh)
        returns, lengths = _returns(env, controller, keys, batch_size(env) is not None)
        returns, lengths = gather((returns[..., :episodes], lengths[..., :episodes]))
    if not bool(jnp.all(jnp.isfinite(returns))):
        bad = int(jnp.sum(~jnp.isfinite(returns)))
        raise DiffsimError(f"{bad} of {returns.size} evaluation episodes gave a non-finite return")
    return Evaluation(returns=returns, lengths=lengths.astype(returns.dtype), seed=seed)
