"""The acrobot (Sutton 1996; Sutton and Barto 2018) with gymnasium Acrobot-v1 semantics, as
an ODE: a two-link pendulum actuated only at the elbow, swung up above a line.

Equations (the "book" dynamics of Sutton and Barto, as in gymnasium's ``acrobot.py``), with
``theta1`` the shoulder angle from hanging down and ``theta2`` the elbow angle relative to
the first link::

    d1 = m1 lc1^2 + m2 (l1^2 + lc2^2 + 2 l1 lc2 cos theta2) + I1 + I2
    d2 = m2 (lc2^2 + l1 lc2 cos theta2) + I2
    phi2 = m2 lc2 g cos(theta1 + theta2 - pi/2)
    phi1 = -m2 l1 lc2 theta2_dot^2 sin theta2 - 2 m2 l1 lc2 theta2_dot theta1_dot sin theta2
           + (m1 lc1 + m2 l1) g cos(theta1 - pi/2) + phi2
    theta2_ddot = (tau + d2/d1 phi1 - m2 l1 lc2 theta1_dot^2 sin theta2 - phi2)
                  / (m2 lc2^2 + I2 - d2^2/d1)
    theta1_ddot = -(d2 theta2_ddot + phi1) / d1

References: R. S. Sutton, "Generalization in reinforcement learning: successful examples
using sparse coarse coding", NIPS 8 (1996); R. S. Sutton and A. G. Barto, *Reinforcement
Learning: An Introduction* (MIT Press); gymnasium's ``classic_control/acrobot.py``
(``AcrobotEnv``, BSD 3-clause, from RLPy).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Float

from diffsim import (
    AbstractEnv,
    AbstractTransition,
    Box,
    DiffsimError,
    Discrete,
    GumbelSoftmax,
    MLPPolicy,
    Quantity,
    Recipe,
    Trajectory,
    Variables,
    adam_cosine,
    parameter,
)
from diffsim.controllers import Mirrored


class Acrobot(AbstractEnv):
    """Two links hanging from a fixed pivot, a motor at the elbow only: gymnasium Acrobot-v1.

    State ``y = (theta1, theta2, theta1_dot, theta2_dot)``: the first link's angle from
    hanging straight down (rad), the second link's angle relative to the first (rad), and
    their angular speeds (rad/s). Control ``u``, shape ``(1,)``: elbow torque (N m).
    Observation ``(cos theta1, sin theta1, cos theta2, sin theta2, theta1_dot, theta2_dot)``.
    Constants are gym's: links of 1 kg and 1 m with centres of mass at 0.5 m and moments of
    inertia 1 kg m^2, ``g`` 9.8 m/s^2, speeds clipped to ``4 pi`` and ``9 pi`` rad/s after
    every 0.2 s step, 500 steps an episode, start ``U[-0.1, 0.1]^4``. The episode ends after
    the step that lifts the tip above the line one first-link length over the pivot,
    ``-l1 cos theta1 - l2 cos(theta1 + theta2) > l1``.

    Args:
        action: ``"discrete"`` is Acrobot-v1: torques ``(-1, 0, 1)`` N m (indices 0, 1, 2,
            a :class:`diffsim.Discrete` space), running cost 1 per step that does not reach
            the line (gym's reward -1, 0 on the step that does; returns equal gym's).
            ``"continuous"`` is the swing-up with any torque in ``[-max_torque,
            max_torque]`` and a differentiable cost for training by backpropagation,
            :meth:`swingup_cost` of the state reached after each step (the energy missing
            to stand upright plus the tip's height deficit below the line), same
            termination. Its mean episode length is the number to compare with
            Acrobot-v1's return.
        transition: by default :class:`GymRK4`, gymnasium's own step (one classical
            Runge-Kutta step over 0.2 s, then angle wrapping and speed clipping), step for
            step identical to Acrobot-v1 in float64. ``diffsim.ODEStep(...)`` integrates the
            ODE without the wrapping and clipping.

    Example: ``diffsim.rollout(Acrobot(), policy, Acrobot().initial_state(jr.key(0)))``.
    """

    g: Float[Array, ""] = parameter(9.8, positive=True)
    link_length_1: Float[Array, ""] = parameter(1.0, positive=True)
    link_length_2: Float[Array, ""] = parameter(1.0, positive=True)
    link_mass_1: Float[Array, ""] = parameter(1.0, positive=True)
    link_mass_2: Float[Array, ""] = parameter(1.0, positive=True)
    link_com_1: Float[Array, ""] = parameter(0.5, positive=True)
    link_com_2: Float[Array, ""] = parameter(0.5, positive=True)
    link_moi: Float[Array, ""] = parameter(1.0, positive=True)
    max_vel_1: Float[Array, ""] = parameter(4 * math.pi, positive=True)
    max_vel_2: Float[Array, ""] = parameter(9 * math.pi, positive=True)
    max_torque: Float[Array, ""] = parameter(1.0, positive=True)
    transition: AbstractTransition = eqx.field(default_factory=lambda: GymRK4())
    action: str = eqx.field(static=True, default="discrete")
    control_dt: float = eqx.field(static=True, default=0.2)
    episode_steps: int = eqx.field(static=True, default=500)

    def __check_init__(self):
        if self.action not in ("discrete", "continuous"):
            raise DiffsimError(
                f"action must be one of ('discrete', 'continuous'), got {self.action!r}"
            )

    @property
    def action_space(self) -> Discrete | Box:
        if self.action == "continuous":
            return Box(-self.max_torque, self.max_torque)
        return Discrete(jnp.stack([-self.max_torque, 0.0 * self.max_torque, self.max_torque]))

    def _mass_matrix(self, theta2):
        """``(d1, d2, d3)``: the mass matrix ``[[d1, d2], [d2, d3]]`` (kg m^2) of the
        equations above, in gym's order of operations."""
        m2, l1, lc2, moi = self.link_mass_2, self.link_length_1, self.link_com_2, self.link_moi
        d1 = (
            self.link_mass_1 * self.link_com_1**2
            + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * jnp.cos(theta2))
            + moi
            + moi
        )
        d2 = m2 * (lc2**2 + l1 * lc2 * jnp.cos(theta2)) + moi
        return d1, d2, m2 * lc2**2 + moi

    def vector_field(self, t, y, u):
        # gym's _dsdt, in its order of operations (float64 parity)
        m1, m2 = self.link_mass_1, self.link_mass_2
        l1, lc1, lc2 = self.link_length_1, self.link_com_1, self.link_com_2
        g, a = self.g, u[0]
        theta1, theta2, dtheta1, dtheta2 = y
        d1, d2, d3 = self._mass_matrix(theta2)
        phi2 = m2 * lc2 * g * jnp.cos(theta1 + theta2 - jnp.pi / 2.0)
        phi1 = (
            -m2 * l1 * lc2 * dtheta2**2 * jnp.sin(theta2)
            - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * jnp.sin(theta2)
            + (m1 * lc1 + m2 * l1) * g * jnp.cos(theta1 - jnp.pi / 2)
            + phi2
        )
        ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1**2 * jnp.sin(theta2) - phi2) / (
            d3 - d2**2 / d1
        )
        ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
        return jnp.stack([dtheta1, dtheta2, ddtheta1, ddtheta2])

    def initial_state(self, key):
        return jr.uniform(key, (4,), minval=-0.1, maxval=0.1)

    @property
    def observation_bounds(self):
        one = jnp.ones_like(self.max_vel_1)
        high = jnp.stack([one, one, one, one, self.max_vel_1, self.max_vel_2])
        return -high, high

    @property
    def variables(self) -> Variables:
        angles = (Quantity("theta1", "rad", angle=True), Quantity("theta2", "rad", angle=True))
        speeds = (Quantity("theta1_dot", "rad/s"), Quantity("theta2_dot", "rad/s"))
        trigonometry = tuple(
            Quantity(f"{f} theta{i}") for i in (1, 2) for f in ("cos", "sin")
        )
        return Variables(angles + speeds, trigonometry + speeds, (Quantity("torque", "N m"),))

    def observe(self, y):
        theta1, theta2, dtheta1, dtheta2 = y
        return jnp.stack(
            [jnp.cos(theta1), jnp.sin(theta1), jnp.cos(theta2), jnp.sin(theta2), dtheta1, dtheta2]
        )

    def tip_height(self, y: Float[Array, " 4"]) -> Float[Array, ""]:
        """Height of the free end above the pivot (m)."""
        return -self.link_length_1 * jnp.cos(y[0]) - self.link_length_2 * jnp.cos(y[0] + y[1])

    def height_deficit(self, y: Float[Array, " 4"]) -> Float[Array, ""]:
        """``max(0, l1 - tip height) / (2 l1 + l2)``: 1 hanging down, 0 at the goal line."""
        total = 2 * self.link_length_1 + self.link_length_2
        return jnp.maximum(self.link_length_1 - self.tip_height(y), 0.0) / total

    def energy(self, y: Float[Array, " 4"]) -> Float[Array, ""]:
        """Mechanical energy (J): kinetic ``q_dot^T M(q) q_dot / 2`` with the mass matrix of
        the equations above, plus potential energy measured from the pivot's height."""
        m1, m2 = self.link_mass_1, self.link_mass_2
        l1, lc1, lc2 = self.link_length_1, self.link_com_1, self.link_com_2
        theta1, theta2, dtheta1, dtheta2 = y
        d1, d2, d3 = self._mass_matrix(theta2)
        kinetic = (d1 * dtheta1**2 + 2 * d2 * dtheta1 * dtheta2 + d3 * dtheta2**2) / 2
        potential = -self.g * (
            (m1 * lc1 + m2 * l1) * jnp.cos(theta1) + m2 * lc2 * jnp.cos(theta1 + theta2)
        )
        return kinetic + potential

    def upright_energy(self) -> Float[Array, ""]:
        """The energy at rest standing straight up (J), what a swing-up must pump in."""
        return self.g * (
            self.link_mass_1 * self.link_com_1
            + self.link_mass_2 * (self.link_length_1 + self.link_com_2)
        )

    def swingup_cost(self, y: Float[Array, " 4"]) -> Float[Array, ""]:
        """The continuous variant's cost of reaching ``y`` (dimensionless): the energy
        missing to stand upright at rest, ``max(0, E_up - E) / (2 E_up)``, plus
        :meth:`height_deficit`; 2 hanging at rest, 0 with the tip at the line and energy
        to spare. The motor's power ``tau theta2_dot`` changes the energy linearly in the
        torque: a gradient that the height alone lacks near the hanging rest."""
        target = self.upright_energy()
        energy_deficit = jnp.maximum(target - self.energy(y), 0.0) / (2 * target)
        return energy_deficit + self.height_deficit(y)

    def termination(self, y):
        return self.tip_height(y) > self.link_length_1

    def step_cost(self, t, y, u, y_next):
        if self.action == "continuous":
            return self.swingup_cost(y_next)
        return 1.0 - self.termination(y_next).astype(y.dtype)

    def draw(self, y):
        elbow = self.link_length_1 * jnp.stack([jnp.sin(y[0]), -jnp.cos(y[0])])
        tip = elbow + self.link_length_2 * jnp.stack([jnp.sin(y[0] + y[1]), -jnp.cos(y[0] + y[1])])
        width = self.link_length_1 + self.link_length_2
        line = jnp.stack(
            [jnp.stack([-width, self.link_length_1]), jnp.stack([width, self.link_length_1])]
        )
        return [line, jnp.stack([jnp.zeros(2), elbow, tip])]


