"""Rollout throughput: diffsim against the strongest references, side by side in one run.

Env steps per second of ``diffsim.rollout`` under a 64x64 tanh MLP policy
(``MLPPolicy.for_env(env, width=64, depth=2, key=jr.key(0))``, the same weights for
every contender of a problem), 200 control steps, batches of 1 and 1024 episodes from the
same initial states (``diffsim.initial_states(env, 1024, seed=0)``), float32:

- ``pendulum_gym``: ``Pendulum(transition=GymEuler())``, gymnasium Pendulum-v1's
  semi-implicit Euler step, against (a) the fastest of four hand-written ``lax.scan``
  loops of the same Euler step, policy and cost (no diffrax, no masks) and (b) gymnax's
  own ``Pendulum-v1`` (``gymnax.make``), its ``step_env`` inside a ``lax.scan`` over a
  ``vmap`` of the batch, driven by the policy on gymnax's observation. ``step_env``, not
  ``step``: ``step`` adds an auto-reset (a fresh reset state drawn and selected every
  step) that neither diffsim's rollout nor the hand scan does, so ``step_env`` is the
  equal-work (and faster) choice for gymnax. Gradient: gymnax has none to compare, as its
  ``step_env`` returns ``stop_gradient(state)``: ``jax.grad`` through a gymnax rollout
  gives only each step's direct torque-cost term, not the gradient through the dynamics.
- ``pendulum_ode``: the default ``Pendulum()``, 4 Tsit5 steps per 0.05 s interval
  (``ODEStep(substeps=4)``), against the fastest of four hand-written ``lax.scan`` loops
  of the same Tsit5 tableau (diffrax's coefficients baked in as constants, 6 stages, the
  substeps in an inner scan; stage sums as Python sums or as a dot with the tableau row).
- ``cartpole_gym_continuous``: ``CartPole(transition=GymEuler(), action="continuous")``,
  gym CartPole-v1's explicit Euler step with a force in [-10, 10] N, against the fastest
  of four hand-written scans. Forward: the summed cost (-1 per step alive, gym's
  return). Gradient: of the library's training objective ``shaped_balance_loss`` (mean
  squared scaled ``x`` and ``theta`` over the states, frozen after termination), because
  the summed cost has zero gradient (JAX would skip the backward pass).
- ``cartpole_gym_discrete``: ``CartPole(transition=GymEuler())``, 2 logits and arg-max
  pushes of -10 / +10 N, forward only, against the fastest hand-written scan and gymnax's
  own ``CartPole-v1`` (discrete actions only, hence this separate forward-only problem),
  ``step_env`` as above, its rewards summed up to the first ``done`` (``step_env`` keeps
  stepping after it, and the policy can bring the pole back into the box): minus
  diffsim's summed cost, the same masking diffsim's rollout does.

diffsim runs twice per problem, as it comes and with ``rollout(..., unroll=4)`` (the
scan's own ``unroll``, the hand scans' unroll); the faster of the two per configuration is
diffsim's rate, as the fastest hand scan is the reference's, and the ratio of the default
(unroll 1) is printed beside it. A third diffsim contender is the default again, compiled
and timed as a separate program (the same compiled code): the first's rate over its rate,
printed per configuration, gives a rough scale of the run's noise. More ``--repeats``
narrow it where one call lasts a repeat (large batches), less so at batch 1, where much of
it seems to come from XLA:CPU's runtime handing a step's thunks to a second thread in some
runs and not in others. On a machine with few cores, ``taskset -c 0 python
benchmarks/rollout_throughput.py ...`` measures every program on one thread, a different
setting from the unpinned one, with far less noise (the control at 0.98-1.04 in one such
run, where two-core runs read 0.87-1.17; see ``benchmarks/RESULTS.md``).

The four hand-written variants per problem are two layouts (a scan per episode under
``vmap``; one batch-major scan over ``(batch,)`` arrays with the policy ``vmap``-ed inside)
times two scan unrolls (1, 4) for the Euler problems, and two layouts times two ways of
forming Runge-Kutta stage sums for the ODE. All are timed in the same run and the fastest
per configuration is the reference (its name is printed). Forward: the batch mean of the
summed cost; gradient: ``jax.grad`` of it with respect to the policy's arrays.

Before timing, every contender's per-episode objectives on 16 initial states must agree
with diffsim's to 1e-4 relative, and the gradients at the first batch to 1e-3 relative
(norm), so that all do the same work. Each program is one ``jax.jit`` per configuration
(compile time printed separately); after a warm-up, each repeat runs every contender
(interleaved, in rotating order, against the machine's load drifting) back to back
enough times to last at least 0.1 s, blocked with ``block_until_ready``; the median of
the repeats is reported. ``diffsim/ref`` ratios are diffsim steps/s over the reference's
(> 1: diffsim faster), printed honestly also where below 1.

Batches default to 1, 16, 256, 4096 and 65,536 episodes (log-spaced; ``--batches`` picks
others). Then the time to train: ``diffsim train pendulum``'s recipe (``Pendulum()``,
the mirror-symmetric 64x64 MLP, Adam 1e-2 cosine, 50-step windows, 300 updates,
evaluations of 200 episodes every 25 updates) at each of ``--train-batches`` episodes per
update, seed 0, stopped at the first evaluation at or above ``--target`` (-160): wall
seconds to it (compilation included, and separately), updates and training env steps.
Ends with one JSON line.

    python benchmarks/rollout_throughput.py [--repeats 5] [--batches 1,16,256,4096,65536]
        [--train-batches 32,128,512] [--target -160]
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable

import diffrax as dfx
import equinox as eqx
import gymnax
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import diffsim
from diffsim import MLPPolicy
from diffsim.envs import CartPole, Pendulum, cartpole, pendulum

STEPS = 200
CHECK_EPISODES = 16
MIN_REPEAT_S = 0.1
FORWARD_RTOL = 1e-4
GRADIENT_RTOL = 1e-3
DIFFSIM_UNROLL = 4
GYMNAX_KEY = jr.PRNGKey(0)  # step_env of these two envs ignores its key

# The pendulum and cart-pole constants (gym's, and the envs' defaults).
PEND_G, PEND_M, PEND_L, MAX_SPEED, MAX_TORQUE, PEND_DT = 10.0, 1.0, 1.0, 8.0, 2.0, 0.05
ODE_SUBSTEPS = 4
CART_G, CART_MASS, POLE_MASS, HALF_LENGTH, FORCE, CART_DT = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
TOTAL_MASS = POLE_MASS + CART_MASS
POLEMASS_LENGTH = POLE_MASS * HALF_LENGTH
X_THRESHOLD, THETA_THRESHOLD = 2.4, cartpole.THETA_THRESHOLD

TARGET = -160.0  # the pendulum's time-to-train target (mean evaluation return)
MODES = {"forward": "fwd", "gradient": "grad"}
CONTROL = "diffsim, compiled again"
ROLES = {
    "diffsim": "diffsim rollout (fastest)",
    "scan": "hand-written scan (fastest)",
    "gymnax": "gymnax step_env",
}

PerEpisode = Callable  # (policy, ys of shape (batch, n)) -> per-episode values, (batch,)


@dataclasses.dataclass
class Contender:
    name: str
    role: str  # "diffsim", "scan", "gymnax" or "control" (diffsim again: the noise)
    cost: PerEpisode  # what the forward program sums (the batch mean of it)
    loss: PerEpisode | None  # what the gradient program differentiates; None: not timed


@dataclasses.dataclass
class Problem:
    name: str
    title: str
    policy: MLPPolicy
    y0: jax.Array
    contenders: list[Contender]


def _angle_normalize(theta):
    return (theta + jnp.pi) % (2 * jnp.pi) - jnp.pi


def _batched(policy):
    """The policy on a ``(batch, o)`` array of observations, ``(batch, k)`` outputs."""
    return lambda observations: jax.vmap(policy, in_axes=(None, 0))(0.0, observations)


def _scan_variants(step, init, finish, unrolls=(1, 4)):
    """Hand-written closed loops from one ``step(policy_on, carry) -> carry``.

    ``init(ys)`` builds the carry from ``ys`` of shape ``(batch, n)``, the batch the last
    axis of every leaf; ``finish(carry)`` reads the per-episode values. ``step`` is
    written with ``...``-shaped arithmetic so that the same code serves both layouts, a
    scan per episode under ``vmap`` (scalar leaves) or one batch-major scan; it calls
    ``policy_on(observations)``, the policy on one observation or on a batch.
    """

    def per_episode(unroll):
        def run(policy, ys):
            def one(y):
                carry = jax.tree.map(lambda a: a[..., 0], init(y[None]))  # batch: last axis

                def body(carry, _):
                    return step(lambda o: policy(0.0, o), carry), None

                carry, _ = jax.lax.scan(body, carry, None, length=STEPS, unroll=unroll)
                return finish(carry)

            return jax.vmap(one)(ys)

        return run

    def batch_major(unroll):
        def run(policy, ys):
            policy_on = _batched(policy)

            def body(carry, _):
                return step(policy_on, carry), None

            carry, _ = jax.lax.scan(body, init(ys), None, length=STEPS, unroll=unroll)
            return finish(carry)

        return run

    variants = {}
    for unroll in unrolls:
        suffix = "" if unroll == 1 else f", unroll {unroll}"
        variants[f"per-episode{suffix}"] = per_episode(unroll)
        variants[f"batch-major{suffix}"] = batch_major(unroll)
    return variants


def _diffsim(env, objective=None, unroll=1):
    def run(policy, ys):
        def one(y):
            trajectory = diffsim.rollout(env, policy, y, num_steps=STEPS, unroll=unroll)
            return trajectory.total_cost if objective is None else objective(env, trajectory)

        return jax.vmap(one)(ys)

    return run


def _diffsim_contenders(env, objective=None, gradient=True):
    """``diffsim.rollout`` as it comes (``"diffsim"``, the reference of the correctness
    checks), with ``unroll=4``, the hand scans' unroll, and as it comes once more
    (``"control"``: the same program, compiled and timed separately)."""
    contenders = []
    for name, role, unroll in (
        ("diffsim", "diffsim", 1),
        (f"diffsim: unroll {DIFFSIM_UNROLL}", "diffsim", DIFFSIM_UNROLL),
        (CONTROL, "control", 1),
    ):
        loss = _diffsim(env, objective, unroll) if gradient else None
        contenders.append(Contender(name, role, _diffsim(env, unroll=unroll), loss))
    return contenders


# --- pendulum, gym's semi-implicit Euler ------------------------------------------------


def _pendulum_observation(theta, theta_dot):
    return jnp.stack([jnp.cos(theta), jnp.sin(theta), theta_dot], axis=-1)


def _pendulum_cost(theta, theta_dot, u):
    return _angle_normalize(theta) ** 2 + 0.1 * theta_dot**2 + 0.001 * u**2


def _pendulum_torque(policy_on, theta, theta_dot):
    output = policy_on(_pendulum_observation(theta, theta_dot))[..., 0]
    return jnp.clip(output, -MAX_TORQUE, MAX_TORQUE)


def _pendulum_gym_step(policy_on, carry):
    theta, theta_dot, total = carry
    u = _pendulum_torque(policy_on, theta, theta_dot)
    total = total + _pendulum_cost(theta, theta_dot, u)
    acceleration = 3 * PEND_G / (2 * PEND_L) * jnp.sin(theta) + 3.0 / (PEND_M * PEND_L**2) * u
    theta_dot = jnp.clip(theta_dot + acceleration * PEND_DT, -MAX_SPEED, MAX_SPEED)
    return theta + theta_dot * PEND_DT, theta_dot, total


def _pendulum_init(ys):
    return ys[:, 0], ys[:, 1], jnp.zeros(ys.shape[:1], ys.dtype)


def _gymnax_pendulum(policy, ys):
    """gymnax's own Pendulum-v1: ``step_env`` in a scan, the batch ``vmap``-ed."""
    env, params = gymnax.make("Pendulum-v1")
    state = gymnax.environments.classic_control.pendulum.EnvState(
        theta=ys[:, 0],
        theta_dot=ys[:, 1],
        last_u=jnp.zeros(ys.shape[:1], ys.dtype),
        time=jnp.zeros(ys.shape[:1], jnp.int32),
    )
    step = jax.vmap(env.step_env, in_axes=(None, 0, 0, None))
    policy_on = _batched(policy)

    def body(carry, _):
        observation, state, total_reward = carry
        observation, state, reward, _, _ = step(GYMNAX_KEY, state, policy_on(observation), params)
        return (observation, state, total_reward + reward), None

    init = (jax.vmap(env.get_obs)(state), state, jnp.zeros(ys.shape[:1], ys.dtype))
    (_, _, total_reward), _ = jax.lax.scan(body, init, None, length=STEPS)
    return -total_reward


