"""rejax agents as diffsim controllers (imported when a rejax agent is used).

A rejax algorithm trained through :func:`diffsim.rl.to_gymnax` ends as ``(algo, train_state)``;
:func:`diffsim.rl.policy_from_rejax` turns its *deterministic* policy into a controller
``(t, observation) -> output`` that :func:`diffsim.evaluate`, :func:`diffsim.rollout` and the
plotting tools accept, so RL baselines are evaluated by exactly the protocol used for
differentiable training.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from diffsim import DiffsimError


def _gaussian_mean(module, observations):
    """``GaussianPolicy`` (PPO, continuous): the mean, clipped to the action range as
    rejax's ``act`` clips its samples."""
    mean = module.action_mean(module.features(observations))
    return jnp.clip(mean, module.action_range[0], module.action_range[1])


def _squashed_gaussian_mode(module, observations):
    """``SquashedGaussianPolicy`` (SAC, continuous): the pre-squash mean through the tanh
    and the affine map to the action range."""
    mean = module.action_mean(module.features(observations))
    return module.action_loc + jnp.tanh(mean) * module.action_scale


def _categorical_logits(module, observations):
    """``DiscretePolicy`` (PPO / SAC, discrete): the logits; their arg-max is the mode."""
    return module.action_logits(module.features(observations))


def _call(module, observations):
    """Q-networks (DQN, PQN: Q-values, arg-max is the greedy action) and
    ``DeterministicPolicy`` (TD3: the action itself)."""
    return module(observations)


class RejaxPolicy(eqx.Module):
    """The deterministic policy of a trained rejax agent as a diffsim controller.

    ``policy(t, observation)`` returns, for an observation of shape ``(o,)``:

    - continuous actions: the control vector, shape ``(m,)`` (Gaussian policies: the mean,
      clipped to the action range; squashed Gaussian (SAC): ``loc + scale * tanh(mean)``;
      deterministic policies (TD3): their output);
    - discrete actions: one score per action, shape ``(n,)`` (policy logits, or Q-values
      for DQN/PQN), whose arg-max, taken by diffsim's :class:`~diffsim.Discrete` space in
      evaluation, is the agent's greedy action.

    Observation normalisation (``normalize_observations=True``) uses the running statistics
    frozen at the end of training, as rejax's own ``act`` does. ``t`` is ignored.

    Example: built by :func:`policy_from_rejax` from a trained agent, then used as any
    controller: ``diffsim.evaluate(env, policy_from_rejax(algo, train_state))``; the
    ``ppo`` and ``sac`` methods of ``diffsim compare`` return one.
    """

    params: Any
    obs_mean: Float[Array, " o"] | None
    obs_var: Float[Array, " o"] | None
    network: Any = eqx.field(static=True)
    head: Any = eqx.field(static=True)

    def __call__(self, t, observation: Float[Array, " o"]) -> Float[Array, " k"]:
        with jax.numpy_rank_promotion("allow"):  # flax/distrax broadcast implicitly
            x = jnp.asarray(observation, jnp.float32)
            if self.obs_mean is not None:
                x = (x - self.obs_mean) / jnp.sqrt(self.obs_var + 1e-8)
            out = self.network.apply(self.params, x[None], method=self.head)
            return jnp.reshape(out[0], (-1,))


def policy_from_rejax(algo, train_state) -> RejaxPolicy:
    """A diffsim controller that takes the deterministic action of a trained rejax agent.

    Args:
        algo: the rejax algorithm (``rejax.PPO``, ``SAC``, ``DQN``, ``PQN`` or ``TD3``),
            typically created with ``env=diffsim.rl.to_gymnax(env)``.
        train_state: what ``algo.train(key)`` returned first (or ``algo.init_state(key)``).

    Returns:
        A :class:`RejaxPolicy`: for continuous actions it outputs the control (the policy's
        mean, or mode), for discrete ones one score per action whose arg-max is the agent's
        greedy choice, so ``diffsim.evaluate(env, policy)`` takes the action rejax's ``act``
        takes without exploration noise.

    Raises:
        DiffsimError: for agents without a deterministic action this wrapper knows
            (IQN, Beta policies).
    """
    from rejax import networks

    if hasattr(train_state, "actor_ts"):  # PPO, SAC, TD3
        network, params = algo.actor, train_state.actor_ts.params
        heads = {
            networks.GaussianPolicy: _gaussian_mean,
            networks.SquashedGaussianPolicy: _squashed_gaussian_mode,
            networks.DiscretePolicy: _categorical_logits,
            networks.DeterministicPolicy: _call,
        }
        head = heads.get(type(network))
        if head is None:
            raise DiffsimError(f"no deterministic action known for {type(network).__name__}")
    elif hasattr(train_state, "q_ts") and not isinstance(
        algo.agent, networks.ImplicitQuantileNetwork
    ):  # DQN, PQN: greedy in the Q-values
        network, params, head = algo.agent, train_state.q_ts.params, _call
    else:
        raise DiffsimError(f"cannot make a deterministic policy from {type(algo).__name__}")
    obs_mean = obs_var = None
    if getattr(algo, "normalize_observations", False):
        obs_mean = train_state.obs_rms_state.mean
        obs_var = train_state.obs_rms_state.var
    return RejaxPolicy(
        params=params, obs_mean=obs_mean, obs_var=obs_var, network=network, head=head
    )