def _wrap(x, low, high):
    """Gym's ``wrap``: the period subtracted (added) while ``x`` is above ``high`` (below
    ``low``), as one multiple of it (the same arithmetic for the single wrap of a step)."""
    period = high - low
    x = jnp.where(x > high, x - period * jnp.ceil((x - high) / period), x)
    return jnp.where(x < low, x + period * jnp.ceil((low - x) / period), x)


class GymRK4(AbstractTransition):
    """Gymnasium Acrobot-v1's own step: one classical Runge-Kutta step over the control
    interval (gym's ``rk4``, in its order of operations), the angles wrapped into
    ``[-pi, pi]`` and the speeds clipped to ``max_vel_1``, ``max_vel_2``. A zero-order-hold
    map of the :class:`Acrobot` only.

    Example: ``Acrobot(transition=GymRK4())`` (the default).
    """

    def __call__(self, dynamics, t, y, u):
        if not isinstance(dynamics, Acrobot):
            raise DiffsimError(
                f"GymRK4: zero-order hold of an Acrobot, not {type(dynamics).__name__}"
            )
        dt = dynamics.control_dt
        dt2 = dt / 2.0
        k1 = dynamics.vector_field(t, y, u)
        k2 = dynamics.vector_field(t + dt2, y + dt2 * k1, u)
        k3 = dynamics.vector_field(t + dt2, y + dt2 * k2, u)
        k4 = dynamics.vector_field(t + dt, y + dt * k3, u)
        y = y + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        return jnp.stack(
            [
                _wrap(y[0], -jnp.pi, jnp.pi),
                _wrap(y[1], -jnp.pi, jnp.pi),
                jnp.clip(y[2], -dynamics.max_vel_1, dynamics.max_vel_1),
                jnp.clip(y[3], -dynamics.max_vel_2, dynamics.max_vel_2),
            ]
        )


