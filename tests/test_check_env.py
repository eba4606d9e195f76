"""diffsim.testing.check_env: every shipped env keeps the contract, and each way a user's
env can break it raises a DiffsimError naming the method, what was expected and what came
back (or, for a plain float field, a ContractWarning naming the field)."""

import re
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, Float

import diffsim
from diffsim import MLPPolicy
from diffsim.envs import Acrobot, CartPole, Epidemic, Pendulum, PlanarQuadrotor, cartpole, pendulum
from diffsim.testing import ContractWarning, check_env

from helpers import Oscillator

ALL_CHECKS = (
    "fields",
    "action_space",
    "initial_state",
    "observe",
    "observation_bounds",
    "controller",
    "vector_field",
    "transition",
    "running_cost",
    "terminal_cost",
    "termination",
    "step",
    "variables",
    "jit",
    "vmap",
    "rollout",
    "rollout_jit",
    "rollout_vmap",
    "gradients",
    "finite_differences",
)
CARTPOLE_PARAMETERS = (
    "g",
    "cart_mass",
    "pole_mass",
    "half_length",
    "force",
    "x_threshold",
    "theta_threshold",
)
DISCRETE_SKIP = "finite_differences (controller)"


# ---------------------------------------------------------------------------------------
# Shipped envs: `make test` checks the pendulum and the cart-pole (about 10 s each);
# `make test-all` every env