# --- pendulum, the ODE with Tsit5 ---------------------------------------------------------


_TSIT5 = dfx.Tsit5.tableau
# Stages 2..6 (the 7th row is the first-same-as-last stage, unused by a restarted step).
_A = [[float(a) for a in row] for row in _TSIT5.a_lower[:5]]
_B = [float(b) for b in _TSIT5.b_sol[:6]]
_A_ROWS = [np.asarray(row, np.float32) for row in _A]
_B_ROW = np.asarray(_B, np.float32)


def _pendulum_field(y, u):
    """``d(theta, theta_dot)/dt`` on a stacked ``(2, ...)`` state."""
    theta, theta_dot = y[0], y[1]
    acceleration = 3 * PEND_G / (2 * PEND_L) * jnp.sin(theta) + 3.0 / (PEND_M * PEND_L**2) * u
    saturated = (theta_dot >= MAX_SPEED) & (acceleration > 0) | (theta_dot <= -MAX_SPEED) & (
        acceleration < 0
    )
    return jnp.stack([theta_dot, jnp.where(saturated, 0.0, acceleration)])


def _tsit5_sums(y, u, h):
    """One Tsit5 step, stage sums as Python sums of constant-weighted stages."""
    ks = [_pendulum_field(y, u)]
    for row in _A:
        ks.append(_pendulum_field(y + h * sum(a * k for a, k in zip(row, ks, strict=True)), u))
    return y + h * sum(b * k for b, k in zip(_B, ks, strict=True))