# ---------------------------------------------------------------------------------------
# Training: a differentiable surrogate of the step count, and the recipes.


def swingup_loss(env: Acrobot, trajectory: Trajectory) -> Float[Array, ""]:
    """Mean over the window of :meth:`Acrobot.swingup_cost` at every state reached,
    dimensionless: a differentiable surrogate of gym's reward (-1 per step until the
    line), whose gradient is zero almost everywhere. States frozen after the episode
    ended keep being charged (little: the tip is above the line)."""
    return jnp.mean(jax.vmap(env.swingup_cost)(trajectory.states[1:]))


OBSERVATION_SCALE = (1.0, 1.0, 1.0, 1.0, 4 * math.pi, 9 * math.pi)
"""Bounds of the observation, to scale a policy's inputs to order one."""


def acrobot_controller(env: Acrobot, key) -> MLPPolicy | Mirrored:
    """A 32x32 tanh MLP on the observation (scaled by its bounds); for continuous torque,
    made exactly mirror-symmetric (angles, speeds and torque change sign together)."""
    policy = MLPPolicy.for_env(env, width=32, depth=2, observation_scale=OBSERVATION_SCALE, key=key)
    if env.action == "discrete":
        return policy
    return Mirrored(
        policy, observation_signs=(1.0, -1.0, 1.0, -1.0, -1.0, -1.0), output_signs=(-1.0,)
    )