@pytest.mark.parametrize(
    "env, sizes, zero_gradients, fd_groups",
    [
        pytest.param(
            Pendulum(),
            (2, 3, 1, 1),
            ("max_speed", "max_torque"),
            ("controller", "parameters", "initial state"),
            id="pendulum",
        ),
        pytest.param(
            Pendulum(transition=pendulum.GymEuler()),
            (2, 3, 1, 1),
            ("max_speed", "max_torque"),
            ("controller", "parameters", "initial state"),
            id="pendulum-gym-euler",
        ),
        pytest.param(
            CartPole(),
            (4, 4, 2, 1),
            ("controller", *CARTPOLE_PARAMETERS),
            ("parameters", "initial state"),
            id="cartpole-discrete",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            CartPole(action="continuous"),
            (4, 4, 1, 1),
            ("controller", *CARTPOLE_PARAMETERS),
            ("controller", "parameters", "initial state"),
            id="cartpole-continuous",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            CartPole(task="swingup", action="continuous"),
            (4, 5, 1, 1),
            ("controller", *CARTPOLE_PARAMETERS),
            ("controller", "parameters", "initial state"),
            id="cartpole-swingup",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            CartPole(transition=cartpole.GymEuler()),
            (4, 4, 2, 1),
            ("controller", *CARTPOLE_PARAMETERS),
            ("parameters", "initial state"),
            id="cartpole-gym-euler",
            marks=pytest.mark.slow,  # tests/test_cartpole.py checks the same step against gym
        ),
        # the discrete Acrobot passes too (its cost is piecewise constant, like the
        # cart-pole's); its continuous variant exercises the same physics with gradients
        pytest.param(
            Acrobot(action="continuous"),
            (4, 6, 1, 1),
            ("max_vel_1", "max_vel_2", "max_torque"),
            ("controller", "parameters", "initial state"),
            id="acrobot-continuous",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            PlanarQuadrotor(),
            (6, 7, 2, 2),
            ("max_thrust",),
            ("controller", "parameters", "initial state"),
            id="planar-quadrotor",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            Epidemic(),
            (3, 3, 1, 1),
            ("max_reduction",),
            ("controller", "parameters", "initial state"),
            id="epidemic",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_every_shipped_env_passes(env, sizes, zero_gradients, fd_groups):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ContractWarning)
        report = check_env(env)
    assert report.passed == ALL_CHECKS
    assert (
        report.state_size,
        report.observation_size,
        report.controller_size,
        report.control_size,
    ) == sizes
    # the cost of 5 steps does not see the speed and torque limits of the pendulum; the
    # cart-pole's cost (-1 per step alive, or per step upright) is piecewise constant
    assert report.zero_gradients == zero_gradients
    # measured: at most 2e-7 in float64, against the check's threshold of 1e-4
    assert tuple(report.fd_relative_errors) == fd_groups
    assert report.max_fd_relative_error < 1e-6
    assert report.jit_difference < 1e-5 and report.vmap_difference < 1e-5
    assert report.warnings == ()
    if isinstance(env.action_space, diffsim.Discrete):  # discrete pushes
        assert "piecewise constant" in report.skipped[DISCRETE_SKIP]
    else:
        assert report.skipped == {}


# ---------------------------------------------------------------------------------------
# A correct toy env, and the ways users break it


class CostOfShape1(Oscillator):
    def running_cost(self, t, y, u):
        return jnp.stack([y[0] ** 2])


class TerminalCostPerComponent(Oscillator):
    def terminal_cost(self, y):
        return y**2


class VectorFieldTooLong(Oscillator):
    def vector_field(self, t, y, u):
        return jnp.stack([y[1], -self.stiffness * y[0], u[0]])


class PythonBoolTermination(Oscillator):
    def termination(self, y):
        return bool(jnp.abs(y[0]) > 3.0)


class OrTermination(Oscillator):
    def termination(self, y):
        return (y[0] > 3.0) or (y[0] < -3.0)  # works eagerly, not under jit


class FloatTermination(Oscillator):
    def termination(self, y):
        return jnp.abs(y[0]) - 3.0


class ScalarObserve(Oscillator):
    def observe(self, y):
        return y[0]


class BoundsOfTheWrongLength(Oscillator):
    @property
    def observation_bounds(self):
        return -jnp.ones(3), jnp.ones(3)


class TooNarrowBounds(Oscillator):
    @property
    def observation_bounds(self):
        return -0.01 * jnp.ones(2), 0.01 * jnp.ones(2)


class NumpyRandomStart(Oscillator):
    def initial_state(self, key):
        return jnp.asarray(np.random.default_rng().uniform(-1.0, 1.0, 2))


class IntegerStart(Oscillator):
    def initial_state(self, key):
        return jnp.zeros(2, dtype=int)


class ColumnStart(Oscillator):
    def initial_state(self, key):
        return jnp.zeros((2, 1))


class NaNCost(Oscillator):
    def running_cost(self, t, y, u):
        return jnp.sqrt(y[0] - 2.0)  # the start is in [-1, 1]


class InfiniteVectorField(Oscillator):
    def vector_field(self, t, y, u):
        return jnp.stack([y[1], u[0] / (y[0] - y[0])])


class NoisyVectorField(Oscillator):
    def vector_field(self, t, y, u):
        noise = np.random.default_rng().normal()
        return jnp.stack([y[1], -self.stiffness * y[0] + u[0] + noise])


class PythonIfVectorField(Oscillator):
    def vector_field(self, t, y, u):
        spring = -self.stiffness * y[0] if y[0] > 0 else -2 * self.stiffness * y[0]
        return jnp.stack([y[1], spring + u[0]])


class FloatOfParameter(Oscillator):
    def vector_field(self, t, y, u):
        return jnp.stack([y[1], -float(self.stiffness) * y[0] + u[0]])


class CallbackVectorField(Oscillator):
    def vector_field(self, t, y, u):
        shape = jax.ShapeDtypeStruct((), y.dtype)
        spring = jax.pure_callback(lambda x: np.asarray(-4.0 * x, x.dtype), shape, y[0])
        return jnp.stack([y[1], spring + u[0]])


class OneComponentTransition(diffsim.AbstractTransition):
    def __call__(self, dynamics, t, y, u):
        return y[:1] + dynamics.control_dt * dynamics.vector_field(t, y, u)[:1]


class TupleActionSpace(Oscillator):
    @property
    def action_space(self):
        return (-1.0, 1.0)


class NormCostFromRest(Oscillator):
    def initial_state(self, key):
        return jnp.zeros(2)

    def running_cost(self, t, y, u):
        return jnp.linalg.norm(y)  # derivative 0/0 at rest


class StopGradientVectorField(Oscillator):
    def vector_field(self, t, y, u):
        spring = -self.stiffness * jax.lax.stop_gradient(y[0])
        return jnp.stack([y[1], spring - self.damping * y[1] + u[0]])


BROKEN = [
    (
        CostOfShape1(),
        r"CostOfShape1\.running_cost returned a float32 array of shape \(1,\), expected a "
        r"float32 array of shape \(\): a scalar: index or sum, e\.g\. cost\[0\]",
    ),
    (
        TerminalCostPerComponent(),
        r"TerminalCostPerComponent\.terminal_cost returned a float32 array of shape \(2,\), "
        r"expected a float32 array of shape \(\)",
    ),
    (
        VectorFieldTooLong(),
        r"VectorFieldTooLong\.vector_field returned a float32 array of shape \(3,\), expected "
        r"a float32 array of shape \(2,\): one time derivative per component of the state",
    ),
    (
        PythonBoolTermination(),
        r"PythonBoolTermination\.termination returned a Python bool \(False\), expected a JAX "
        r"boolean array of shape \(\): termination must return a JAX boolean, e\.g\. "
        r"jnp\.abs\(y\[0\]\) > 1",
    ),
    (
        OrTermination(),
        r"OrTermination\.termination fails under jax\.jit: TracerBoolConversionError: .*"
        r"termination must return a JAX boolean, e\.g\. jnp\.abs\(y\[0\]\) > 1",
    ),
    (
        FloatTermination(),
        r"FloatTermination\.termination returned a float32 array of shape \(\), expected a "
        r"JAX boolean array of shape \(\)",
    ),
    (
        ScalarObserve(),
        r"ScalarObserve\.observe returned a float32 array of shape \(\), expected a "
        r"floating-point array of shape \(o,\): a vector: wrap a scalar as jnp\.stack",
    ),
    (
        BoundsOfTheWrongLength(),
        r"BoundsOfTheWrongLength\.observation_bounds\[0\] \(low\) returned a float32 array of "
        r"shape \(3,\), expected a floating-point array of shape \(2,\): one bound per "
        r"component of the observation",
    ),
    (
        TooNarrowBounds(),
        r"TooNarrowBounds\.observe returned \[.*\] at the initial state \[.*\], outside "
        r"TooNarrowBounds\.observation_bounds: expected low \[-0\.01, -0\.01\] <= observation "
        r"<= high \[0\.01, 0\.01\]",
    ),
    (
        NumpyRandomStart(),
        r"NumpyRandomStart\.initial_state returned \[.*\] then \[.*\] when called twice "
        r"with one key, expected the same value twice: draw randomness only from "
        r"the key with jax\.random",
    ),
    (
        IntegerStart(),
        r"IntegerStart\.initial_state returned an int32 array of shape \(2,\), expected a "
        r"floating-point array of shape \(n,\): use floating-point values",
    ),
    (
        ColumnStart(),
        r"ColumnStart\.initial_state returned a float32 array of shape \(2, 1\), expected a "
        r"floating-point array of shape \(n,\): one vector, not a batch or a column",
    ),
    (
        NaNCost(),
        r"NaNCost\.running_cost returned nan at the initial state \[.*\], t = 0 s, control "
        r"u = \[.*\], expected finite values",
    ),
    (
        InfiniteVectorField(),
        r"InfiniteVectorField\.vector_field returned \[.*(inf|nan).*\] at the initial state .*"
        r"expected finite values",
    ),
    (
        NoisyVectorField(),
        r"NoisyVectorField\.vector_field returned \[.*\] then \[.*\] when called twice at "
        r"the initial state",
    ),
    (
        PythonIfVectorField(),
        r"PythonIfVectorField\.vector_field fails under jax\.jit: TracerBoolConversionError: "
        r".*jnp\.where or jax\.lax\.cond rather than a Python if",
    ),
    (
        FloatOfParameter(),
        r"FloatOfParameter\.vector_field fails under jax\.jit: ConcretizationTypeError: .*"
        r"no float\(\), int\(\) or bool\(\) of arrays \(parameters are traced too\)",
    ),
    (
        CallbackVectorField(),
        r"CallbackVectorField\.vector_field fails under jax\.vmap: NotImplementedError: vmap "
        r"is only supported for the pure_callback primitive when vmap_method",
    ),
    (
        Oscillator(transition=OneComponentTransition()),
        r"Oscillator\.transition returned a float32 array of shape \(1,\), expected a float32 "
        r"array of shape \(2,\)",
    ),
    (
        TupleActionSpace(),
        r"TupleActionSpace\.action_space returned a Python tuple of 2 items, expected a "
        r"diffsim\.AbstractActionSpace",
    ),
    (
        NormCostFromRest(),
        r"the gradient of the total cost of a 5-step rollout with respect to the initial "
        r"state is \[nan, nan\], expected finite values: look for jnp\.sqrt, jnp\.log, "
        r"jnp\.linalg\.norm",
    ),
    (
        StopGradientVectorField(),
        r"the gradient of a 5-step rollout's total cost plus the mean square of its states "
        r"with respect to the controller's parameters disagrees with central finite "
        r"differences in float64: along a random direction JAX gives .*, finite differences "
        r".* \(relative error .*, expected below 0\.0001\): look for jax\.lax\.stop_gradient",
    ),
]


@pytest.mark.parametrize(
    "env, message",
    BROKEN,
    ids=[type(env).__name__ + "-" + str(i) for i, (env, _) in enumerate(BROKEN)],
)
def test_a_broken_env_raises_a_message_naming_the_method_and_the_shapes(env, message):
    with pytest.raises(diffsim.DiffsimError, match=message):
        check_env(env)


def test_the_toy_env_passes_with_measured_values():
    report = check_env(Oscillator())
    assert report.passed == ALL_CHECKS
    assert (report.state_size, report.observation_size, report.controller_size) == (2, 2, 1)
    assert report.zero_gradients == ()
    assert report.max_fd_relative_error < 1e-6
    text = str(report)
    assert text.startswith("Oscillator: state (2,), observation (2,)")
    assert "finite differences, initial state: relative error" in text
    skipped = check_env(Oscillator(), finite_differences=False)
    assert skipped.passed == ALL_CHECKS[:-1]
    assert skipped.skipped == {"finite_differences": "finite_differences=False"}


class ArrivalCost(Oscillator):
    """Charges the state each step reaches (a step_cost)."""

    def step_cost(self, t, y, u, y_next):
        return y_next[0] ** 2 + 0.01 * u[0] ** 2


def test_a_step_cost_of_the_next_state_passes_and_is_checked():
    report = check_env(ArrivalCost(), finite_differences=False)
    assert report.passed == ALL_CHECKS[:-1]

    class ArrivalCostOfShape1(ArrivalCost):
        def step_cost(self, t, y, u, y_next):
            return y_next[:1] ** 2

    with pytest.raises(diffsim.DiffsimError, match=r"ArrivalCostOfShape1\.step_cost returned"):
        check_env(ArrivalCostOfShape1())


class PlainFloatDrag(Oscillator):
    drag: float = 0.2  # should be diffsim.parameter(0.2)

    def vector_field(self, t, y, u):
        return jnp.stack([y[1], -self.stiffness * y[0] - self.drag * y[1] + u[0]])


class IntegerGain(Oscillator):
    gain: Float[Array, ""] = diffsim.parameter(2.0)

    def vector_field(self, t, y, u):
        return jnp.stack([y[1], -self.stiffness * y[0] + self.gain * u[0]])


def test_a_plain_float_field_warns_naming_the_field_and_the_fix():
    with pytest.warns(ContractWarning) as record:
        report = check_env(PlainFloatDrag(), finite_differences=False)
    messages = [str(w.message) for w in record if issubclass(w.category, ContractWarning)]
    assert len(messages) == 1
    assert re.match(
        r"PlainFloatDrag\.drag is a plain float field \(0\.2\), not a diffsim\.parameter: .*"
        r"its gradient \(system identification\) is always zero.*"
        r'drag: Float\[Array, ""\] = diffsim\.parameter\(0\.2\)',
        messages[0],
    )
    assert report.warnings == tuple(messages)
    assert report.passed == ALL_CHECKS[:-1]  # a warning, not a failure
    # the warning points at the caller
    assert record[0].filename == __file__


def test_an_integer_parameter_is_converted_when_built_and_warned_about_when_set_later():
    built = IntegerGain(gain=2)  # a Python int, as users write it
    assert jnp.issubdtype(built.gain.dtype, jnp.floating)
    y = jnp.array([0.3, -0.2])
    gain_gradient = jax.grad(lambda env: env.vector_field(0.0, y, jnp.ones(1))[1])(built).gain
    assert gain_gradient == 1.0  # d(gain * u) / d gain; an integer gain would get none
    with pytest.warns(ContractWarning, match=r"IntegerGain\.gain is a diffsim\.parameter of "):
        # eqx.tree_at skips the constructor: an int32 array, no gradient
        report = check_env(
            eqx.tree_at(lambda env: env.gain, built, jnp.array(2)), finite_differences=False
        )
    assert "give it float values" in report.warnings[0]


@pytest.mark.parametrize(
    "controller, message",
    [
        (
            lambda t, o: jnp.zeros(2),
            r"the controller returned a float32 array of shape \(2,\), expected a "
            r"floating-point array of shape \(1,\): Oscillator's Box action space needs one "
            r"output per control dimension, 1",
        ),
        (
            MLPPolicy(2, diffsim.Discrete([-1.0, 0.0, 1.0]), width=4, depth=1, key=jr.key(0)),
            r"the controller returned a float32 array of shape \(3,\), expected a "
            r"floating-point array of shape \(1,\)",
        ),
        (
            MLPPolicy(5, diffsim.Box(-1.0, 1.0), width=4, depth=1, key=jr.key(0)),
            r"MLPPolicy takes observations of shape \(5,\), got \(2,\): built for another "
            r"env\? MLPPolicy\.for_env\(env, \.\.\.\) sizes it for env",
        ),
    ],
    ids=["two-outputs", "three-logits", "five-inputs"],
)
def test_a_controller_of_the_wrong_size_is_named(controller, message):
    with pytest.raises(diffsim.DiffsimError, match=message):
        check_env(Oscillator(), controller)


def test_bad_arguments():
    with pytest.raises(diffsim.DiffsimError, match="needs a diffsim.AbstractEnv, got str"):
        check_env("Pendulum")
    with pytest.raises(diffsim.DiffsimError, match="steps must be a positive integer, got 0"):
        check_env(Oscillator(), steps=0)


class RootForce(Oscillator):
    """NaN where ``x < -0.95``: on a sliver of the start range ``U(-1, 1)``."""

    def vector_field(self, t, y, u):
        return super().vector_field(t, y, u) + jnp.stack([0.0, 0.1 * jnp.sqrt(y[0] + 0.95)])


def test_a_nan_on_part_of_the_start_range_names_the_start_state_and_the_method():
    with pytest.raises(diffsim.DiffsimError) as error:
        check_env(RootForce(), finite_differences=False)
    message = str(error.value)
    assert "(one of 256 drawn) diverged" in message
    assert "the transition (vector_field) gave the state [nan, nan]" in message
    start = np.array(re.search(r"initial state \[([^\]]+)\]", message).group(1).split(","), float)
    assert start[0] < -0.95  # the named start state is one in the sliver


class TwoForces(Oscillator):
    """A Box of two controls; the vector field reads only the first."""

    @property
    def action_space(self):
        return diffsim.Box(-jnp.ones(2), jnp.ones(2))


def test_a_control_component_without_effect_is_reported():
    report = check_env(TwoForces(), finite_differences=False)
    assert report.zero_gradients == ("u[1]",)
    assert "u[0]" not in check_env(Oscillator(), finite_differences=False).zero_gradients