def _tsit5_dots(y, u, h):
    """One Tsit5 step, stage sums as a dot of the tableau row with the stacked stages."""
    ks = [_pendulum_field(y, u)]
    for row in _A_ROWS:
        ks.append(_pendulum_field(y + h * jnp.tensordot(row, jnp.stack(ks), axes=1), u))
    return y + h * jnp.tensordot(_B_ROW, jnp.stack(ks), axes=1)


def _pendulum_ode_step(rk_step):
    h = PEND_DT / ODE_SUBSTEPS

    def step(policy_on, carry):
        y, total = carry
        u = _pendulum_torque(policy_on, y[0], y[1])
        total = total + _pendulum_cost(y[0], y[1], u)
        y, _ = jax.lax.scan(lambda y, _: (rk_step(y, u, h), None), y, None, length=ODE_SUBSTEPS)
        return y, total

    return step


def _ode_variants():
    init = lambda ys: (ys.T, jnp.zeros(ys.shape[:1], ys.dtype))  # noqa: E731
    finish = lambda carry: carry[1]  # noqa: E731
    variants = {}
    for label, rk_step in (("sums", _tsit5_sums), ("dots", _tsit5_dots)):
        for name, run in _scan_variants(_pendulum_ode_step(rk_step), init, finish, (1,)).items():
            variants[f"{name}, {label}"] = run
    return variants