# rejax settings of `diffsim compare acrobot --methods ppo,dqn` (diffsim.rl's methods), in
# rejax 0.1.3's names: rl-baselines3-zoo's tuned files (hyperparams/ppo.yml, dqn.yml,
# Acrobot-v1), whose benchmark reports PPO -73.5 after 1M steps and DQN -76.6 after 100k,
# with stable-baselines3's defaults for what they leave out.
PPO_SETTINGS = dict(
    # zoo: normalize true, n_envs 16, n_timesteps 1e6, n_steps 256, gae_lambda 0.94, gamma
    # 0.99, n_epochs 4, ent_coef 0.0. SB3 PPO defaults: learning_rate 3e-4, batch_size 64
    # (16 x 256 / 64 = 64 minibatches), clip_range 0.2, vf_coef 0.5, max_grad_norm 0.5,
    # net_arch [64, 64] tanh.
    steps=1_000_000,
    quick_steps=8_192,
    hidden=(64, 64),
    activation="tanh",
    settings=dict(
        num_envs=16,
        num_steps=256,
        num_minibatches=64,
        num_epochs=4,
        learning_rate=3e-4,
        gamma=0.99,
        gae_lambda=0.94,
        clip_eps=0.2,
        ent_coef=0.0,
        vf_coef=0.5,
        max_grad_norm=0.5,
        normalize_observations=True,
        normalize_rewards=True,
    ),
)
DQN_SETTINGS = dict(
    # zoo: n_timesteps 1e5, learning_rate 6.3e-4, batch_size 128, buffer_size 50000,
    # learning_starts 0, gamma 0.99, target_update_interval 250, train_freq 4,
    # gradient_steps -1 (as many gradient steps as env steps), exploration_fraction 0.12,
    # exploration_final_eps 0.1, net_arch [256, 256]. SB3 DQN defaults: relu, hard target
    # updates, max_grad_norm 10. In rejax: 4 envs stepped once, then 4 gradient steps (zoo's
    # 4 steps then 4 updates); training starts after one batch (rejax samples the buffer
    # only once it holds fill_buffer transitions); rejax's loss is L2 (SB3: Huber) and its
    # max_grad_norm clips element-wise.
    steps=100_000,
    quick_steps=2_000,
    hidden=(256, 256),
    activation="relu",
    settings=dict(
        num_envs=4,
        num_epochs=4,
        learning_rate=6.3e-4,
        batch_size=128,
        buffer_size=50_000,
        fill_buffer=128,
        gamma=0.99,
        target_update_freq=250,
        polyak=0.0,
        eps_start=1.0,
        eps_end=0.1,
        exploration_fraction=0.12,
        max_grad_norm=10.0,
        ddqn=False,
    ),
)


