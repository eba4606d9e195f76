"""brax's analytic policy gradient (APG) as the ``diffsim compare`` method ``apg``
(registered under the entry-point group ``diffsim.methods``): the field's standard DP
baseline in JAX, run by brax's own ``apg.train`` on :func:`diffsim.rl.to_brax` of the env.

Settings come from the recipe's ``method_options["apg"]``: ``hidden`` (layer sizes),
``updates`` and ``quick_updates`` (policy updates), and ``settings`` (``apg.train``'s own
keyword arguments: ``num_envs``, ``horizon_length``, ``learning_rate``, ...). Whatever a
recipe leaves out is brax's default (brax 0.14.2: 32x4 ELU with layer norm, Adam 1e-4 with
betas (0.7, 0.95) decaying by 0.997 per update, updates clipped at 1, one env, 32-step
unrolls).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import statistics
import warnings
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array, Float

from diffsim import (
    CURVE_EPISODES,
    AbstractEnv,
    AbstractMethod,
    DiffsimError,
    MethodRun,
    Recipe,
    Stopwatch,
)

from ._brax import bounded, import_brax, scaled_control

CURVE_POINTS = 10
"""Evaluations along a run: the learning curve of ``diffsim compare``."""
COMPILED = 0.01
"""Seconds of JAX compilation from which an epoch counts as one that compiled."""


class BraxPolicy(eqx.Module):
    """The deterministic policy of a brax APG agent as a diffsim controller: the tanh of the
    network's mean, in ``[-1, 1]``, mapped onto the env's control bounds as
    :func:`diffsim.rl.to_brax` maps actions. ``t`` is ignored.

    Example: what the ``apg`` method of ``diffsim compare`` returns for each seed;
    ``diffsim.evaluate(env, policy)`` evaluates it as any controller.
    """

    normalizer: Any
    params: Any
    low: Float[Array, " m"]
    high: Float[Array, " m"]
    network: Any = eqx.field(static=True)

    def __call__(self, t, observation: Float[Array, " o"]) -> Float[Array, " m"]:
        with jax.numpy_rank_promotion("allow"):  # flax broadcasts implicitly
            logits = self.network.policy_network.apply(
                self.normalizer, self.params, jnp.asarray(observation, jnp.float32)[None]
            )
            action = self.network.parametric_action_distribution.mode(logits)[0]
        return scaled_control(self.low, self.high, action)


def _networks(env: AbstractEnv, spec: dict):
    """The APG networks ``spec`` describes, for ``env``."""
    import_brax("method 'apg'")
    from brax.training.acme import running_statistics

    return _networks_factory(
        env.observation_size,
        env.action_space.control_size,
        running_statistics.normalize if spec["normalize_observations"] else lambda x, _: x,
        spec=spec,
    )


def _policy(env: AbstractEnv, spec: dict, normalizer, params) -> BraxPolicy:
    return BraxPolicy(
        normalizer=normalizer,
        params=params,
        low=env.action_space.low,
        high=env.action_space.high,
        network=_networks(env, spec),
    )


def settings(recipe: Recipe) -> dict:
    """The recipe's ``method_options["apg"]``, checked."""
    config = dict(recipe.method_options.get("apg", {}))
    missing = {"hidden", "updates", "quick_updates"} - set(config)
    if missing:
        raise DiffsimError(
            f"method 'apg' has no {', '.join(sorted(missing))} for {recipe.name}: declare "
            "them in the recipe's method_options['apg']"
        )
    config.setdefault("activation", "elu")
    config.setdefault("settings", {})
    return config


def _device_put_replicated(x, devices):
    """JAX's documented drop-in replacement for ``jax.device_put_replicated``, on a mesh
    whose axis has the name of brax's ``pmap`` axis (``"i"``: one mesh across its program)."""
    sharding = NamedSharding(Mesh(np.array(devices), ("i",)), PartitionSpec("i"))
    return jax.tree.map(lambda y: jax.device_put(jnp.stack([y] * len(devices)), sharding), x)


@contextlib.contextmanager
def _brax_context():
    """brax 0.14.2 broadcasts implicitly, and replicates its training state with
    ``jax.device_put_replicated``, which JAX 0.10 removed (google/brax#671): JAX's
    documented replacement stands in for it while brax trains."""
    removed = "device_put_replicated" not in dir(jax)
    with warnings.catch_warnings(), jax.numpy_rank_promotion("allow"):
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        if removed:
            jax.device_put_replicated = _device_put_replicated
        try:
            yield
        finally:
            if removed:
                del jax.device_put_replicated