# --- cart-pole, gym's explicit Euler ----------------------------------------------------


def _cartpole_euler(x, x_dot, theta, theta_dot, force):
    """Gym CartPole-v1's step, in its order of operations."""
    cos_theta, sin_theta = jnp.cos(theta), jnp.sin(theta)
    temp = (force + POLEMASS_LENGTH * jnp.square(theta_dot) * sin_theta) / TOTAL_MASS
    theta_acc = (CART_G * sin_theta - cos_theta * temp) / (
        HALF_LENGTH * (4.0 / 3.0 - POLE_MASS * jnp.square(cos_theta) / TOTAL_MASS)
    )
    x_acc = temp - POLEMASS_LENGTH * theta_acc * cos_theta / TOTAL_MASS
    return (
        x + CART_DT * x_dot,
        x_dot + CART_DT * x_acc,
        theta + CART_DT * theta_dot,
        theta_dot + CART_DT * theta_acc,
    )


def _failed(x, theta):
    return (jnp.abs(x) > X_THRESHOLD) | (jnp.abs(theta) > THETA_THRESHOLD)


def _continuous_force(policy_on, state):
    return jnp.clip(policy_on(jnp.stack(state, axis=-1))[..., 0], -FORCE, FORCE)


def _discrete_force(policy_on, state):
    logits = policy_on(jnp.stack(state, axis=-1))
    return jnp.where(logits[..., 1] > logits[..., 0], FORCE, -FORCE)  # arg-max, ties to 0


def _cartpole_count_step(force_of):
    """The summed cost: -1 per step begun alive; the state needs no freezing."""

    def step(policy_on, carry):
        state, alive, total = carry
        state = _cartpole_euler(*state, force_of(policy_on, state))
        total = total - alive.astype(total.dtype)
        return state, alive & ~_failed(state[0], state[2]), total

    return step


def _cartpole_count_variants(force_of):
    def init(ys):
        batch = ys.shape[:1]
        return tuple(ys.T), jnp.ones(batch, bool), jnp.zeros(batch, ys.dtype)

    return _scan_variants(_cartpole_count_step(force_of), init, lambda carry: carry[2])


def _cartpole_shaped_step(policy_on, carry):
    """``shaped_balance_loss``'s running sum, states frozen after termination."""
    state, alive, total = carry
    stepped = _cartpole_euler(*state, _continuous_force(policy_on, state))
    state = tuple(jnp.where(alive, new, old) for new, old in zip(stepped, state, strict=True))
    total = total + (state[0] / X_THRESHOLD) ** 2 + (state[2] / THETA_THRESHOLD) ** 2
    return state, alive & ~_failed(state[0], state[2]), total


