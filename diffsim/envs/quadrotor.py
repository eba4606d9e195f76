"""A planar quadrotor (a drone in the vertical x-z plane) flying to a waypoint with two
bounded rotor thrusts.

Equations (R. Tedrake, *Underactuated Robotics*, MIT course notes, "The planar quadrotor";
the same model as in Mellinger and Kumar's minimum-snap work restricted to a plane)::

    m x_ddot     = -(u1 + u2) sin theta
    m z_ddot     =  (u1 + u2) cos theta - m g
    I theta_ddot =  r (u1 - u2)

with ``u1`` the thrust of the rotor on the body's +x side, ``u2`` of the one on its -x side
(N), ``r`` the distance of each rotor from the centre (m), ``theta`` the pitch (rad,
counter-clockwise, 0 level). Default constants are Tedrake's: ``m`` 0.486 kg, ``r`` 0.25 m,
``I`` 0.00383 kg m^2, ``g`` 9.81 m/s^2.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Float

from diffsim import (
    AbstractEnv,
    Box,
    MLPPolicy,
    Quantity,
    Recipe,
    Variables,
    adam_cosine,
    parameter,
)


class PlanarQuadrotor(AbstractEnv):
    """A planar quadrotor that must fly to the waypoint ``(target_x, target_z)`` and stop.

    State ``y = (x, z, theta, x_dot, z_dot, theta_dot)``: position (m, ``z`` up), pitch
    (rad, counter-clockwise) and their rates (m/s, rad/s). Control ``u = (u1, u2)``: the two
    rotor thrusts (N), each in ``[0, max_thrust]`` (rotors only push). Observation
    ``(x - target_x, z - target_z, cos theta, sin theta, x_dot, z_dot, theta_dot)``.
    Start: position ``U[-2, 2]`` m around the waypoint in both axes, pitch ``U[-0.3, 0.3]``
    rad, speeds ``U[-0.5, 0.5]`` m/s and rad/s. Control every 0.05 s, 100 steps (5 s), no
    termination.

    Running cost per step, at the state the step reaches (distances in m)::

        |p - p_target|^2 + 0.1 |v|^2 + 0.1 (1 - cos theta) + 0.01 theta_dot^2
        + 0.01 sum_i ((u_i - m g / 2) / (m g / 2))^2

    the squared distance to the waypoint, a smaller charge for moving and tilting, and a
    small one for thrusts away from hover.

    Args:
        transition: by default one Tsit5 step per control interval (``ODEStep()``); the
            dynamics are polynomial in time under a held control at fixed pitch, so the
            hover, free fall and pure-rotation solutions are integrated exactly.

    Example: ``diffsim.rollout(PlanarQuadrotor(), policy, jnp.zeros(6))``.
    """

    g: Float[Array, ""] = parameter(9.81, positive=True)
    mass: Float[Array, ""] = parameter(0.486, positive=True)
    arm: Float[Array, ""] = parameter(0.25, positive=True)
    inertia: Float[Array, ""] = parameter(0.00383, positive=True)
    max_thrust: Float[Array, ""] = parameter(5.0, positive=True)
    target_x: Float[Array, ""] = parameter(0.0)
    target_z: Float[Array, ""] = parameter(0.0)
    control_dt: float = eqx.field(static=True, default=0.05)
    episode_steps: int = eqx.field(static=True, default=100)

    @property
    def action_space(self) -> Box:
        zero = jnp.zeros_like(self.max_thrust)
        return Box(jnp.stack([zero, zero]), jnp.stack([self.max_thrust, self.max_thrust]))

    @property
    def hover_thrust(self) -> Float[Array, ""]:
        """Each rotor's thrust at hover, ``m g / 2`` (N)."""
        return self.mass * self.g / 2

    def vector_field(self, t, y, u):
        _, _, theta, x_dot, z_dot, theta_dot = y
        thrust = u[0] + u[1]
        return jnp.stack(
            [
                x_dot,
                z_dot,
                theta_dot,
                -thrust * jnp.sin(theta) / self.mass,
                thrust * jnp.cos(theta) / self.mass - self.g,
                self.arm * (u[0] - u[1]) / self.inertia,
            ]
        )

    def equilibrium(self):
        """Hovering level and still at the waypoint, each rotor pushing ``m g / 2``."""
        waypoint = jnp.stack([self.target_x, self.target_z])
        return jnp.concatenate([waypoint, jnp.zeros(4)]), jnp.stack([self.hover_thrust] * 2)

    def initial_state(self, key):
        high = jnp.array([2.0, 2.0, 0.3, 0.5, 0.5, 0.5])
        y = jr.uniform(key, (6,), minval=-high, maxval=high)
        return y + jnp.concatenate([jnp.stack([self.target_x, self.target_z]), jnp.zeros(4)])

    @property
    def variables(self) -> Variables:
        pitch, spin = Quantity("theta", "rad", angle=True), Quantity("theta_dot", "rad/s")
        speeds = Quantity("x_dot", "m/s"), Quantity("z_dot", "m/s")
        return Variables(
            states=(Quantity("x", "m"), Quantity("z", "m"), pitch, *speeds, spin),
            observations=(
                Quantity("x - target_x", "m"),
                Quantity("z - target_z", "m"),
                Quantity("cos theta"),
                Quantity("sin theta"),
                *speeds,
                spin,
            ),
            controls=(Quantity("left thrust", "N"), Quantity("right thrust", "N")),
        )

    def observe(self, y):
        x, z, theta, x_dot, z_dot, theta_dot = y
        return jnp.stack(
            [
                x - self.target_x,
                z - self.target_z,
                jnp.cos(theta),
                jnp.sin(theta),
                x_dot,
                z_dot,
                theta_dot,
            ]
        )

    def step_cost(self, t, y, u, y_next):
        x, z, theta, x_dot, z_dot, theta_dot = y_next
        distance2 = (x - self.target_x) ** 2 + (z - self.target_z) ** 2
        thrust = jnp.sum(((u - self.hover_thrust) / self.hover_thrust) ** 2)
        return (
            distance2
            + 0.1 * (x_dot**2 + z_dot**2)
            + 0.1 * (1 - jnp.cos(theta))
            + 0.01 * theta_dot**2
            + 0.01 * thrust
        )

    def draw(self, y):
        x, z, theta = y[0], y[1], y[2]
        side = self.arm * jnp.stack([jnp.cos(theta), jnp.sin(theta)])
        centre = jnp.stack([x, z])
        target = jnp.stack([self.target_x, self.target_z])
        cross = 0.05 * jnp.eye(2)
        return [
            jnp.stack([centre - side, centre + side]),
            jnp.stack([target - cross[0], target + cross[0]]),
            jnp.stack([target - cross[1], target + cross[1]]),
        ]


