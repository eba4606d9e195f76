"""Identify, then control: fit unknown masses and lengths to noisy data, train on the fit.

For the pendulum and the cart-pole, a "true" env with masses and lengths unknown to the
identifier produces 10 s of data under an exploratory open-loop signal (a sum of
sinusoids), with Gaussian noise of 1 % of each state component's standard deviation over
the record added to every measured state. :func:`diffsim.identify` (Levenberg-Marquardt,
multiple shooting) fits the parameters from the nominal env (the default masses and
lengths); the time of the first fit (compilation included) and of a repeated fit on fresh
noise are measured. Then the env's recipe trains a controller (seed 0) on the true env, on
the identified env and on the nominal (mis-specified) env, and each is evaluated on the
true env: 1000 fixed episodes, evaluation seed 0. The "return lost" is the true-env
controller's mean return minus the identified-env controller's.

Prints a table and one JSON line.

    python benchmarks/system_identification.py [--noise-seeds 5] [--skip-control]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optimistix as optx

import diffsim
from diffsim.envs import cartpole, pendulum

NOISE = 0.01  # of each state component's standard deviation over the record


def pendulum_setup():
    true = pendulum.Pendulum(m=jnp.array(1.1), l=jnp.array(0.9))

    def explore(t, observation):
        return jnp.stack([1.2 * jnp.sin(2.1 * t) + 0.8 * jnp.sin(5.3 * t + 1.0)])

    return dict(
        name="pendulum",
        true=true,
        nominal=pendulum.Pendulum(),
        where=lambda env: (env.m, env.l),
        explore=explore,
        y0=jnp.array([3.0, 0.0]),  # hanging, 0.14 rad off the bottom
        steps=200,  # 10 s
        segment_steps=20,
        recipe=pendulum.recipe,
        to_recipe_env=lambda env: env,
    )


def cartpole_setup():
    # the balance recipe's physics (gym's Euler step), driven by a continuous force here
    def physics(**parameters):
        return cartpole.CartPole(
            transition=cartpole.GymEuler(), task="swingup", action="continuous", **parameters
        )

    masses = dict(cart_mass=jnp.array(1.2), pole_mass=jnp.array(0.15), half_length=jnp.array(0.6))

    def explore(t, observation):
        return jnp.stack([6.0 * jnp.cos(2.3 * t) + 3.0 * jnp.cos(7.1 * t)])

    def to_recipe_env(env):
        return eqx.tree_at(
            lambda e: (e.cart_mass, e.pole_mass, e.half_length),
            cartpole.recipe.make_env(),
            (env.cart_mass, env.pole_mass, env.half_length),
        )

    return dict(
        name="cartpole",
        true=physics(**masses),
        nominal=physics(),
        where=lambda env: (env.cart_mass, env.pole_mass, env.half_length),
        explore=explore,
        y0=jnp.array([0.0, 0.0, jnp.pi - 0.1, 0.0]),
        steps=500,  # 10 s
        segment_steps=50,
        recipe=cartpole.recipe,
        to_recipe_env=to_recipe_env,
    )


def noisy_record(setup, seed):
    trajectory = diffsim.rollout(
        setup["true"], setup["explore"], setup["y0"], num_steps=setup["steps"]
    )
    clean = diffsim.Record.from_trajectory(trajectory)
    scale = NOISE * clean.observations.std(axis=0)
    noise = scale * np.asarray(jr.normal(jr.key(seed), clean.observations.shape), np.float64)
    return diffsim.Record(clean.times, clean.controls, clean.observations + noise), scale


def identify(setup, seed):
    record, scale = noisy_record(setup, seed)
    started = time.perf_counter()
    env, report = diffsim.identify(
        setup["nominal"],
        record,
        setup["where"],
        noise=scale,
        segment_steps=setup["segment_steps"],
    )
    return env, report, time.perf_counter() - started, len(record.times)


def true_values(setup):
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves(setup["where"](setup["true"]))])


def control(setup, identified):
    recipe = setup["recipe"]
    results = {}
    for label, env in (
        ("true", setup["true"]),
        ("identified", identified),
        ("nominal", setup["nominal"]),
    ):
        train_env = setup["to_recipe_env"](env)
        trained = dataclasses.replace(recipe, make_env=lambda e=train_env: e)
        started = time.perf_counter()
        _, controller, _ = trained.run(seed=0, progress=False)
        seconds = time.perf_counter() - started
        evaluation = diffsim.evaluate(
            setup["to_recipe_env"](setup["true"]),
            controller,
            episodes=recipe.eval_episodes,
            seed=recipe.eval_seed,
        )
        results[label] = {
            "mean_return": round(evaluation.mean, 2),
            "train_seconds": round(seconds, 1),
        }
    results["return_lost"] = round(
        results["true"]["mean_return"] - results["identified"]["mean_return"], 2
    )
    return results


def trebuchet_refinement(shots, targets, seed=0):
    """The 2019 post's refinement loop: infer the wind (and the projectile's drag
    coefficient) from ``shots`` observed landings, then aim at ``targets`` with the refined
    model; misses are measured on the true machine, before (wind 0, nominal drag) and after.
    """
    from diffsim.envs import trebuchet as tr

    true_wind, true_drag, noise = -4.0, 1.3, 0.3  # m/s (headwind), -, m
    assumed = tr.trebuchet()
    true_machine = eqx.tree_at(lambda t: t.drag_coefficient, assumed, jnp.asarray(true_drag))
    k_shots, k_noise, k_targets = jr.split(jr.key(seed), 3)
    angles = jr.uniform(k_shots, (shots,), minval=25.0, maxval=55.0)
    weights = jr.uniform(jr.fold_in(k_shots, 1), (shots,), minval=150.0, maxval=450.0)
    shoot_all = eqx.filter_jit(jax.vmap(tr.shoot, in_axes=(None, 0, 0, None)))
    observed = shoot_all(true_wind, angles, weights, true_machine)
    observed = observed + noise * jr.normal(k_noise, (shots,))

    forward = assumed.forward_mode()

    def machine(z):
        return eqx.tree_at(lambda t: t.drag_coefficient, forward, jnp.exp(z[1]))

    def residuals(z, args):
        return (shoot_all(z[0], angles, weights, machine(z)) - observed) / noise

    started = time.perf_counter()
    solution = optx.least_squares(
        residuals,
        optx.LevenbergMarquardt(rtol=1e-5, atol=1e-5),
        jnp.zeros(2),
        max_steps=50,
        throw=False,
    )
    if solution.result != optx.RESULTS.successful:
        raise diffsim.DiffsimError(f"wind inference failed: {optx.RESULTS[solution.result]}")
    fit_seconds = time.perf_counter() - started
    z = solution.value
    jacobian = np.asarray(jax.jacfwd(residuals)(z, None), np.float64)
    variance = float(np.sum(np.asarray(residuals(z, None), np.float64) ** 2)) / (shots - 2)
    errors = np.sqrt(np.diag(np.linalg.inv(jacobian.T @ jacobian)) * variance)
    wind, drag = float(z[0]), float(np.exp(z[1]))

    goals = jr.uniform(k_targets, (targets,), minval=40.0, maxval=80.0)
    aim_all = eqx.filter_jit(jax.vmap(tr.aim, in_axes=(0, None, None)))
    misses = {}
    for label, (w, tb) in {
        "before": (0.0, assumed),
        "after": (wind, eqx.tree_at(lambda t: t.drag_coefficient, assumed, jnp.asarray(drag))),
    }.items():
        aims = aim_all(goals, jnp.asarray(w), tb)
        landed = eqx.filter_jit(jax.vmap(tr.shoot, in_axes=(None, 0, 0, None)))(
            true_wind, aims.angle, aims.weight, true_machine
        )
        miss = np.abs(np.asarray(landed - goals))
        misses[label] = {
            "median_m": round(float(np.median(miss)), 3),
            "max_m": round(float(np.max(miss)), 3),
            "aimed_reachable": int(np.sum(np.asarray(aims.reachable))),
        }
    return {
        "true": {"wind": true_wind, "drag_coefficient": true_drag},
        "shots": shots,
        "distance_noise_m": noise,
        "wind": round(wind, 3),
        "wind_standard_error": round(float(errors[0]), 3),
        "drag_coefficient": round(drag, 4),
        "drag_relative_standard_error": round(float(errors[1]), 4),
        "iterations": int(solution.stats["num_steps"]),
        "fit_seconds_with_compile": round(fit_seconds, 1),
        "targets": targets,
        "miss_before": misses["before"],
        "miss_after": misses["after"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noise-seeds", type=int, default=5, help="noise draws per system")
    parser.add_argument("--skip-control", action="store_true", help="identification only")
    parser.add_argument("--shots", type=int, default=6, help="observed trebuchet shots")
    parser.add_argument("--targets", type=int, default=10, help="trebuchet targets aimed at")
    parser.add_argument("--only", choices=["pendulum", "cartpole", "trebuchet"], default=None)
    args = parser.parse_args()
    out = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared), jax {jax.__version__}",
        "dtype": str(jnp.zeros(()).dtype),
        "state_noise": "1 % of each component's std",
    }
    for setup in (pendulum_setup(), cartpole_setup()):
        if args.only not in (None, setup["name"]):
            continue
        truth = true_values(setup)
        fits = []
        for seed in range(args.noise_seeds):
            env, report, seconds, samples = identify(setup, seed)
            errors = (report.values - truth) / truth
            fits.append((env, report, seconds, errors))
            print(
                f"{setup['name']} noise seed {seed}: "
                + ", ".join(
                    f"{n} {v:.5g} ± {e:.2g} (true {t:.4g}, error {r:+.3%}, {z:+.1f} SE)"
                    for n, v, e, t, r, z in zip(
                        report.names,
                        report.values,
                        report.standard_errors,
                        truth,
                        errors,
                        (report.values - truth) / report.standard_errors,
                        strict=True,
                    )
                )
                + f"; {report.iterations} iterations, {seconds:.2f} s"
            )
        worst = max(float(np.max(np.abs(e))) for *_, e in fits)
        within_3se = sum(
            bool(np.all(np.abs(r.values - truth) <= 3 * r.standard_errors)) for _, r, *_ in fits
        )
        result = {
            "parameters": list(fits[0][1].names),
            "true": truth.tolist(),
            "samples": samples,
            "worst_relative_error": round(worst, 5),
            "fits_within_3_standard_errors": f"{within_3se}/{len(fits)}",
            "first_fit_seconds_with_compile": round(fits[0][2], 2),
            "fit_seconds_after_compile": [round(s, 2) for _, _, s, _ in fits[1:]],
            "unidentifiable": sorted({n for _, r, *_ in fits for n in r.unidentifiable}),
        }
        if not args.skip_control:
            result["control"] = control(setup, fits[0][0])
            print(f"{setup['name']} control on the true env: {result['control']}")
        out[setup["name"]] = result
        print(f"{setup['name']}: {result}")
    if args.only in (None, "trebuchet"):
        out["trebuchet"] = trebuchet_refinement(args.shots, args.targets)
        print(f"trebuchet: {out['trebuchet']}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