def _cartpole_shaped_variants():
    def init(ys):
        batch = ys.shape[:1]
        return tuple(ys.T), jnp.ones(batch, bool), jnp.zeros(batch, ys.dtype)

    return _scan_variants(_cartpole_shaped_step, init, lambda carry: carry[2] / STEPS)


def _gymnax_cartpole(policy, ys):
    """gymnax's own CartPole-v1: ``step_env`` in a scan, arg-max of the policy's logits.

    ``step_env`` keeps stepping after ``done`` (gymnax resets in ``step``), and the policy
    can push the pole back inside the box, so the episode's return masks rewards after the
    first ``done``, as diffsim's rollout does."""
    env, params = gymnax.make("CartPole-v1")
    state = gymnax.environments.classic_control.cartpole.EnvState(
        x=ys[:, 0],
        x_dot=ys[:, 1],
        theta=ys[:, 2],
        theta_dot=ys[:, 3],
        time=jnp.zeros(ys.shape[:1], jnp.int32),
    )
    step = jax.vmap(env.step_env, in_axes=(None, 0, 0, None))
    policy_on = _batched(policy)

    def body(carry, _):
        observation, state, alive, total_reward = carry
        action = jnp.argmax(policy_on(observation), axis=-1)
        observation, state, reward, done, _ = step(GYMNAX_KEY, state, action, params)
        total_reward = total_reward + jnp.where(alive, reward, 0.0)
        return (observation, state, alive & ~done, total_reward), None

    batch = ys.shape[:1]
    init = (jax.vmap(env.get_obs)(state), state, jnp.ones(batch, bool), jnp.zeros(batch, ys.dtype))
    (_, _, _, total_reward), _ = jax.lax.scan(body, init, None, length=STEPS)
    return -total_reward


# --- the problems -------------------------------------------------------------------------


def _problems(max_batch: int) -> list[Problem]:
    key = jr.key(0)
    problems = []

    env = Pendulum(transition=pendulum.GymEuler())
    gym_variants = _scan_variants(_pendulum_gym_step, _pendulum_init, lambda carry: carry[2])
    problems.append(
        Problem(
            "pendulum_gym",
            "pendulum, gym Pendulum-v1 semi-implicit Euler",
            MLPPolicy.for_env(env, width=64, depth=2, key=key),
            diffsim.initial_states(env, max_batch, seed=0),
            _diffsim_contenders(env)
            + [Contender(f"scan: {n}", "scan", run, run) for n, run in gym_variants.items()]
            + [Contender("gymnax step_env", "gymnax", _gymnax_pendulum, None)],
        )
    )

    env = Pendulum()
    problems.append(
        Problem(
            "pendulum_ode",
            f"pendulum, ODE, {ODE_SUBSTEPS} Tsit5 steps per interval",
            MLPPolicy.for_env(env, width=64, depth=2, key=key),
            diffsim.initial_states(env, max_batch, seed=0),
            _diffsim_contenders(env)
            + [Contender(f"scan: {n}", "scan", run, run) for n, run in _ode_variants().items()],
        )
    )

    env = CartPole(transition=cartpole.GymEuler(), action="continuous")
    counts = _cartpole_count_variants(_continuous_force)
    shaped = _cartpole_shaped_variants()
    problems.append(
        Problem(
            "cartpole_gym_continuous",
            "cart-pole, gym CartPole-v1 Euler, continuous force (gradient of shaped_balance_loss)",
            MLPPolicy.for_env(env, width=64, depth=2, key=key),
            diffsim.initial_states(env, max_batch, seed=0),
            _diffsim_contenders(env, cartpole.shaped_balance_loss)
            + [Contender(f"scan: {n}", "scan", counts[n], shaped[n]) for n in counts],
        )
    )

    env = CartPole(transition=cartpole.GymEuler())
    counts = _cartpole_count_variants(_discrete_force)
    problems.append(
        Problem(
            "cartpole_gym_discrete",
            "cart-pole, gym CartPole-v1 Euler, discrete pushes (forward only)",
            MLPPolicy.for_env(env, width=64, depth=2, key=key),
            diffsim.initial_states(env, max_batch, seed=0),
            _diffsim_contenders(env, gradient=False)
            + [Contender(f"scan: {n}", "scan", run, None) for n, run in counts.items()]
            + [Contender("gymnax step_env", "gymnax", _gymnax_cartpole, None)],
        )
    )
    return problems


# --- measurement --------------------------------------------------------------------------


