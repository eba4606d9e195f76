"""rejax's PPO, SAC and DQN as methods of ``diffsim compare`` (``ppo``, ``sac``, ``dqn``,
registered under the entry-point group ``diffsim.methods``).

A method's settings come from the recipe: ``recipe.method_options[name]`` is a dict with
``hidden`` (layer sizes), ``activation``, ``steps`` and ``quick_steps`` (training budgets,
env steps) and ``settings`` (rejax's own keyword arguments). Each shipped recipe cites its
values (rl-baselines3-zoo's tuned files, stable-baselines3's defaults) where it declares
them. A recipe that declares only some of them (a budget, a discount) or none (a user's env)
gets the rest from the tuned set of its action type: the ``pendulum`` recipe's
(Pendulum-v1) for continuous actions, the ``cartpole`` recipe's (CartPole-v1) for discrete
ones.
"""

from __future__ import annotations

import contextlib
import math
import warnings

import jax
import jax.numpy as jnp
import jax.random as jr

from diffsim import (
    AbstractEnv,
    AbstractMethod,
    DiffsimError,
    Discrete,
    Recipe,
    curve_return,
    load_recipe,
    train_seeds,
)

from ._rejax import policy_from_rejax

CURVE_POINTS = 10
"""Evaluations along an RL run (the learning curve of ``diffsim compare``)."""
FALLBACK_RECIPES = {"continuous": "pendulum", "discrete": "cartpole"}
"""Whose settings an env gets where its recipe declares none, by action type."""


def settings(name: str, recipe: Recipe, env: AbstractEnv) -> dict:
    """Method ``name``'s settings for ``recipe``: its ``method_options[name]`` over the
    tuned set of :data:`FALLBACK_RECIPES` for the env's action type (``settings`` merged
    key by key, everything else replaced)."""
    kind = "discrete" if isinstance(env.action_space, Discrete) else "continuous"
    base = load_recipe(FALLBACK_RECIPES[kind]).method_options.get(name, {})
    own = recipe.method_options.get(name, {})
    merged = base | own
    merged["settings"] = base.get("settings", {}) | own.get("settings", {})
    missing = {"hidden", "activation", "steps", "quick_steps"} - set(merged)
    if missing:
        raise DiffsimError(
            f"method {name!r} has no {', '.join(sorted(missing))} for {recipe.name}: declare "
            f"them in the recipe's method_options[{name!r}]"
        )
    return merged


@contextlib.contextmanager
def _rejax_context():
    """rejax 0.1.3 broadcasts implicitly and asks for int64 where x64 is off."""
    with warnings.catch_warnings(), jax.numpy_rank_promotion("allow"):
        warnings.filterwarnings("ignore", "Explicitly requested dtype int64", UserWarning)
        yield


def _require_rejax(name: str):
    try:
        import rejax
    except ImportError:
        raise DiffsimError(
            f"method {name!r} needs the rl extra (rejax): pip install -e '.[rl]' "
            "(or pip install 'rejax==0.1.3' 'gymnax<1'), or leave it out of --methods"
        ) from None
    return rejax


