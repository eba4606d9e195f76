"""Evaluation on fixed seeds: many deterministic episodes, summarised."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float

from ._env import AbstractEnv
from ._errors import DiffsimError, runtime_errors_as_diffsim_errors
from ._rollout import Controller, rollout


class Evaluation(eqx.Module):
    """Returns of ``episodes`` evaluation episodes and their summary: ``returns`` and
    ``lengths`` (control steps) have shape ``(episodes,)``; ``seed`` drew the start states."""

    returns: Float[Array, " episodes"]
    lengths: Float[Array, " episodes"]
    seed: int = eqx.field(static=True)

    @property
    def mean(self) -> float:
        return float(jnp.mean(self.returns))

    @property
    def std(self) -> float:
        return float(jnp.std(self.returns))

    @property
    def episodes(self) -> int:
        return int(self.returns.shape[0])

    def block_means(self, block: int = 100) -> np.ndarray:
        """Means of consecutive blocks of ``block`` episodes (the spread of 100-episode
        averages that leaderboards report)."""
        returns = np.asarray(self.returns)
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
    """The fixed start states of evaluation: ``episodes`` draws from ``jr.key(seed)``."""
    return jax.vmap(env.initial_state)(jr.split(jr.key(seed), episodes))


@eqx.filter_jit
def _episode_returns(env, controller, states):
    trajectories = jax.vmap(lambda y: rollout(env, controller, y))(states)
    return trajectories.episode_return, trajectories.length


def evaluate(
    env: AbstractEnv,
    controller: Controller,
    *,
    episodes: int = 1000,
    seed: int = 0,
) -> Evaluation:
    """Run ``episodes`` full episodes of the deterministic policy from the fixed start
    states :func:`initial_states` ``(env, episodes, seed)``.

    Discrete action spaces take hard arg-max choices. Returns include the terminal cost.
    Raises :class:`DiffsimError` if a return is NaN or infinite (the simulation diverged).

    Example: ``diffsim.evaluate(env, policy, episodes=1000, seed=0).summary()``.
    """
    if episodes < 1:
        raise DiffsimError(f"episodes must be at least 1, got {episodes}")
    with runtime_errors_as_diffsim_errors():
        returns, lengths = _episode_returns(env, controller, initial_states(env, episodes, seed))
    if not bool(jnp.all(jnp.isfinite(returns))):
        bad = int(jnp.sum(~jnp.isfinite(returns)))
        raise DiffsimError(f"{bad} of {episodes} evaluation episodes gave a non-finite return")
    return Evaluation(returns=returns, lengths=lengths.astype(returns.dtype), seed=seed)