@dataclasses.dataclass
class _Budget:
    """Wall seconds the measurement may take (``None``: no limit) and what to do with the
    record after each part; once the seconds are spent no further part starts, and each
    part not started is named in the record's ``skipped``."""

    seconds: float | None
    after_each: Callable[[dict], None]
    started: float = dataclasses.field(default_factory=time.perf_counter)

    def spent(self, part: str, record: dict) -> bool:
        if self.seconds is None or time.perf_counter() - self.started < self.seconds:
            return False
        record.setdefault("skipped", []).append(part)
        print(f"  {part}: skipped, the budget of {self.seconds:g} s is spent")
        return True


def integers(text: str) -> list[int]:
    """``"1,16,256"`` -> ``[1, 16, 256]``; an empty string, none (the command lines' lists)."""
    return [int(item) for item in text.split(",") if item]


def _listed(batches: list[int]) -> str:
    return ", ".join(str(batch) for batch in batches)


def _program(objective: PerEpisode, policy, mode: str):
    """One jitted function of ``(policy arrays, ys)``: the batch mean, or its gradient."""
    params, static = eqx.partition(policy, eqx.is_array)

    def mean(params, ys):
        return jnp.mean(objective(eqx.combine(params, static), ys))

    return params, jax.jit(mean if mode == "forward" else jax.grad(mean))


def _relative_error(value, reference):
    leaves = jax.tree.leaves(jax.tree.map(lambda a, b: jnp.sum((a - b) ** 2), value, reference))
    norms = jax.tree.leaves(jax.tree.map(lambda b: jnp.sum(b**2), reference))
    return math.sqrt(float(sum(leaves)) / max(float(sum(norms)), 1e-30))


def _check_forward(problem: Problem) -> float:
    """Per-episode objectives of every contender against diffsim's; returns the worst."""
    ys = problem.y0[:CHECK_EPISODES]
    worst = 0.0
    for objective_of in (lambda c: c.cost, lambda c: c.loss):
        values = {}
        for contender in problem.contenders:
            objective = objective_of(contender)
            if objective is not None:
                values[contender.name] = np.asarray(eqx.filter_jit(objective)(problem.policy, ys))
        reference = values.pop("diffsim", None)
        for name, value in values.items():
            error = float(np.max(np.abs(value - reference) / np.maximum(np.abs(reference), 1e-6)))
            assert error <= FORWARD_RTOL, (
                f"{problem.name}: {name} disagrees with diffsim (relative {error:.2e})\n"
                f"{value}\n{reference}"
            )
            worst = max(worst, error)
    return worst


def _compile(programs: dict, args: dict) -> tuple[dict, dict]:
    """First calls (compile seconds: first call minus a warm one) and how many calls make
    one repeat last at least ``MIN_REPEAT_S``."""
    compile_s, number = {}, {}
    for name, program in programs.items():
        started = time.perf_counter()
        jax.block_until_ready(program(*args[name]))
        first = time.perf_counter() - started
        started = time.perf_counter()
        jax.block_until_ready(program(*args[name]))
        once = time.perf_counter() - started
        compile_s[name] = max(first - once, 0.0)
        number[name] = max(1, math.ceil(MIN_REPEAT_S / once))
    return compile_s, number


def _time(programs: dict, args: dict, number: dict, repeats: int) -> dict:
    """Median seconds per call of each program; repeats interleave the programs, in an
    order rotated each repeat."""
    times = {name: [] for name in programs}
    names = list(programs)
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            program, call = programs[name], args[name]
            started = time.perf_counter()
            for _ in range(number[name]):
                jax.block_until_ready(program(*call))
            times[name].append((time.perf_counter() - started) / number[name])
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def _check_gradients(problem: Problem, programs: dict, args: dict) -> float:
    reference = programs["diffsim"](*args["diffsim"])
    worst = 0.0
    for name, program in programs.items():
        error = _relative_error(program(*args[name]), reference)
        assert error <= GRADIENT_RTOL, (
            f"{problem.name}: {name}'s gradient disagrees with diffsim's (relative {error:.2e})"
        )
        worst = max(worst, error)
    return worst