def quadrotor_controller(env: PlanarQuadrotor, key) -> MLPPolicy:
    """A 64x64 tanh MLP on the observation, thrusts squashed into ``[0, max_thrust]``."""
    return MLPPolicy.for_env(
        env, width=64, depth=2, observation_scale=(2.0, 2.0, 1.0, 1.0, 2.0, 2.0, 5.0), key=key
    )


# `diffsim compare quadrotor --methods shac` (diffsim.SHAC): an eighth of the recipe's env
# steps (8 episodes carried over the same 20-step windows, 1000 updates: 160,000 steps), the
# recipe's network and observation scales, Adam at 1e-3 clipped at 1; the critic's output
# scaled by 30, SHAC's paper otherwise. Tried (5 seeds, 1000 episodes, median / worst seed):
# actor rate 3e-3 -115160 / -276121; 5e-4 -28.8 / -238.2; value scale 100 -163248, 10
# -27.2 / -2326.5; 25-step windows -27.7 / -447.4; 16 episodes -27.4 / -218.7 (320,000
# steps). Kept 1e-3: -27.6, three seeds of five within 0.7 of the DP recipe's -26.9.
SHAC_SETTINGS = dict(
    optimiser=optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3)),
    critic_optimiser=optax.adam(3e-3),
    iterations=1000,
    quick_iterations=10,
    eval_every=100,
    batch_size=8,
    window=20,
    observation_scale=(2.0, 2.0, 1.0, 1.0, 2.0, 2.0, 5.0),
    value_scale=30.0,
)


recipe = Recipe(
    name="quadrotor",
    make_env=PlanarQuadrotor,
    make_controller=quadrotor_controller,
    make_optimiser=functools.partial(adam_cosine, 3e-3),
    iterations=1000,
    quick_iterations=10,
    train_options=dict(
        batch_size=64, window=20, carry_state=True, eval_every=100, eval_episodes=100
    ),
    # `diffsim compare quadrotor --methods mpc`: a 0.5 s horizon, 50 Adam updates a step
    # (1 s horizons plan worse here: open-loop thrusts over the fast pitch dynamics)
    method_options={
        "mpc": dict(horizon=10, iterations=50, optimiser=optax.adam(0.1)),
        "shac": SHAC_SETTINGS,
    },
)
"""``diffsim train quadrotor``: truncated backpropagation through 20-step (1 s) windows of
64 episodes carried from window to window, Adam at 3e-3 with cosine decay and clipping at
1, 1000 updates (1.28 M env steps). Whole 100-step episodes (300 updates) trained 3 seeds of
5 and lost every episode on the other two: the gradient through a tumble explodes."""
