"""The trebuchet against the published numbers, finite differences and conservation laws."""

import ast
import dataclasses
from pathlib import Path

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import diffsim
from diffsim.envs import trebuchet as tr
from diffsim.envs.trebuchet import _physics

PUBLISHED_DISTANCE = 74.73  # m, shoot(-2, 45, 200) in the 2019 post
PUBLISHED_GRADIENT = (4.02, -0.99, 0.051)  # per (m/s, degree, lb), as the post printed it


@pytest.mark.slow  # 28 s of compilation; `diffsim shoot`'s test checks the same published numbers
def test_reference_preset_reproduces_the_published_shot_and_gradient():
    tb = tr.trebuchet_jl()
    winds = jnp.array([-2.0, 0.0, 3.0])

    @jax.jit
    def shots_and_gradient(winds):
        shots = jax.vmap(lambda w: tr.simulate(w, 45.0, 200.0, tb))(winds)
        gradient = jax.grad(lambda w, a, m: tr.shoot(w, a, m, tb), argnums=(0, 1, 2))
        return shots, gradient(winds[0], 45.0, 200.0)

    shots, gradient = shots_and_gradient(winds)
    np.testing.assert_array_equal(shots.status, [0, 0, 0])
    assert abs(float(shots.distance[0]) - PUBLISHED_DISTANCE) < 0.01
    assert float(shots.distance[1]) > float(shots.distance[0])  # less headwind: farther
    np.testing.assert_allclose(gradient, PUBLISHED_GRADIENT, rtol=0.01, atol=0.001)


@pytest.mark.slow
@pytest.mark.usefixtures("x64")
def test_accurate_numerics_land_the_reference_shot_about_36_cm_shorter():
    """The spec: with an accurate solver (same swapped inertias) the landing moves ~0.36 m."""
    reference = tr.trebuchet_jl()
    accurate = dataclasses.replace(
        reference,
        numerics=tr.trebuchet().numerics,  # built here, under float64: tight tolerances
        tension="exact",
        phase_time=(2.0, 2.0, 12.0),
    )
    shift = float(tr.shoot(-2.0, 45.0, 200.0, reference) - tr.shoot(-2.0, 45.0, 200.0, accurate))
    assert 0.3 < shift < 0.45


@pytest.mark.slow  # three compilations of the float64 machine, about 3 minutes
@pytest.mark.usefixtures("x64")
def test_gradients_match_finite_differences_in_reverse_and_forward_mode():
    tb = tr.trebuchet()
    x = jnp.array([-2.0, 45.0, 200.0])
    distance = jax.jit(lambda x, tb: tr.shoot(x[0], x[1], x[2], tb))
    gradient = eqx.filter_jit(eqx.filter_grad(lambda xt: distance(*xt)))
    reverse, by_machine = gradient((x, tb))
    forward = jax.jit(jax.jacfwd(lambda x: distance(x, tb.forward_mode())))(x)
    steps = jnp.array([1e-4, 1e-4, 1e-3])
    central = [
        (distance(x.at[i].add(h), tb) - distance(x.at[i].add(-h), tb)) / (2 * h)
        for i, h in enumerate(steps)
    ]
    np.testing.assert_allclose(reverse, central, rtol=1e-4)
    np.testing.assert_allclose(forward, reverse, rtol=1e-6)
    # with respect to the machine: the long arm
    h = 1e-5
    longer = eqx.tree_at(lambda t: t.long_arm, tb, tb.long_arm + h)
    shorter = eqx.tree_at(lambda t: t.long_arm, tb, tb.long_arm - h)
    np.testing.assert_allclose(
        by_machine.long_arm, (distance(x, longer) - distance(x, shorter)) / (2 * h), rtol=1e-4
    )
    # a counterweight too light to lift the projectile: it stays put, and the gradient is 0, not NaN
    too_light = jnp.array([-2.0, 45.0, 5.0])
    np.testing.assert_allclose(distance(too_light, tb), tb.resting_x(), rtol=1e-9)
    slack_gradient, slack_by_machine = gradient((too_light, tb))
    np.testing.assert_array_equal(slack_gradient, [0.0, 0.0, 0.0])
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(slack_by_machine))


def _dense_phase(field, y0, t0, t1, args):
    solution = dfx.diffeqsolve(
        dfx.ODETerm(field),
        dfx.Tsit5(),
        t0,
        t1,
        None,
        y0,
        args,
        saveat=dfx.SaveAt(ts=jnp.linspace(t0, t1, 50)),
        stepsize_controller=dfx.PIDController(rtol=1e-10, atol=1e-10),
        max_steps=100_000,
    )
    return solution.ys


