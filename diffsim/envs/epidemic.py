"""An SIR epidemic (Kermack and McKendrick 1927) controlled by a bounded reduction of
contacts (distancing, closures), charged for infections and for the intervention.

Equations, with ``s``, ``i``, ``r`` the susceptible, infectious and recovered fractions of
the population (``s + i + r = 1`` is conserved) and time in days::

    ds/dt = -beta (1 - u) s i
    di/dt =  beta (1 - u) s i - gamma i
    dr/dt =  gamma i

``beta`` is the transmission rate (1/day), ``gamma`` the recovery rate (1/day, ``1/gamma``
the infectious period), ``R0 = beta / gamma``, and ``u`` in ``[0, max_reduction]`` the
fraction of contacts removed by the intervention. References: W. O. Kermack and A. G.
McKendrick, "A contribution to the mathematical theory of epidemics", Proc. R. Soc. Lond.
A 115, 700-721 (1927); H. W. Hethcote, "The mathematics of infectious diseases", SIAM
Review 42, 599-653 (2000), section 2; the control ``beta (1 - u)`` as in D. H. Morris et
al., "Optimal, near-optimal, and robust epidemic control", Communications Physics 4, 78
(2021).
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float

from diffsim import (
    AbstractEnv,
    AbstractTransition,
    Box,
    DiffsimError,
    MLPPolicy,
    ODEStep,
    Quantity,
    Recipe,
    Variables,
    adam_cosine,
    parameter,
)


class Epidemic(AbstractEnv):
    """An SIR epidemic with a bounded contact reduction, over 200 days.

    State ``y = (s, i, r)``: fractions of the population susceptible, infectious and
    recovered (dimensionless, summing to 1). Control ``u``, shape ``(1,)``: the fraction
    of contacts removed, in ``[0, max_reduction]``. Defaults: ``beta`` 0.3/day, ``gamma``
    0.1/day (``R0`` = 3, a 10-day infectious period), ``max_reduction`` 0.7 (enough to push
    the effective reproduction number ``R0 (1 - u) s`` below 1). One control decision a
    day, 200 days; start ``i ~ U[0.001, 0.01]``, ``r ~ U[0, 0.1]``, ``s = 1 - i - r``.

    Running cost per day: ``infection_weight * (new infections that day) +
    intervention_weight * u^2``, new infections being ``s - s_next`` (the fraction of the
    population infected during the step); at the end, the infections still to come if the
    intervention stops then (:meth:`terminal_cost`), so the return counts the whole
    epidemic. With the defaults (1 and 0.01), letting the epidemic run (about 0.9 of the
    population infected) costs about as much as 200 days of the strongest intervention
    (0.98), so the optimum lies in between.

    Args:
        transition: by default two Tsit5 steps a day (``ODEStep(substeps=2)``: within
            1e-9 of scipy's DOP853 at rtol 1e-12 over 200 days, tested);
            ``diffsim.ODESolve(...)`` for an adaptive one.

    Example: ``diffsim.rollout(Epidemic(), lambda t, o: jnp.array([0.3]), jnp.array([0.99,
    0.01, 0.0]))``.
    """

    beta: Float[Array, ""] = parameter(0.3, positive=True)
    gamma: Float[Array, ""] = parameter(0.1, positive=True)
    max_reduction: Float[Array, ""] = parameter(0.7, positive=True)
    infection_weight: Float[Array, ""] = parameter(1.0, positive=True)
    intervention_weight: Float[Array, ""] = parameter(0.01, positive=True)
    transition: AbstractTransition = ODEStep(substeps=2)
    control_dt: float = eqx.field(static=True, default=1.0)
    episode_steps: int = eqx.field(static=True, default=200)

    def __check_init__(self):
        reduction = self.max_reduction
        if not isinstance(reduction, jax.core.Tracer) and not bool(jnp.all(reduction <= 1)):
            raise DiffsimError(
                f"max_reduction is a fraction of contacts, at most 1, got {reduction}"
            )

    @property
    def variables(self) -> Variables:
        states = (Quantity("s"), Quantity("i"), Quantity("r"))  # fractions of the population
        return Variables(states, states, (Quantity("contact reduction"),))

    @property
    def action_space(self) -> Box:
        return Box(jnp.zeros_like(self.max_reduction), self.max_reduction)

    def vector_field(self, t, y, u):
        s, i, _ = y
        infection = self.beta * (1 - u[0]) * s * i
        recovery = self.gamma * i
        return jnp.stack([-infection, infection - recovery, recovery])

    def initial_state(self, key):
        key_i, key_r = jr.split(key)
        i = jr.uniform(key_i, (), minval=0.001, maxval=0.01)
        r = jr.uniform(key_r, (), maxval=0.1)
        return jnp.stack([1 - i - r, i, r])

    @property
    def observation_bounds(self):
        zero = jnp.zeros_like(self.beta)
        return jnp.stack([zero, zero, zero]), jnp.stack([zero + 1, zero + 1, zero + 1])

    def step_cost(self, t, y, u, y_next):
        new_infections = y[0] - y_next[0]
        return self.infection_weight * new_infections + self.intervention_weight * u[0] ** 2

    def terminal_cost(self, y):
        """``infection_weight`` times the infections still to come if the intervention
        stops at the end of the episode: ``s - s_inf``, where the fraction never infected
        ``s_inf`` solves the final-size relation ``ln(s / s_inf) = R0 (s + i - s_inf)``
        (Kermack and McKendrick 1927). Without it, a policy could merely postpone the
        epidemic past the horizon."""
        return self.infection_weight * (y[0] - self.final_susceptible(y))

    def final_susceptible(self, y: Float[Array, " 3"]) -> Float[Array, ""]:
        """The fraction never infected if the epidemic runs its course from ``y`` with no
        intervention: the root of ``g(x) = ln x - ln s + R0 (s + i - x)`` in ``(0, 1/R0]``,
        by 40 Newton steps from the lower bound ``s exp(-R0 (s + i))`` (``g`` is concave and
        increasing there, so the iterates rise monotonically to the root)."""
        s, i, _ = y
        r0 = self.beta / self.gamma

        def newton(_, x):
            g = jnp.log(x) - jnp.log(s) + r0 * (s + i - x)
            return x - g / (1 / x - r0)

        return jax.lax.fori_loop(0, 40, newton, s * jnp.exp(-r0 * (s + i)))

    def reproduction_number(self, y: Float[Array, " 3"], u: Float[Array, " 1"]):
        """The effective reproduction number ``beta (1 - u) s / gamma``."""
        return self.beta * (1 - u[0]) * y[0] / self.gamma


def epidemic_controller(env: Epidemic, key) -> MLPPolicy:
    """A 32x32 tanh MLP on ``(s, i, r)`` (``i`` scaled by 0.1), output squashed into
    ``[0, max_reduction]``."""
    return MLPPolicy.for_env(env, width=32, depth=2, observation_scale=(1.0, 0.1, 1.0), key=key)


recipe = Recipe(
    name="epidemic",
    make_env=Epidemic,
    make_controller=epidemic_controller,
    make_optimiser=functools.partial(adam_cosine, 3e-2),
    iterations=150,
    quick_iterations=10,
    train_options=dict(batch_size=32, eval_every=50, eval_episodes=100),
)
"""``diffsim train epidemic``: backpropagation through whole 200-day episodes, 32 a batch,
Adam at 3e-2 with cosine decay and clipping at 1, 150 updates (the return stops improving
after about 100; 3e-3 over 300 updates reached 0.2 % less)."""