class APG(AbstractMethod):
    """brax's ``apg.train`` on ``diffsim.rl.to_brax(env)``: ``num_envs`` episodes carried
    from unroll to unroll (brax's auto-reset returns a finished episode to its first state),
    the gradient of each ``horizon_length``-step unroll's mean reward through the env's
    transition. Seeds run one after the other (``apg.train`` is a Python loop over
    compiled epochs); the learning curve is brax's own evaluator, the deterministic policy
    on :data:`diffsim.CURVE_EPISODES` episodes of the env's start distribution.
    """

    name: str = "apg"
    trained: bool = True
    by_default: bool = False
    needs: str = "continuous actions with finite bounds"

    def fits(self, env):
        return bounded(env)

    def check(self, recipe, env):
        import_brax("method 'apg'")
        settings(recipe)

    def describe(self, recipe, env, quick):
        config = settings(recipe)
        options = config["settings"]
        updates = config["quick_updates"] if quick else config["updates"]
        hidden = "x".join(str(h) for h in config["hidden"])
        return (
            f"brax APG, {hidden} {config['activation']}, {updates:,} updates of "
            f"{options.get('num_envs', 1)} x {options.get('horizon_length', 32)} steps"
        )

    def run(self, recipe, seeds, *, quick, log):
        import_brax("method 'apg'")
        from brax.training.agents.apg import train as apg

        from . import to_brax

        env = recipe.make_env()
        config = settings(recipe)
        options = dict(config["settings"])
        spec = {
            "hidden": list(config["hidden"]),
            "activation": config["activation"],
            "normalize_observations": bool(options.get("normalize_observations", False)),
        }
        points = 2 if quick else CURVE_POINTS
        per_point = math.ceil((config["quick_updates"] if quick else config["updates"]) / points)
        steps_per_update = options.get("num_envs", 1) * options.get("horizon_length", 32)
        curve_steps = [p * per_point * steps_per_update for p in range(points + 1)]
        runs = []
        for seed in seeds:
            walltimes, returns, intervals = [], [], []

            def progress(
                point, metrics, seed=seed, walltimes=walltimes, returns=returns, intervals=intervals
            ):
                if point:
                    intervals[-1].__exit__(None, None, None)
                walltimes.append(float(metrics.get("training/walltime", 0.0)))
                returns.append(float(metrics["eval/episode_reward"]))
                log(
                    f"apg seed {seed}: {curve_steps[point]:,} env steps, "
                    f"curve return {returns[-1]:.1f}"
                )
                intervals.append(Stopwatch().__enter__())

            everything = Stopwatch()
            with _brax_context(), everything:
                _, (normalizer, params), _ = apg.train(
                    environment=to_brax(env),
                    episode_length=env.episode_steps,
                    policy_updates=per_point * points,
                    num_evals=points + 1,
                    num_eval_envs=CURVE_EPISODES,
                    deterministic_eval=True,
                    seed=seed,
                    network_factory=functools.partial(_networks_factory, spec=spec),
                    progress_fn=progress,
                    **options,
                )
            seconds = _training_seconds(walltimes, [w.compile_seconds for w in intervals[:-1]])
            runs.append(
                MethodRun(
                    seed=seed,
                    controller=_policy(env, spec, normalizer, params),
                    env=env,
                    env_steps=curve_steps[-1],
                    train_seconds=seconds[-1],
                    compile_seconds=everything.compile_seconds,
                    curve_steps=curve_steps,
                    curve_seconds=seconds,
                    curve_returns=returns,
                    spec=spec,
                )
            )
        return runs

    def template(self, recipe, env, spec):
        from brax.training.acme import running_statistics, specs

        network = _networks(env, spec)
        normalizer = running_statistics.init_state(
            specs.Array((env.observation_size,), jnp.dtype("float32"))
        )
        return _policy(env, spec, normalizer, network.policy_network.init(jr.PRNGKey(0)))


def _training_seconds(walltimes: list[float], compiled: list[float]) -> list[float]:
    """Training seconds at each curve point from brax's ``training/walltime`` (its epochs
    only, evaluations excluded). An epoch during which JAX compiled (the first, and brax's
    second, whose inputs come back from ``pmap`` with another layout) is counted at the
    median time of the epochs that did not compile; if every epoch compiled (a quick run),
    at its wall-clock, compilation included."""
    epochs = [later - earlier for earlier, later in itertools.pairwise(walltimes)]
    clean = [epoch for epoch, c in zip(epochs, compiled, strict=True) if c < COMPILED]
    typical = statistics.median(clean) if clean else None
    counted = [
        epoch if c < COMPILED or typical is None else typical
        for epoch, c in zip(epochs, compiled, strict=True)
    ]
    return [0.0, *itertools.accumulate(counted)]


def _networks_factory(observation_size, action_size, preprocess_observations_fn, *, spec):
    """brax's ``network_factory``: its APG networks with the spec's layers and activation
    (brax passes the normaliser it trains with)."""
    from brax.training.agents.apg import networks
    from flax import linen

    return networks.make_apg_networks(
        observation_size,
        action_size,
        preprocess_observations_fn=preprocess_observations_fn,
        hidden_layer_sizes=tuple(spec["hidden"]),
        activation=getattr(linen, spec["activation"]),
    )


apg = APG()
"""brax's APG, continuous actions (the entry point ``diffsim.methods: apg``)."""