@pytest.mark.slow  # about 2 minutes of compilation
@pytest.mark.usefixtures("x64")
def test_energy_is_conserved_on_the_ground_in_the_hang_phase_and_in_flight_without_drag():
    tb = tr.trebuchet()
    weight = 200.0
    shot = jax.jit(lambda: tr.simulate(-2.0, 45.0, weight, tb))()
    args = _physics._args(tb, -2.0, 45.0, weight)
    mass = weight * tr.POUND
    energy = jax.vmap(lambda y: tb.energy(y, mass))

    y0 = jnp.concatenate([tb.initial_coordinates(), jnp.zeros(3)])
    ground = _dense_phase(_physics._ground_field, y0, 0.0, shot.lift_off_time, args)
    hang = _dense_phase(
        _physics._hang_field, shot.lift_off_state, shot.lift_off_time, shot.release_time, args
    )
    for states in (ground, hang):
        e = energy(states)
        assert float(jnp.max(jnp.abs(e - e[0]))) < 1e-7 * float(jnp.max(jnp.abs(e)))
    # the energy is really moving between the bodies: the projectile gains kinetic energy
    assert float(jnp.linalg.norm(shot.release_velocity)) > 20.0

    no_drag = eqx.tree_at(lambda t: t.air_density, tb, 0.0)
    flight_args = _physics._args(no_drag, -2.0, 45.0, weight)
    p0 = jnp.concatenate([shot.release_position, shot.release_velocity])
    flight = _dense_phase(_physics._flight_field, p0, 0.0, 3.0, flight_args)
    specific = 0.5 * jnp.sum(flight[:, 2:] ** 2, axis=1) + tb.gravity * flight[:, 1]
    np.testing.assert_allclose(specific, specific[0], rtol=1e-9)


@pytest.mark.slow
def test_too_light_a_counterweight_reports_a_slack_sling_not_a_nan():
    """The reference machine here; the faithful one in the finite-difference test."""
    tb = tr.trebuchet_jl()

    @jax.jit
    def shot_and_gradient(weight):
        shot = tr.simulate(0.0, 45.0, weight, tb)
        return shot, jax.grad(lambda m: tr.shoot(0.0, 45.0, m, tb))(weight)

    shot, gradient = shot_and_gradient(5.0)
    assert int(shot.status) == 1
    assert shot.message.startswith("sling went slack")
    np.testing.assert_allclose(shot.distance, tb.resting_x(), rtol=1e-6)
    np.testing.assert_allclose(tb.resting_x(), 0.68157, atol=1e-4)
    assert float(gradient) == 0.0
    assert np.isnan([shot.lift_off_time, shot.release_time, shot.landing_time]).all()


@pytest.mark.slow
def test_which_statuses_are_failures_with_a_nan_distance():
    """Time limits too short for a phase: a failure (NaN) except the reference's release
    at the hang phase's limit, which Trebuchet.jl defined and which keeps its distance."""
    reference, faithful = tr.trebuchet_jl(), tr.trebuchet()
    machines = {
        "no landing": (dataclasses.replace(reference, phase_time=(1.5, 1.0, 0.3)), 4),
        "no lift-off": (dataclasses.replace(reference, phase_time=(0.05, 1.0, 9.0)), 2),
        "reference, no release": (dataclasses.replace(reference, phase_time=(1.5, 0.05, 9.0)), 3),
        "faithful, no release": (dataclasses.replace(faithful, phase_time=(2.0, 0.05, 12.0)), 3),
    }
    shoot = eqx.filter_jit(lambda tb: tr.simulate(-2.0, 45.0, 200.0, tb))
    for name, (tb, status) in machines.items():
        shot = shoot(tb)
        assert int(shot.status) == status, name
        assert shot.message == tr.STATUS_MESSAGES[status]
        if name == "reference, no release":
            assert np.isfinite(shot.distance) and not bool(shot.failed)
        else:
            assert np.isnan(shot.distance) and bool(shot.failed), name
        # an event the shot never reached has no time; the ones before it keep theirs
        reached = {"no landing": 2, "no lift-off": 0, "faithful, no release": 1}.get(name, 3)
        times = [shot.lift_off_time, shot.release_time, shot.landing_time]
        assert np.isfinite(times[:reached]).all() and np.isnan(times[reached:]).all(), name
    # the messages name every status, the failures say there is no distance
    assert sorted(tr.STATUS_MESSAGES) == list(range(8))
    assert "outside the model's domain" in tr.STATUS_MESSAGES[7]