class Rejax(AbstractMethod):
    """A rejax 0.1.3 algorithm trained on ``diffsim.rl.to_gymnax(env)``, all seeds vmapped
    in one compiled program, evaluated along training every ``1 / CURVE_POINTS`` of the
    budget by the deterministic policy (:func:`diffsim.rl.policy_from_rejax`). The loop is
    rejax's own ``train`` (``train_iteration`` in a ``fori_loop``) cut into chunks so that
    wall-clock can be read between them.

    Attributes:
        algorithm: rejax's class name (``"PPO"``, ``"SAC"``, ``"DQN"``).
        discrete: the action type it needs (``None``: either).
    """

    name: str
    algorithm: str
    discrete: bool | None
    needs: str
    trained: bool = True
    by_default: bool = True

    def fits(self, env):
        return self.discrete is None or isinstance(env.action_space, Discrete) == self.discrete

    def check(self, recipe, env):
        _require_rejax(self.name)
        settings(self.name, recipe, env)

    def describe(self, recipe, env, quick):
        config = settings(self.name, recipe, env)
        steps = config["quick_steps"] if quick else config["steps"]
        hidden = "x".join(str(h) for h in config["hidden"])
        return f"rejax {self.algorithm}, {hidden} {config['activation']}, {steps:,} env steps"

    def run(self, recipe, seeds, *, quick, log):
        env = recipe.make_env()
        config = settings(self.name, recipe, env)
        spec = {
            "algorithm": self.algorithm,
            "hidden": list(config["hidden"]),
            "activation": config["activation"],
            "settings": config["settings"],
        }
        steps = config["quick_steps"] if quick else config["steps"]
        per_iteration = config["settings"]["num_envs"] * config["settings"].get("num_steps", 1)
        points = 2 if quick else CURVE_POINTS
        chunk = max(1, math.ceil(steps / per_iteration / points))
        algo = _build(env, spec, total_timesteps=chunk * points * per_iteration)

        def train_chunk(ts):
            return jax.lax.fori_loop(0, chunk, lambda _, ts: algo.train_iteration(ts), ts)

        keys = jax.vmap(jr.key)(jnp.asarray(list(seeds), jnp.uint32))
        with _rejax_context():
            return train_seeds(
                self.name,
                seeds,
                lambda: jax.jit(jax.vmap(algo.init_state))(keys),
                jax.jit(jax.vmap(train_chunk)),
                jax.jit(jax.vmap(lambda ts: curve_return(env, policy_from_rejax(algo, ts)))),
                lambda ts: int(ts.global_step[0]),
                lambda ts: (env, policy_from_rejax(algo, ts)),
                points=points,
                spec=spec,
                log=log,
            )

    def template(self, recipe, env, spec):
        algo = _build(env, spec, total_timesteps=1)
        with _rejax_context():
            return policy_from_rejax(algo, algo.init_state(jr.key(0)))


def _build(env: AbstractEnv, spec: dict, *, total_timesteps: int):
    """The rejax algorithm described by ``spec`` on ``env``."""
    rejax = _require_rejax(spec["algorithm"].lower())
    from flax import linen as nn

    from ._gymnax import TimeLimitAwareEnv
    from ._zoo import algorithm

    hidden, activation = tuple(spec["hidden"]), spec["activation"]
    options = dict(
        env=TimeLimitAwareEnv(env),
        total_timesteps=total_timesteps,
        eval_freq=total_timesteps,
        skip_initial_evaluation=True,
        **spec["settings"],
    )
    if spec["algorithm"] == "PPO":
        options["agent_kwargs"] = {"activation": activation, "hidden_layer_sizes": hidden}
    elif spec["algorithm"] == "SAC":
        options |= {"agent_kwargs": {"activation": activation}, "hidden_layer_sizes": hidden}
    else:
        options["agent_kwargs"] = {"activation": activation}
    algo = algorithm(rejax, spec["algorithm"]).create(**options)
    if spec["algorithm"] == "DQN":  # rejax 0.1.3 fixes DQN's hidden sizes at 64x64
        from rejax.algos.dqn import DiscreteQNetwork, EpsilonGreedyPolicy

        agent = EpsilonGreedyPolicy(DiscreteQNetwork)(
            hidden_layer_sizes=hidden,
            action_dim=env.action_space.num_actions,
            activation=getattr(nn, activation),
        )
        algo = algo.replace(agent=agent)
    return algo


ppo = Rejax(name="ppo", algorithm="PPO", discrete=None, needs="")
"""rejax's PPO (the entry point ``diffsim.methods: ppo``)."""
sac = Rejax(name="sac", algorithm="SAC", discrete=False, needs="continuous actions")
"""rejax's SAC, continuous actions (the entry point ``diffsim.methods: sac``)."""
dqn = Rejax(name="dqn", algorithm="DQN", discrete=True, needs="discrete actions")
"""rejax's DQN, discrete actions (the entry point ``diffsim.methods: dqn``)."""
