"""rejax's PPO, SAC and DQN run as stable-baselines3 runs them where rl-baselines3-zoo's
tuned settings, which the recipes cite, depend on it (imported by the ``ppo``, ``sac`` and
``dqn`` methods only).

Time limits. rejax 0.1.3 counts an episode cut by its time limit as terminated: the TD
target of the last step gets no value beyond it, and an off-policy learner stores the next
episode's first observation as that step's successor. For a task whose observation does not
include the time (the pendulum, the cart-pole), the same state is then worth a whole
discounted future in one transition and nothing in another. stable-baselines3 bootstraps
there instead: its replay buffer keeps the observation reached and counts only true
terminations (``handle_timeout_termination``), and its PPO adds ``gamma * V(s_reached)`` to
the reward of a truncated step. The subclasses below do the same on
:class:`TimeLimitAwareEnv`, whose state records what each step reached before gymnax's
auto-reset.

PPO's value loss. rejax clips the value's change by the policy's ``clip_eps``;
stable-baselines3's default (``clip_range_vf=None``, which zoo keeps) does not clip it.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


@functools.cache
def algorithm(rejax, name: str):
    """rejax's ``name`` (``"PPO"``, ``"SAC"``, ``"DQN"``) run as stable-baselines3 runs it."""
    base = getattr(rejax, name)
    if name == "PPO":

        class AsStableBaselines3(base):
            def collect_trajectories(self, ts):
                one = self.replace(num_steps=1)

                def step(ts, _):
                    ts, transitions = base.collect_trajectories(one, ts)
                    transition = jax.tree.map(lambda x: x[0], transitions)
                    reached = ts.env_state  # a Reached, batched over envs
                    observation = reached.observation
                    if self.normalize_observations:
                        observation = self.normalize_obs(ts.obs_rms_state, observation)
                    value = self.critic.apply(ts.critic_ts.params, observation)
                    cut = transition.done & jnp.logical_not(reached.terminated)
                    reward = transition.reward + self.gamma * jnp.where(cut, value, 0.0)
                    return ts, transition.replace(reward=reward)

                return jax.lax.scan(step, ts, None, self.num_steps)

            def update_critic(self, ts, batch):
                def loss(params):
                    value = self.critic.apply(params, batch.trajectories.obs)
                    return self.vf_coef * 0.5 * jnp.mean(jnp.square(value - batch.targets))

                grads = jax.grad(loss)(ts.critic_ts.params)
                return ts.replace(critic_ts=ts.critic_ts.apply_gradients(grads=grads))

    else:

        class AsStableBaselines3(base):
            def collect_transitions(self, ts, *args, **kwargs):
                ts, batch = super().collect_transitions(ts, *args, **kwargs)
                reached = ts.env_state
                return ts, batch._replace(next_obs=reached.observation, done=reached.terminated)

    AsStableBaselines3.__name__ = AsStableBaselines3.__qualname__ = name
    return AsStableBaselines3