@pytest.mark.slow
def test_direct_aiming_hits_reachable_targets_and_says_when_it_cannot():
    aim = jax.jit(tr.aim)  # the scalar function compiles in about half the time of its vmap
    targets = jnp.array([80.0, 25.0, 60.0, 100.0])
    winds = jnp.array([-2.0, 5.0, 0.0, -10.0])  # the last: 100 m into a 10 m/s headwind
    result = jax.tree.map(
        lambda *xs: jnp.stack(xs), *[aim(t, w) for t, w in zip(targets, winds, strict=True)]
    )
    lo, hi = tr.ANGLE_BOUNDS
    assert bool(jnp.all((result.angle >= lo) & (result.angle <= hi)))
    lo, hi = tr.WEIGHT_BOUNDS
    assert bool(jnp.all((result.weight >= lo) & (result.weight <= hi)))
    np.testing.assert_array_equal(result.reachable, [True, True, True, False])
    assert float(jnp.max(result.miss[:3])) < 0.01
    np.testing.assert_allclose(result.distance[:3], targets[:3], atol=0.01)
    assert set(np.asarray(result.branch[:3]).tolist()) == {0, 1}  # short and middle searches
    # out of reach: the farthest shot found, well short of the target, finite
    assert 50.0 < float(result.distance[3]) < 90.0
    assert int(result.branch[3]) == 2
    # outside the domain (the same compiled function): NaN and the status, no exception
    for target, wind in [(jnp.nan, 0.0), (-3.0, 0.0), (60.0, 1e6), (60.0, -jnp.inf)]:
        bad = aim(jnp.asarray(target), jnp.asarray(wind))
        assert int(bad.status) == 7 and not bool(bad.reachable)
        assert np.isnan([bad.angle, bad.weight, bad.distance, bad.miss]).all()


@pytest.mark.slow
def test_a_short_aimer_training_run_reduces_the_miss():
    target, wind = tr.test_set(64, seed=1)
    untrained = tr.Aimer(key=jr.split(jr.PRNGKey(0))[0])  # train_aimer's initialisation
    misses = eqx.filter_jit(lambda aimer: tr.aimer_misses(aimer, target, wind, tr.trebuchet_jl()))
    before = jnp.median(jnp.abs(misses(untrained)))
    seen = []
    aimer, history = tr.train_aimer(
        jr.PRNGKey(0),
        tr.trebuchet_jl(),
        steps=40,
        batch_size=32,
        progress=False,
        callback=lambda i, metrics: seen.append((i, metrics["loss"])),
    )
    after = jnp.median(jnp.abs(misses(aimer)))
    assert float(after) < 0.5 * float(before)
    assert isinstance(history, diffsim.History)
    assert history.iteration == list(range(1, 41)) and len(history.grad_norm) == 40
    assert seen == list(zip(history.iteration, history.loss, strict=True))
    assert np.mean(history.loss[-5:]) < 0.5 * np.mean(history.loss[:5])
    # 40 fast steps: compilation is nearly all of the wall-clock, and JAX reports its
    # durations on a clock of its own, so the two agree only to a few per cent
    assert 0 < history.compile_seconds < 1.1 * history.train_seconds


def test_numerics_are_solver_objects_chosen_by_type():
    faithful, reference = tr.trebuchet(), tr.trebuchet_jl()
    assert isinstance(faithful.numerics, diffsim.ODESolve)
    assert isinstance(faithful.numerics.solver, dfx.Tsit5)
    assert isinstance(faithful.numerics.adjoint, dfx.RecursiveCheckpointAdjoint)
    assert reference.numerics == tr.EulerHermite(dt=1 / 60)
    # forward mode swaps the adjoint only; Euler needs no change
    forward = faithful.forward_mode().numerics
    assert isinstance(forward.adjoint, dfx.ForwardMode)
    assert forward.stepsize_controller == faithful.numerics.stepsize_controller
    assert reference.forward_mode() is reference
    # the preset's tolerances follow the precision it is built in
    assert faithful.numerics.stepsize_controller.rtol == 1e-5
    with jax.enable_x64(True):
        tight = tr.trebuchet().numerics.stepsize_controller
    assert (tight.rtol, tight.atol) == (1e-9, 1e-10)
    # the suite's runtime type checks may reject a string before __check_init__ does
    for bad in (dict(numerics="adaptive"), dict(tension="exactly")):
        with pytest.raises((diffsim.DiffsimError, TypeError)):
            dataclasses.replace(faithful, **bad)
    with pytest.raises(diffsim.DiffsimError, match="dt"):
        tr.EulerHermite(dt=0.0)
    assert tr.EulerHermite(dt=1).dt == 1  # whole seconds are numbers too


def test_the_plug_in_imports_only_the_public_core():
    package = Path(tr.__file__).parent
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                assert not (parts[0] == "diffsim" and any(p.startswith("_") for p in parts)), (
                    f"{path.name} imports {name}"
                )
