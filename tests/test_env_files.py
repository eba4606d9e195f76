"""A user's own env, as ``diffsim train my_env.py:MyEnv`` and ``diffsim.load_recipe`` meet
it: named by any path to its file, importing the modules beside it, refused in one line
when it is abstract or cannot be built; integer start states and parameters taken as
floats; checkpoints written with the usual file permissions."""

import os
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import pytest

import diffsim
from diffsim import MLPPolicy
from diffsim._registry import env_record
from diffsim.rl import reset

from helpers import ROCKET, Oscillator


@pytest.fixture(autouse=True)
def _sys_path_restored(monkeypatch):
    """A user's env file puts its folder on ``sys.path``; the tests' temporary ones go."""
    monkeypatch.setattr(sys, "path", list(sys.path))


def _write(path, source: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    return path


def _checkpoint(spec: str, path):
    recipe = diffsim.load_recipe(spec)
    env = recipe.make_env()
    controller = recipe.make_controller(env, jr.key(0))
    metadata = env_record(spec) | {"env_type": type(env).__name__}  # as the CLI records it
    return diffsim.save_checkpoint(path, (env, controller), metadata)


def test_a_trained_file_env_is_found_by_any_path_to_the_same_file(tmp_path, monkeypatch):
    _write(tmp_path / "envs" / "rocket.py", ROCKET)
    _write(tmp_path / "other" / "rocket.py", ROCKET)
    monkeypatch.chdir(tmp_path / "envs")  # trained here as rocket.py:Rocket
    checkpoint = _checkpoint("rocket.py:Rocket", tmp_path / "run" / "c.eqx")
    for folder in ("envs", "other"):  # and evaluated from there or from another folder
        monkeypatch.chdir(tmp_path / folder)
        for spec in ("../envs/rocket.py:Rocket", f"{tmp_path}/envs/rocket.py:Rocket"):
            env, _ = diffsim.load_trained(spec, checkpoint)
            assert float(env.mass) == 2.0
    diffsim.load_trained("./../envs/rocket.py:Rocket", checkpoint)
    # another file with the same class name is another env
    with pytest.raises(diffsim.DiffsimError, match="was trained on 'rocket.py:Rocket', not"):
        diffsim.load_trained("rocket.py:Rocket", checkpoint)  # other/rocket.py


def test_an_env_file_imports_the_modules_beside_it(tmp_path, monkeypatch):
    _write(tmp_path / "envs" / "rocket.py", ROCKET)
    _write(tmp_path / "envs" / "heavy.py", "from rocket import Rocket\n\nclass Heavy(Rocket):\n"
           "    mass: float = 9.0\n")  # fmt: skip
    monkeypatch.chdir(tmp_path)  # not the file's folder
    try:
        env = diffsim.load_recipe("envs/heavy.py:Heavy").make_env()
    finally:
        sys.modules.pop("rocket", None)
    assert float(env.mass) == 9.0


@pytest.mark.parametrize(
    "removed, missing",
    [("def vector_field", "vector_field"), ("control_dt: float", "control_dt")],
)
def test_an_abstract_env_class_is_refused_naming_what_it_lacks(tmp_path, removed, missing):
    source = ROCKET.replace(removed, f"def _unused_{missing}" if "def" in removed else "_x: int")
    path = _write(tmp_path / "rocket.py", source)
    with pytest.raises(diffsim.DiffsimError) as error:
        diffsim.load_recipe(f"{path}:Rocket")
    assert str(error.value) == f"{path}:Rocket is an abstract class: it does not define {missing}"


def test_an_env_that_cannot_be_built_is_refused_in_one_line(tmp_path):
    source = ROCKET + "\n    def __check_init__(self):\n        raise RuntimeError('no')\n"
    path = _write(tmp_path / "rocket.py", source)
    with pytest.raises(diffsim.DiffsimError) as error:
        diffsim.load_recipe(f"{path}:Rocket")
    assert str(error.value) == f"cannot build {path}:Rocket: RuntimeError: no"


class IntegerStart(Oscillator):
    def initial_state(self, key):
        return jr.randint(key, (2,), -1, 2)  # -1, 0 or 1: integers, as a user may write them


class FloatStart(Oscillator):
    def initial_state(self, key):
        return jr.randint(key, (2,), -1, 2).astype(float)


def test_integer_start_states_are_taken_as_the_same_floats():
    policy = MLPPolicy.for_env(Oscillator(), width=4, depth=1, key=jr.key(0))
    trainer = diffsim.Trainer(diffsim.adam_cosine(1e-2, 3), batch_size=4, window=10)
    integer, floats = (trainer.init(e, policy, jr.key(1)) for e in (IntegerStart(), FloatStart()))
    # an int32 carry beside the float32 states a step returns failed in diffsim.train's scan
    assert integer.carry.states.dtype == jnp.float32
    assert jnp.array_equal(integer.carry.states, floats.carry.states)
    _, metrics = eqx.filter_jit(trainer.step)(integer)
    assert jnp.isfinite(metrics["loss"])
    assert diffsim.initial_states(IntegerStart(), 3, seed=0).dtype == jnp.float32
    observation, env_state = reset(IntegerStart(), jr.key(2))
    assert env_state.y.dtype == jnp.float32 and observation.dtype == jnp.float32


def test_a_state_of_the_wrong_length_is_named_when_the_vector_field_unpacks_it():
    class ThreeStates(Oscillator):
        def vector_field(self, t, y, u):
            x, v = jnp.unstack(y)
            return jnp.stack([v, -x + u[0]])

        def initial_state(self, key):
            return jnp.zeros(3)

    policy = MLPPolicy.for_env(ThreeStates(), width=4, depth=1, key=jr.key(0))
    with pytest.raises(diffsim.DiffsimError) as error:
        diffsim.rollout(ThreeStates(), policy, jnp.zeros(3), num_steps=2)
    message = str(error.value)
    assert "ThreeStates.vector_field (in its transition) failed: too many values" in message
    assert "states y have shape (3,), as initial_state returns them" in message


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_a_checkpoint_gets_the_mode_of_any_new_file(tmp_path):
    previous = os.umask(0o022)
    try:
        path = diffsim.save_checkpoint(tmp_path / "c.eqx", {"a": jnp.ones(2)})
        (tmp_path / "plain").write_text("")
    finally:
        os.umask(previous)
    assert oct(path.stat().st_mode & 0o777) == oct((tmp_path / "plain").stat().st_mode & 0o777)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_parameter_given_as_an_int_gets_a_gradient():
    gradient = jax.grad(lambda env: env.vector_field(0.0, jnp.array([0.5, 0.0]), jnp.zeros(1))[1])(
        Oscillator(stiffness=4)
    )
    assert float(gradient.stiffness) == -0.5


def test_an_env_file_that_exits_is_refused_in_one_line(tmp_path):
    path = _write(tmp_path / "rocket.py", "import sys\nsys.exit(3)\n" + ROCKET)
    with pytest.raises(diffsim.DiffsimError) as error:
        diffsim.load_recipe(f"{path}:Rocket")
    assert str(error.value) == f"cannot import {path}: SystemExit: 3"