recipe = Recipe(
    name="acrobot",
    make_env=Acrobot,
    make_controller=acrobot_controller,
    make_optimiser=functools.partial(adam_cosine, 1e-2),
    iterations=200,
    quick_iterations=10,
    train_options=dict(
        batch_size=32,
        window=25,
        carry_state=True,
        objective=swingup_loss,
        estimator=GumbelSoftmax(),
        eval_every=50,
        eval_episodes=100,
    ),
    # gym's "solved" threshold for Acrobot-v1, what `diffsim compare` reports the cost of
    # reaching
    thresholds=(-100.0,),
    method_options={"ppo": PPO_SETTINGS, "dqn": DQN_SETTINGS},
)
"""``diffsim train acrobot``: Acrobot-v1 (gym's RK4 step, torques -1, 0, 1) through a
straight-through Gumbel-softmax estimator (temperature 1), 32 carried episodes on windows
of 25 steps (5 s), :func:`swingup_loss` as the training loss, Adam at 1e-2 with cosine
decay and clipping at 1: 200 updates, 160,000 training env steps. The deterministic
straight-through estimator (the cart-pole's) on the same set-up never left -500: with
hard arg-max torques from the hanging rest its rollouts do not explore."""

# `diffsim compare acrobot-swingup --methods shac` (diffsim.SHAC): half the recipe's env steps
# (8 episodes carried over the same 25-step windows, 400 updates: 80,000 steps), the
# recipe's policy, Adam at 3e-3 clipped at 1, the critic on the observation scaled by its
# bounds with its output scaled by 30, SHAC's paper otherwise. Tried (5 seeds, 1000
# episodes, median / worst seed): rate 1e-3 -120.0 / -122.2 (80,000 steps), -111.0 / -113.1
# (160,000); 1e-2 -998.8 (4 seeds of 5 never swing up); 3e-3 over 40,000 steps -113.6 /
# -117.2; 32 episodes x 200 updates -158.1 / -178.5 (160,000); unscaled observations -108.5.
# Kept: -108.1 / -109.7, against the DP recipe's -109.3 / -998.8 from 160,000 steps.
SWINGUP_SHAC_SETTINGS = dict(
    optimiser=optax.chain(optax.clip_by_global_norm(1.0), optax.adam(3e-3)),
    critic_optimiser=optax.adam(3e-3),
    iterations=400,
    quick_iterations=10,
    eval_every=50,
    batch_size=8,
    window=25,
    observation_scale=OBSERVATION_SCALE,
    value_scale=30.0,
)

swingup_recipe = dataclasses.replace(
    recipe,
    name="acrobot-swingup",
    make_env=lambda: Acrobot(action="continuous"),
    train_options={
        k: v for k, v in recipe.train_options.items() if k not in ("estimator", "objective")
    },
    thresholds=(),
    # no zoo entry: the RL methods take the continuous-action fallbacks (diffsim.rl)
    method_options={"shac": SWINGUP_SHAC_SETTINGS},
)
"""``diffsim train acrobot-swingup``: the same set-up with any torque in ``[-1, 1]`` N m,
trained on the env's own cost (:meth:`Acrobot.swingup_cost` per step), the policy made
mirror-symmetric."""