def _run_problem(
    problem: Problem, batches: list[int], repeats: int, record: dict, budget: _Budget
) -> None:
    """Times every contender at each batch, forward then gradient, batch by batch; fills
    ``record`` and hands it to ``budget.after_each`` after each batch, and starts no batch
    once the budget is spent."""
    if budget.spent(f"{problem.name} at batches {_listed(batches)}", record):
        return
    worst_forward = _check_forward(problem)
    worst_gradient = None
    results = {}  # (mode, batch, contender name) -> (steps/s, compile s)
    measured, table = [], []
    for index, batch in enumerate(batches):
        if index and budget.spent(f"{problem.name} at batches {_listed(batches[index:])}", record):
            break
        for mode in MODES:
            programs, args = {}, {}
            for contender in problem.contenders:
                objective = contender.cost if mode == "forward" else contender.loss
                if objective is not None:
                    params, programs[contender.name] = _program(objective, problem.policy, mode)
                    args[contender.name] = (params, problem.y0[:batch])
            if not programs:
                continue
            compile_s, number = _compile(programs, args)
            if mode == "gradient" and worst_gradient is None:
                worst_gradient = _check_gradients(problem, programs, args)
            for name, seconds in _time(programs, args, number, repeats).items():
                results[mode, batch, name] = (batch * STEPS / seconds, compile_s[name])
        measured.append(batch)
        table = _report(problem, measured, results, record)
        budget.after_each(record)
    print("\n".join(table))
    checked = f"  checked: objectives agree with diffsim's to {worst_forward:.1e} relative"
    if worst_gradient is not None:
        checked += f", gradients (batch {batches[0]}) to {worst_gradient:.1e}"
    print(checked + "\n")


def _report(problem: Problem, batches: list[int], results: dict, record: dict) -> list[str]:
    """Fills ``record`` and returns the problem's table as lines; a role's rate is its
    fastest contender's (the fastest hand-written variant for ``scan``)."""
    lines = [
        f"{problem.title}; {STEPS} steps, 64x64 tanh MLP",
        f"  {'contender':<30}{'batch':>6}{'fwd steps/s':>14}{'grad steps/s':>14}"
        f"{'compile s':>11}{'diffsim/ref fwd':>17}{'grad':>7}",
    ]
    for batch in batches:
        best = {}  # (role, mode) -> (steps/s, compile s, contender name)
        for mode in MODES:
            for contender in problem.contenders:
                if (mode, batch, contender.name) in results:
                    rate, compile_s = results[mode, batch, contender.name]
                    previous = best.get((contender.role, mode))
                    if previous is None or rate > previous[0]:
                        best[contender.role, mode] = (rate, compile_s, contender.name)
        for role, label in ROLES.items():
            if not any((role, mode) in best for mode in MODES):
                continue
            cells, compiles, ratios = [], [], []
            for mode in MODES:
                key = f"{problem.name}_{MODES[mode]}_b{batch}"
                if (role, mode) not in best:
                    cells.append("n/a")
                    ratios.append("n/a" if role != "diffsim" else "")
                    continue
                rate, compile_s, name = best[role, mode]
                cells.append(f"{rate:,.0f}")
                compiles.append(f"{compile_s:.1f}")
                record[f"{key}_{role}_steps_per_s"] = round(rate)
                if role == "diffsim":
                    ratios.append("")
                    continue
                ratio = best["diffsim", mode][0] / rate
                ratios.append(f"{ratio:.2f}")
                record[f"{key}_vs_{role}_ratio"] = round(ratio, 3)
                if role == "scan":
                    record[f"{key}_scan_variant"] = name.removeprefix("scan: ")
                    record[f"{key}_diffsim_variant"] = best["diffsim", mode][2]
            lines.append(
                f"  {label:<30}{batch:>6}{cells[0]:>14}{cells[1]:>14}"
                f"{'/'.join(compiles):>11}{ratios[0]:>17}{ratios[1]:>7}"
            )
        for role in ("diffsim", "scan"):
            winners = [
                f"{mode} {best[role, mode][2].removeprefix(f'{role}: ')}"
                for mode in MODES
                if (role, mode) in best
            ]
            if winners:
                lines.append(f"  {'':<36}fastest {role} variant: {'; '.join(winners)}")
        defaults = []  # diffsim as it comes (unroll 1) against the fastest scan
        for mode in MODES:
            if ("scan", mode) in best and (mode, batch, "diffsim") in results:
                ratio = results[mode, batch, "diffsim"][0] / best["scan", mode][0]
                record[f"{problem.name}_{MODES[mode]}_b{batch}_default_vs_scan_ratio"] = round(
                    ratio, 3
                )
                defaults.append(f"{mode} {ratio:.2f}")
        if defaults:
            lines.append(f"  {'':<36}diffsim unroll 1 / fastest scan: {'; '.join(defaults)}")
        controls = []  # two timings of one program: how far apart noise puts them
        for mode in MODES:
            if (mode, batch, CONTROL) in results:
                ratio = results[mode, batch, "diffsim"][0] / results[mode, batch, CONTROL][0]
                record[f"{problem.name}_{MODES[mode]}_b{batch}_control_ratio"] = round(ratio, 3)
                controls.append(f"{mode} {ratio:.2f}")
        if controls:
            lines.append(f"  {'':<36}noise, diffsim / itself compiled again: {'; '.join(controls)}")
    return lines


