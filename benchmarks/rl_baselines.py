"""Differentiable training against rejax RL baselines on the very same env, in one run.

Each RL agent is trained by rejax (pure-JAX PPO / SAC / DQN) on ``diffsim.rl.to_gymnax(env)``
of the env the diffsim recipe trains (the same dynamics, integrator, cost and episode
length), and every controller, ours and theirs, is scored by the same
:func:`diffsim.evaluate`: 1000 episodes from the recipe's fixed evaluation seed,
deterministic actions (:func:`diffsim.rl.policy_from_rejax`: the policy's mean or greedy
action). Training env steps count every simulated step (``docs/concepts/evaluation.md``);
wall-clock includes compilation. Prints a table and one JSON line whose ``*_ratio`` keys are
diffsim / baseline (env steps and seconds: below 1 means diffsim needed fewer).

    python benchmarks/rl_baselines.py pendulum [--seed 0] [--scale 1.0]
    python benchmarks/rl_baselines.py cartpole

``--scale`` multiplies every baseline's step budget (e.g. 0.1 for a smoke run). Settings
and budgets: rejax's tuned configurations for gymnax's Pendulum-v1 and CartPole-v1 (below).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time

import jax
import jax.random as jr

import diffsim
from diffsim import rl

BASELINES = {
    "pendulum": {
        "sac": (
            "SAC",
            10_000,
            dict(
                agent_kwargs={"activation": "swish"},
                num_envs=1,
                buffer_size=10_000,
                fill_buffer=256,
                batch_size=256,
                learning_rate=0.01,
                num_epochs=1,
                gamma=0.99,
                polyak=0.98,
                normalize_observations=True,
            ),
        ),
        "ppo": (
            "PPO",
            150_000,
            dict(
                agent_kwargs={"activation": "swish"},
                num_envs=100,
                num_steps=100,
                num_epochs=10,
                num_minibatches=10,
                learning_rate=0.001,
                max_grad_norm=10.0,
                gamma=0.995,
                gae_lambda=0.95,
                clip_eps=0.2,
                ent_coef=0.0,
                vf_coef=0.5,
                normalize_observations=True,
            ),
        ),
    },
    "cartpole": {
        "ppo": (
            "PPO",
            100_000,
            dict(
                agent_kwargs={"activation": "tanh"},
                num_envs=5,
                num_steps=100,
                num_epochs=5,
                num_minibatches=5,
                learning_rate=0.00075,
                max_grad_norm=0.5,
                gamma=0.99,
                gae_lambda=0.95,
                clip_eps=0.2,
                ent_coef=0.01,
                vf_coef=0.5,
            ),
        ),
        "dqn": (
            "DQN",
            100_000,
            dict(
                agent="DuelingQNetwork",
                agent_kwargs={"activation": "swish"},
                num_envs=10,
                buffer_size=50_000,
                fill_buffer=5_000,
                batch_size=100,
                max_grad_norm=10.0,
                learning_rate=0.001,
                num_epochs=5,
                polyak=0.98,
                eps_start=1.0,
                eps_end=0.05,
                exploration_fraction=0.5,
                gamma=0.99,
                ddqn=True,
            ),
        ),
    },
}
"""Per recipe: ``name: (rejax algorithm, training env steps, settings)``: rejax's own tuned
hyperparameters and budgets for the gymnax versions of these envs (``configs/gymnax/`` in
the rejax repository)."""


def train_baseline(env, algorithm: str, steps: int, settings: dict, seed: int):
    import rejax

    algo = getattr(rejax, algorithm).create(
        env=rl.to_gymnax(env), total_timesteps=steps, eval_freq=steps, **copy.deepcopy(settings)
    )
    started = time.perf_counter()
    with jax.numpy_rank_promotion("allow"):  # rejax broadcasts implicitly
        state, _ = jax.block_until_ready(jax.jit(algo.train)(jr.key(seed)))
    return rl.policy_from_rejax(algo, state), time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", choices=sorted(BASELINES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--episodes", type=int, default=1000)
    args = parser.parse_args()

    recipe = diffsim.recipes()[args.recipe]
    started = time.perf_counter()
    controller, env, history = recipe.run(args.seed, progress=False)
    ours_seconds = time.perf_counter() - started
    ours = diffsim.evaluate(env, controller, episodes=args.episodes, seed=recipe.eval_seed)
    rows = [("diffsim " + args.recipe, history.total_env_steps, ours_seconds, ours.mean)]
    record = {
        "benchmark": "rl_baselines",
        "recipe": args.recipe,
        "seed": args.seed,
        "episodes": args.episodes,
        "machine": f"{platform.machine()} {jax.devices()[0].platform}",
        "jax": jax.__version__,
        "diffsim_env_steps": history.total_env_steps,
        "diffsim_seconds": round(ours_seconds, 1),
        "diffsim_return": round(ours.mean, 1),
    }
    for name, (algorithm, steps, settings) in BASELINES[args.recipe].items():
        steps = int(steps * args.scale)
        policy, seconds = train_baseline(env, algorithm, steps, settings, args.seed)
        result = diffsim.evaluate(env, policy, episodes=args.episodes, seed=recipe.eval_seed)
        rows.append((f"rejax {algorithm}", steps, seconds, result.mean))
        record |= {
            f"{name}_env_steps": steps,
            f"{name}_seconds": round(seconds, 1),
            f"{name}_return": round(result.mean, 1),
            f"env_steps_vs_{name}_ratio": round(history.total_env_steps / steps, 3),
            f"seconds_vs_{name}_ratio": round(ours_seconds / seconds, 3),
        }

    print(f"{'method':<22}{'env steps':>12}{'seconds':>10}{'mean return':>14}")
    for name, steps, seconds, mean in rows:
        print(f"{name:<22}{steps:>12,}{seconds:>10.1f}{mean:>14.1f}")
    print(
        f"evaluation: {args.episodes} episodes from seed {recipe.eval_seed}, deterministic "
        "actions, the same env object for every method"
    )
    print(json.dumps(record))


if __name__ == "__main__":
    main()
