"""Baselines and task statistics behind the README's "More environments" table.

Run after ``diffsim train acrobot``, ``quadrotor`` and ``epidemic`` (checkpoints in
``runs/NAME/controller.eqx``, or pass ``--runs DIR``): prints, on the 1000 evaluation
episodes of seed 0, the hand-written acrobot rule, the quadrotor's final distance to the
waypoint, and the epidemic's fraction ever infected and peak against no intervention and
constant interventions; ends with one JSON line.
"""

import argparse
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import jax.random as jr

import diffsim
from diffsim.envs import Acrobot, acrobot, epidemic, quadrotor

EPISODES, SEED = 1000, 0


def _trained(module, runs):
    env = module.recipe.make_env()
    like = (env, module.recipe.make_controller(env, jr.key(0)))
    return diffsim.load_checkpoint(Path(runs) / module.recipe.name / "controller.eqx", like)


def _rollouts(env, controller):
    y0 = diffsim.initial_states(env, EPISODES, SEED)
    return jax.vmap(lambda y: diffsim.rollout(env, controller, y))(y0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs", help="folder of the training runs")
    runs = parser.parse_args().runs
    out = {}

    def along_elbow_speed(t, observation):
        return jnp.where(observation[5] > 0, jnp.array([0.0, 0.0, 1.0]), jnp.array([1.0, 0, 0]))

    out["acrobot_rule_return"] = diffsim.evaluate(Acrobot(), along_elbow_speed).mean
    env, controller = _trained(acrobot, runs)
    out["acrobot_trained_return"] = diffsim.evaluate(env, controller).mean

    env, controller = _trained(quadrotor, runs)
    states = _rollouts(env, controller).states
    offset = states[:, :, :2] - jnp.stack([env.target_x, env.target_z])
    distance = jnp.linalg.norm(offset, axis=-1)
    out["quadrotor_start_distance_m"] = float(jnp.mean(distance[:, 0]))
    out["quadrotor_distance_after_2s_m"] = float(jnp.mean(distance[:, 40]))
    out["quadrotor_final_distance_m_mean"] = float(jnp.mean(distance[:, -1]))
    out["quadrotor_final_distance_m_max"] = float(jnp.max(distance[:, -1]))

    env, controller = _trained(epidemic, runs)
    policies = {"trained": controller}
    for u in (0.0, 0.3, 0.7):
        policies[f"constant_{u}"] = lambda t, o, u=u: jnp.full(1, u)
    for name, policy in policies.items():
        trajectories = _rollouts(env, policy)
        final = jax.vmap(env.final_susceptible)(trajectories.states[:, -1])
        out[f"epidemic_{name}_return"] = diffsim.evaluate(env, policy).mean
        out[f"epidemic_{name}_ever_infected"] = float(
            jnp.mean(trajectories.states[:, 0, 0] - final)
        )
        out[f"epidemic_{name}_peak"] = float(jnp.mean(jnp.max(trajectories.states[..., 1], 1)))
    for key, value in out.items():
        print(f"{key}: {value:.4g}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