def _machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    device = jax.devices()[0]
    return f"{model}, {os.cpu_count()} cores, jax {device.platform} ({device.device_kind})"


class _Reached(Exception):
    """Raised from the training callback at the first evaluation at the target."""


def _time_to_target(batches: list[int], target: float, record: dict, budget: _Budget) -> None:
    """Wall seconds for the pendulum recipe to reach ``target`` at each batch size."""
    recipe = diffsim.load_recipe("pendulum")
    compile_clock = [0.0]
    compile_events = {
        "/jax/core/compile/jaxpr_trace_duration",
        "/jax/core/compile/jaxpr_to_mlir_module_duration",
        "/jax/core/compile/backend_compile_duration",
    }

    def listen(event, duration, **_):
        if event in compile_events:
            compile_clock[0] += duration

    jax.monitoring.register_event_duration_secs_listener(listen)
    window = recipe.train_options["window"]
    print(f"time to train the pendulum to {target} (recipe 'pendulum', seed 0)")
    print(f"  {'batch':>6}{'seconds':>10}{'compile s':>11}{'updates':>9}{'env steps':>12}")
    for index, batch in enumerate(batches):
        if budget.spent(f"training at batches {_listed(batches[index:])}", record):
            break
        reached = {}
        env = recipe.make_env()
        controller_key, train_key = jr.split(jr.key(0))
        controller = recipe.make_controller(env, controller_key)

        def callback(iteration, metrics, reached=reached):
            if metrics.get("eval_return", -math.inf) >= target:
                reached.update(iteration=iteration, eval_return=metrics["eval_return"])
                raise _Reached

        compile_before = compile_clock[0]
        started = time.perf_counter()
        try:
            diffsim.train(
                env,
                controller,
                recipe.make_optimiser(recipe.iterations),
                key=train_key,
                iterations=recipe.iterations,
                progress=False,
                callback=callback,
                **(recipe.train_options | {"batch_size": batch}),
            )
        except _Reached:
            pass
        seconds = time.perf_counter() - started
        compile_s = compile_clock[0] - compile_before
        key = f"pendulum_train_b{batch}"
        if reached:
            steps = reached["iteration"] * batch * window
            print(
                f"  {batch:>6}{seconds:>10.1f}{compile_s:>11.1f}{reached['iteration']:>9}"
                f"{steps:>12,}"
            )
            record[f"{key}_seconds_to_{-target:g}"] = round(seconds, 2)
            record[f"{key}_updates_to_{-target:g}"] = reached["iteration"]
        else:
            print(f"  {batch:>6}  not reached in {recipe.iterations} updates ({seconds:.1f} s)")
            record[f"{key}_seconds_to_{-target:g}"] = None
        record[f"{key}_compile_s"] = round(compile_s, 2)
        budget.after_each(record)
    print()


def measure(
    batches: list[int],
    repeats: int,
    problems: list[str],
    train_batches: list[int],
    target: float,
    after_each: Callable[[dict], None] = lambda record: None,
    budget_s: float | None = None,
) -> dict:
    """Runs the selected problems and the time to ``target``, printing each table; returns
    the record (the JSON line's fields), also handed to ``after_each`` after each part (a
    problem's batch, a training run). With ``budget_s``, no part starts after that many
    seconds: a run on borrowed time keeps what it measured."""
    budget = _Budget(budget_s, after_each)
    record = {
        "benchmark": "rollout_throughput",
        "machine": _machine(),
        "jax": jax.__version__,
        "gymnax": importlib.metadata.version("gymnax"),
        "steps": STEPS,
        "repeats": repeats,
    }
    for problem in _problems(max(max(batches), CHECK_EPISODES)):
        if problem.name in problems:
            _run_problem(problem, batches, repeats, record, budget)
    if train_batches:
        _time_to_target(train_batches, target, record, budget)
    record["wall_s"] = round(time.perf_counter() - budget.started, 1)
    after_each(record)
    return record


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", default="1,16,256,4096,65536")
    parser.add_argument("--train-batches", default="32,128,512")
    parser.add_argument("--target", type=float, default=TARGET)
    parser.add_argument(
        "--problems",
        default="pendulum_gym,pendulum_ode,cartpole_gym_continuous,cartpole_gym_discrete",
    )
    args = parser.parse_args()
    record = measure(
        integers(args.batches),
        args.repeats,
        args.problems.split(","),
        integers(args.train_batches),
        args.target,
    )
    print(json.dumps(record))


if __name__ == "__main__":
    main()
