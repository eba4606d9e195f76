"""Toy envs and policies shared by the tests: small, exactly solvable where it helps, and
defined once so that their compiled programs are shared too."""

import dataclasses
import json
import subprocess
import sys

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float

import diffsim
from diffsim import MLPPolicy
from diffsim.controllers import Mirrored
from diffsim.envs import Pendulum, pendulum


class Oscillator(diffsim.AbstractEnv):
    """A 1 kg mass on a spring of ``stiffness`` (N/m) with ``damping`` (N s/m), pushed by a
    force ``u`` in [-1, 1] N. State ``(x, v)``: position (m) and speed (m/s); the episode
    ends beyond 3 m."""

    stiffness: Float[Array, ""] = diffsim.parameter(4.0, positive=True)
    damping: Float[Array, ""] = diffsim.parameter(0.5)
    control_dt: float = eqx.field(static=True, default=0.1)
    episode_steps: int = eqx.field(static=True, default=50)

    @property
    def action_space(self):
        return diffsim.Box(-1.0, 1.0)

    def vector_field(self, t, y, u):
        return jnp.stack([y[1], -self.stiffness * y[0] - self.damping * y[1] + u[0]])

    def initial_state(self, key):
        return jr.uniform(key, (2,), minval=-1.0, maxval=1.0)

    def running_cost(self, t, y, u):
        return y[0] ** 2 + 0.1 * y[1] ** 2 + 0.01 * u[0] ** 2

    def termination(self, y):
        return jnp.abs(y[0]) > 3.0


class Rising(diffsim.AbstractEnv):
    """Rises at 1 m/s from 0; ends above ``ceiling`` m; costs 1 per step. A closed form for
    every quantity a rollout reports."""

    control_dt: float = 0.1
    episode_steps: int = 10
    ceiling: float = eqx.field(static=True, default=0.35)

    @property
    def action_space(self):
        return diffsim.Box(-1.0, 1.0)

    def vector_field(self, t, y, u):
        return jnp.ones(1)

    def initial_state(self, key):
        return jnp.zeros(1)

    def running_cost(self, t, y, u):
        return jnp.array(1.0)

    def termination(self, y):
        return y[0] > self.ceiling

    def terminal_cost(self, y):
        return 10.0 * y[0]


class Integrator(diffsim.AbstractEnv):
    """``dy/dt = u``: a user's minimal env, with the default transition."""

    control_dt: float = 0.1
    episode_steps: int = 10
    action_space = property(lambda self: diffsim.Box(-1.0, 1.0))

    def vector_field(self, t, y, u):
        return u

    def initial_state(self, key):
        return jnp.zeros(1)

    def running_cost(self, t, y, u):
        return y[0] ** 2


ROCKET = """
import jax.numpy as jnp, jax.random as jr
import diffsim

class Rocket(diffsim.AbstractEnv):
    mass: float = diffsim.parameter(2.0, positive=True)
    gravity: float = diffsim.parameter(9.81, positive=True)
    control_dt: float = 0.1
    episode_steps: int = 100

    @property
    def action_space(self):
        return diffsim.Box(0.0, 40.0)

    def vector_field(self, t, y, u):
        return jnp.stack([y[1], u[0] / self.mass - self.gravity])

    def initial_state(self, key):
        return jnp.stack([jr.uniform(key, (), minval=0.0, maxval=1.0), 0.0])

    def running_cost(self, t, y, u):
        return (y[0] - 10.0) ** 2 + 0.01 * u[0] ** 2
"""
"""A user's env file, as `diffsim train rocket.py:Rocket` reads it."""


def pendulum_policy(key: int = 0, env: Pendulum | None = None) -> Mirrored:
    """The pendulum recipe's controller: a mirror-symmetric 64x64 MLP."""
    env = Pendulum() if env is None else env
    return Mirrored(
        MLPPolicy.for_env(env, observation_scale=(1.0, 1.0, 8.0), key=jr.key(key)),
        observation_signs=(1.0, -1.0, -1.0),
        output_signs=(-1.0,),
    )


PENDULUM_200K_WINDOWS = dataclasses.replace(
    pendulum.budget_200k_recipe,
    name="pendulum-200k-windows",
    iterations=pendulum.SHAC_200K_SETTINGS["iterations"],
    make_optimiser=lambda iterations: pendulum.SHAC_200K_SETTINGS["optimiser"],
    train_options=dict(batch_size=1, window=20, horizon=40, eval_every=10_000, eval_episodes=20),
)
"""The `pendulum-200k` recipe's SHAC settings and their budget (10,000 updates of 1 episode
x 20 steps cut after 40, 200,000 env steps, the same actor and optimiser) as the recipe's ``dp``:
windowed BPTT with nothing beyond each window, which ``diffsim compare
helpers:PENDULUM_200K_WINDOWS --methods dp,shac`` sets against SHAC."""


_CLI_CASES = """
import contextlib, io, json, sys, traceback, warnings
from diffsim.cli import main

outcomes = []
for argv in json.loads(sys.stdin.read()):
    print("cli_outcomes case:", json.dumps(argv), file=sys.stderr, flush=True)  # if it hangs
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        with warnings.catch_warnings():  # a warning shown to every case, not only the first
            try:
                code = main(argv)
            except SystemExit as exit:  # what the console script exits with
                code = exit.code
            except BaseException:
                code = None
                traceback.print_exc()
    outcomes.append([code, out.getvalue(), err.getvalue()])
print(json.dumps(outcomes))
"""


def cli_outcomes(argvs: list[list[str]]) -> list[tuple[int | None, str, str]]:
    """``(exit status, stdout, stderr)`` of each command line in ``argvs``, run by
    ``diffsim.cli.main`` in turn in one fresh Python process: outside the suite's runtime
    type checks (which would answer first), as a user runs them, with the imports paid once
    rather than once per case. An exception escaping ``main`` is status ``None``, its
    traceback on stderr; anything the process writes outside the cases' redirected
    streams fails, as it would have reached the user's terminal."""
    done = subprocess.run(
        [sys.executable, "-c", _CLI_CASES],
        input=json.dumps(argvs),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # nothing written around the cases' own redirected streams
    stray = [line for line in done.stderr.splitlines() if not line.startswith("cli_outcomes case:")]
    assert not stray, done.stderr[-3000:]
    (line,) = done.stdout.splitlines()
    return [tuple(outcome) for outcome in json.loads(line)]
