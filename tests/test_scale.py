"""Scale: data parallelism over devices, checkpointed long rollouts, float64 gradients."""

import json
import os
import subprocess
import sys
import textwrap

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import diffsim
from diffsim import MLPPolicy
from diffsim.envs import Pendulum

# Runs in a fresh interpreter: the device count must be set before JAX initialises.
_DATA_PARALLEL = textwrap.dedent(
    """
    import json, os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    import jax, jax.random as jr, optax
    from jaxtyping import install_import_hook
    with install_import_hook("diffsim", "beartype.beartype"):
        import diffsim
    from diffsim import MLPPolicy
    from diffsim.envs import Pendulum

    env = Pendulum()
    policy = MLPPolicy.for_env(env, width=8, depth=1, key=jr.key(0))
    out = {"device_count": jax.device_count()}
    for n in (1, 4):
        trainer = diffsim.Trainer(
            optax.adam(1e-2), batch_size=8, window=10, devices=jax.devices()[:n]
        )
        state = trainer.init(env, policy, jr.key(1))
        step = jax.jit(trainer.step)
        losses = []
        for _ in range(3):
            state, metrics = step(state)
            losses.append(float(metrics["loss"]))
        states = state.carry.states
        first = jax.tree.leaves(state.params)[0]
        out[n] = {
            "losses": losses,
            "params": [x.ravel().tolist() for x in jax.tree.leaves(state.params)],
            "carry": states.tolist(),
            "carry_devices": len(states.sharding.device_set),
            "carry_shard": list(states.sharding.shard_shape(states.shape)),
            "params_shard": list(first.sharding.shard_shape(first.shape)),
            "eval": diffsim.evaluate(
                env, policy, episodes=10, seed=3, devices=jax.devices()[:n]
            ).returns.tolist(),
        }
    _, _, history = diffsim.train(
        env, policy, optax.adam(1e-2), key=jr.key(1), iterations=3, batch_size=8,
        window=10, devices=jax.devices(), eval_episodes=6, progress=False,
    )
    out["train_losses"] = history.loss
    try:
        diffsim.Trainer(optax.adam(1e-2), batch_size=6, devices=jax.devices())
        out["indivisible"] = None
    except diffsim.DiffsimError as error:
        out["indivisible"] = str(error)
    import sys, tempfile
    folder = tempfile.mkdtemp()
    results = diffsim.compare(
        "pendulum", methods=["dp"], seeds=2, quick=True, episodes=20, out=folder,
        devices=jax.devices(), log=None,
    )
    out["compare"] = results["methods"]["dp"]
    try:
        diffsim.compare("pendulum", methods=["dp"], quick=True, devices=jax.devices()[:3])
        out["compare_indivisible"] = None
    except diffsim.DiffsimError as error:
        out["compare_indivisible"] = str(error)
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def data_parallel():
    environment = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    result = subprocess.run(
        [sys.executable, "-c", _DATA_PARALLEL],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_four_devices_train_as_one(data_parallel):
    one, four = data_parallel["1"], data_parallel["4"]
    assert data_parallel["device_count"] == 4
    # the same losses, parameters and carried episodes, up to float summation order
    np.testing.assert_allclose(four["losses"], one["losses"], rtol=1e-5)
    for a, b in zip(four["params"], one["params"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(four["carry"], one["carry"], rtol=1e-4, atol=1e-5)
    # train() runs the very same steps
    np.testing.assert_allclose(data_parallel["train_losses"], one["losses"], rtol=1e-5)


def test_carried_episodes_are_sharded_over_four_devices(data_parallel):
    four = data_parallel["4"]
    assert four["carry_devices"] == 4
    assert four["carry_shard"] == [2, 2]  # 8 episodes of 2 states: 2 per device
    assert four["params_shard"] == data_parallel["1"]["params_shard"]  # replicated, whole
    assert data_parallel["1"]["carry_shard"] == [8, 2]


def test_evaluation_is_the_same_on_four_devices(data_parallel):
    # 10 episodes over 4 devices: padded to 12, the padding dropped
    assert len(data_parallel["4"]["eval"]) == 10
    # per-device batches of 3 and 10 vectorise differently: float32 rounding, 200 steps
    np.testing.assert_allclose(data_parallel["4"]["eval"], data_parallel["1"]["eval"], rtol=2e-4)
    assert np.mean(data_parallel["4"]["eval"]) == pytest.approx(
        np.mean(data_parallel["1"]["eval"]), rel=2e-5
    )


def test_batch_not_divisible_by_device_count_is_an_error(data_parallel):
    message = data_parallel["indivisible"]
    assert message is not None and "batch_size=6" in message and "4 devices" in message
    assert data_parallel["compare_indivisible"] == (
        "the recipe's batch_size=128 does not split over 3 devices: use a multiple of 3"
    )


def test_compare_trains_its_seeds_with_each_batch_split_over_four_devices(data_parallel):
    rows = data_parallel["compare"]
    assert [row["seed"] for row in rows] == [0, 1]
    env = Pendulum()
    for row in rows:  # the saved controller is the one evaluated
        policy = diffsim.load_trained("pendulum", row["checkpoint"])[1]
        evaluation = diffsim.evaluate(env, policy, episodes=20, seed=0)
        assert evaluation.mean == pytest.approx(row["mean_return"], rel=1e-4)
    assert rows[0]["mean_return"] != rows[1]["mean_return"]


def test_bad_devices_are_errors():
    with pytest.raises(diffsim.DiffsimError, match="devices"):
        diffsim.Trainer(optax.adam(1e-2), devices=[])
    with pytest.raises(diffsim.DiffsimError, match="devices"):
        diffsim.Trainer(optax.adam(1e-2), devices=["cpu"])
    with pytest.raises(diffsim.DiffsimError, match="twice"):
        diffsim.Trainer(optax.adam(1e-2), devices=jax.devices() * 2)


def test_cli_bad_devices_is_one_line_and_exit_status_2():
    arguments, says = ["--devices", "5"], "--devices must be 'all' or a count from 1 to 1"
    environment = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    result = subprocess.run(
        [sys.executable, "-m", "diffsim.cli", "train", "pendulum", *arguments],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
    )
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], result.stderr


# --- checkpointed rollouts --------------------------------------------------------------


@eqx.filter_jit
def _mean_cost_and_grad(controller, y0, num_steps, every, unroll=1):
    def loss(controller, y0):
        trajectory = diffsim.rollout(
            Pendulum(), controller, y0, num_steps=num_steps, checkpoint_every=every, unroll=unroll
        )
        return trajectory.total_cost / num_steps, trajectory

    (_, trajectory), grads = eqx.filter_value_and_grad(loss, has_aux=True)(controller, y0)
    return trajectory, grads


def test_checkpointed_rollout_equals_plain():
    every = 7  # 50 steps: 7 windows of 7 and a remainder window of 1
    controller = MLPPolicy.for_env(Pendulum(), width=16, depth=1, key=jr.key(0))
    y0 = jnp.array([2.5, 0.3])
    plain, plain_grads = _mean_cost_and_grad(controller, y0, 50, None)
    checkpointed, grads = _mean_cost_and_grad(controller, y0, 50, every)
    for a, b in zip(jax.tree.leaves(checkpointed), jax.tree.leaves(plain), strict=True):
        np.testing.assert_array_equal(a, b)
    flat = lambda tree: jnp.concatenate(  # noqa: E731
        [x.ravel() for x in jax.tree.leaves(eqx.filter(tree, eqx.is_inexact_array))]
    )
    assert float(jnp.linalg.norm(flat(plain_grads))) > 0
    np.testing.assert_allclose(flat(grads), flat(plain_grads), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("every", [None, 7])
def test_unrolled_rollout_equals_plain(every):
    # 50 steps unrolled 4 at a time (a remainder of 2), also inside windows of 7 (and 1)
    controller = MLPPolicy.for_env(Pendulum(), width=16, depth=1, key=jr.key(0))
    y0 = jnp.array([2.5, 0.3])
    plain, plain_grads = _mean_cost_and_grad(controller, y0, 50, None)
    unrolled, grads = _mean_cost_and_grad(controller, y0, 50, every, 4)
    for a, b in zip(jax.tree.leaves(unrolled), jax.tree.leaves(plain), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(plain_grads), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("every", [0, -3])
def test_bad_checkpoint_every_is_an_error(every):
    with pytest.raises(diffsim.DiffsimError, match="checkpoint_every"):
        diffsim.rollout(Pendulum(), lambda t, o: jnp.zeros(1), jnp.zeros(2), checkpoint_every=every)


# --- float64 ----------------------------------------------------------------------------


class _Linear(eqx.Module):
    gains: jax.Array

    def __call__(self, t, observation):
        return self.gains @ observation


@pytest.mark.usefixtures("x64")
def test_float64_gradient_of_10000_steps_matches_finite_differences():
    """500 s of a weakly damped swing (an autonomous 2-D system: no chaos), the gradient
    with respect to the feedback gains through 10,000 Tsit5 control steps, in checkpointed
    windows, against central differences."""
    env = Pendulum()
    y0 = jnp.array([2.0, 0.0])  # 1.14 rad from hanging down; speeds stay far below 8 rad/s
    steps = 10_000

    @jax.jit
    def loss(gains, y0):
        controller = _Linear(gains)
        trajectory = diffsim.rollout(env, controller, y0, num_steps=steps, checkpoint_every=100)
        return trajectory.total_cost / steps

    gains = jnp.array([[0.05, -0.1, -0.02]])
    assert loss(gains, y0).dtype == jnp.float64
    gradient = jax.jit(jax.grad(loss))(gains, y0)
    eps = 1e-6
    basis = jnp.eye(3)[:, None, :]
    differences = jnp.stack(
        [(loss(gains + eps * e, y0) - loss(gains - eps * e, y0)) / (2 * eps) for e in basis]
    )
    assert float(jnp.min(jnp.abs(differences))) > 1e-4  # every gain matters
    np.testing.assert_allclose(gradient.ravel(), differences, rtol=1e-6)


def test_a_rollout_computes_in_its_initial_states_dtype():
    gains = jnp.array([[0.5, -1.0, -0.2]], jnp.float32)
    y0 = jnp.array([2.0, 0.0], jnp.float32)
    narrow = Pendulum()  # float32 parameters
    single = diffsim.rollout(narrow, _Linear(gains), y0)
    with jax.enable_x64(True):
        # float32 parameters and controller, a float64 state: float64 throughout
        wide = diffsim.rollout(narrow, _Linear(gains), y0.astype(jnp.float64))
        assert wide.states.dtype == wide.costs.dtype == jnp.float64
        np.testing.assert_allclose(wide.states, single.states, rtol=1e-4, atol=1e-5)
        # float64 parameters and a float32 state: refused, naming both
        with pytest.raises(diffsim.DiffsimError, match="the env holds float64 arrays and the "
                           "state is float32: a simulation computes in its state's dtype"):
            diffsim.rollout(Pendulum(), _Linear(gains), y0)
