"""The methods ``diffsim compare`` runs: differentiable training (``dp``, the env's recipe)
and rejax RL baselines (``ppo``, ``sac``, ``dqn``), behind one small plug-in point.

A method builds controllers for a recipe's env, one per seed, and reports what it cost
(:class:`MethodRun`); ``diffsim compare`` then evaluates, saves and tabulates every method the
same way. Adding a method is a subclass of :class:`AbstractMethod` registered under the
entry-point group ``diffsim.methods`` (or added to :data:`METHODS`). A controller that is
not trained (MPC, LQR) is a method with ``trained = False``: its runs report zero env
steps and an empty curve, and ``compare`` measures its compute time per control step
instead. The shipped ``lqr`` method (``controllers/_methods.py``, registered as
``lqr = "diffsim.controllers._methods:lqr"`` in this package's ``pyproject.toml``) is such
a method in about thirty lines.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import functools
import math
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from ._env import AbstractEnv
from ._errors import DiffsimError
from ._evaluate import _episode_returns, initial_states
from ._recipe import Recipe
from ._registry import named_entry_points
from ._rollout import Controller
from ._runner import _compile_clock, _scan_steps, chunk_length
from ._spaces import Discrete
from ._stateful import AbstractStatefulController
from ._train import Trainer

CURVE_EPISODES = 100
"""Episodes of every evaluation along training (the final one has ``--episodes``)."""
CURVE_SEED = 10_000
"""Seed of the start states of the evaluations along training (:func:`diffsim.train`'s
default ``eval_seed``), distinct from the final evaluation's."""
CURVE_POINTS = 10
"""Evaluations along an RL run (DP: the recipe's ``eval_every``)."""
METHOD_GROUP = "diffsim.methods"
"""Entry-point group of further methods: ``name = "package.module:method_instance"``."""


@dataclasses.dataclass
class MethodRun:
    """What one method produced for one seed.

    Attributes:
        seed: the training seed.
        controller, env: the final controller and the env it is evaluated on.
        env_steps: simulated control steps in training (every parallel episode counted).
        train_seconds: wall-clock of training, compilation and the evaluations along
            training excluded; for seeds trained together in one program
            (``seeds_in_program`` > 1) that program's time.
        compile_seconds: time JAX spent tracing and compiling.
        curve_steps, curve_seconds, curve_returns: the learning curve: env steps and
            training seconds at each evaluation along training, and the mean return of the
            deterministic policy on :data:`CURVE_EPISODES` episodes from :data:`CURVE_SEED`.
        spec: JSON-serialisable description from which :meth:`AbstractMethod.template`
            rebuilds the controller's structure (stored in the checkpoint).
        seeds_in_program: how many seeds one compiled program trained together.

    Example:
        ```python
        import diffsim

        env = diffsim.envs.Pendulum()
        zero = lambda t, observation: 0.0 * env.action_space.low   # an untrained controller
        run = diffsim.MethodRun(0, zero, env, 0, 0.0, 0.0, [], [], [], {})
        ```
    """

    seed: int
    controller: Controller | AbstractStatefulController
    env: AbstractEnv
    env_steps: int
    train_seconds: float
    compile_seconds: float
    curve_steps: list[int]
    curve_seconds: list[float]
    curve_returns: list[float]
    spec: dict
    seeds_in_program: int = 1


class AbstractMethod(abc.ABC):
    """A way of building a controller for a recipe's env (see the module docstring).

    Attributes:
        name: the method's name on the command line.
        trained: ``False`` for controllers that are computed, not trained (MPC, LQR):
            ``compare`` then reports their compute time per control step.

    Example:
        ```python
        import diffsim

        class Zero(diffsim.AbstractMethod):   # the do-nothing baseline, for scale
            name = "zero"
            trained = False

            def check(self, recipe, env):
                pass

            def run(self, recipe, seeds, *, quick, log):
                env = recipe.make_env()
                zero = lambda t, observation: 0.0 * env.action_space.low
                return [diffsim.MethodRun(s, zero, env, 0, 0.0, 0.0, [], [], [], {})
                        for s in seeds]

            def template(self, recipe, env, spec):
                return lambda t, observation: 0.0 * env.action_space.low
        ```
        With ``zero = Zero()`` in ``my_package/methods.py`` registered as
        ``zero = "my_package.methods:zero"`` under the ``diffsim.methods`` entry-point
        group, ``diffsim compare ENV --methods dp,zero`` runs it.
    """

    name: ClassVar[str]
    trained: ClassVar[bool] = True

    @abc.abstractmethod
    def check(self, recipe: Recipe, env: AbstractEnv) -> None:
        """Raise :class:`DiffsimError` (saying what to do) if the method does not apply to
        ``env`` or cannot run here; called before any work."""

    @abc.abstractmethod
    def run(
        self, recipe: Recipe, seeds: Sequence[int], *, quick: bool, log: Callable[[str], None]
    ) -> list[MethodRun]:
        """One :class:`MethodRun` per seed; ``quick`` for a short run (tests, notebooks);
        ``log`` prints a progress line."""

    @abc.abstractmethod
    def template(
        self, recipe: Recipe, env: AbstractEnv, spec: dict
    ) -> Controller | AbstractStatefulController:
        """A controller with the structure described by ``spec`` (any values): what a
        checkpoint of this method is loaded into."""

    def describe(self, recipe: Recipe, env: AbstractEnv, quick: bool) -> str:
        """One line on the settings and budget, for the table."""
        return ""


_RUNNER_OPTIONS = frozenset(
    {
        "eval_every",
        "eval_episodes",
        "eval_seed",
        "keep_best",
        "checkpoint",
        "checkpoint_every",
        "resume",
        "metadata",
        "progress",
        "callback",
    }
)
"""Options of :func:`diffsim.train` that are not the :class:`Trainer`'s."""


class DP(AbstractMethod):
    """Differentiable programming: the env's own recipe, every seed in one compiled program
    (``jax.vmap`` of :meth:`Trainer.step` over seeds), each seed starting exactly as
    :meth:`Recipe.run` starts it (controller and training keys split from ``key(seed)``);
    the final controller kept. Evaluated along training every ``eval_every`` updates of the
    recipe (default: at the end only). Batched float32 arithmetic is not bit-identical to
    one seed's, so a seed's result is close to, not equal to, ``diffsim train``'s."""

    name = "dp"

    def check(self, recipe, env):
        pass

    def run(self, recipe, seeds, *, quick, log):
        iterations = recipe.quick_iterations if quick else recipe.iterations
        env = recipe.make_env()
        options = {k: v for k, v in recipe.train_options.items() if k not in _RUNNER_OPTIONS}
        every = recipe.train_options.get("eval_every", 0) or iterations
        trainer = Trainer(recipe.make_optimiser(iterations), **options)
        per_iteration = trainer.batch_size * trainer.window_for(env)
        curve_states = initial_states(env, CURVE_EPISODES, CURVE_SEED)

        # controllers are built one seed at a time, outside any trace (a recipe may build
        # one with NumPy, e.g. an LQR initialisation), then stacked along a seed axis
        split = [jr.split(jr.key(seed)) for seed in seeds]
        built = [recipe.make_controller(env, controller_key) for controller_key, _ in split]
        arrays = [eqx.filter(controller, eqx.is_array) for controller in built]
        stacked = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *arrays)
        controllers = eqx.combine(stacked, eqx.filter(built[0], eqx.is_array, inverse=True))
        train_keys = jnp.stack([train_key for _, train_key in split])

        def start(controller, train_key):
            return trainer.init(env, controller, train_key)

        def score(state):
            returns, _ = _episode_returns(*state.model, curve_states)
            return jnp.mean(returns)

        stop = jnp.asarray(iterations, jnp.int32)
        chunk = chunk_length(iterations, every)
        steps = eqx.filter_jit(
            eqx.filter_vmap(lambda state: _scan_steps(trainer.step, state, stop, chunk))
        )
        compile_started = _compile_clock[0]
        states = eqx.filter_jit(eqx.filter_vmap(start))(controllers, train_keys)
        evaluate = eqx.filter_jit(eqx.filter_vmap(score))
        curve_steps, curve_seconds, curve_returns = [], [], []
        train_seconds, done = 0.0, 0
        while done < iterations:
            before, started = _compile_clock[0], time.perf_counter()
            states, (metrics, active, finite) = steps(states)
            active, finite = jax.device_get((active, finite))
            elapsed = time.perf_counter() - started
            train_seconds += max(0.0, elapsed - (_compile_clock[0] - before))
            if not finite[active].all():
                bad = sorted({seeds[i] for i in np.nonzero(~finite & active)[0]})
                raise DiffsimError(
                    f"dp: non-finite loss or gradient for seeds {bad} before update "
                    f"{done + chunk}; try a smaller learning rate or a shorter window"
                )
            done = int(states.iteration[0])
            if done % every == 0 or done == iterations:
                returns = [float(r) for r in jax.device_get(evaluate(states))]
                curve_steps.append(done * per_iteration)
                curve_seconds.append(train_seconds)
                curve_returns.append(returns)
                log(
                    f"dp: {curve_steps[-1]:,} env steps, {train_seconds:.1f} s, curve return "
                    f"median {statistics.median(returns):.1f} ({len(seeds)} seeds in one program)"
                )
        compile_seconds = _compile_clock[0] - compile_started
        runs = []
        for i, seed in enumerate(seeds):
            env_i, controller = _take(states.model, i)
            runs.append(
                MethodRun(
                    seed=seed,
                    controller=controller,
                    env=env_i,
                    env_steps=done * per_iteration,
                    train_seconds=train_seconds,
                    compile_seconds=compile_seconds,
                    curve_steps=curve_steps,
                    curve_seconds=curve_seconds,
                    curve_returns=[r[i] for r in curve_returns],
                    spec={"recipe": recipe.name},
                    seeds_in_program=len(seeds),
                )
            )
        return runs

    def template(self, recipe, env, spec):
        return recipe.make_controller(env, jr.key(0))

    def describe(self, recipe, env, quick):
        iterations = recipe.quick_iterations if quick else recipe.iterations
        options = recipe.train_options
        window = options.get("window") or env.episode_steps
        steps = iterations * options.get("batch_size", 64) * window
        return f"the `{recipe.name}` recipe, {iterations} updates, {steps:,} env steps"


def _take(tree, i: int):
    """Seed ``i`` of a pytree batched over seeds (arrays sliced, the rest kept)."""
    return jax.tree_util.tree_map(lambda x: x[i] if eqx.is_array(x) else x, tree)


# ---------------------------------------------------------------------------------------
# rejax baselines. Hyperparameters: rl-baselines3-zoo's tuned files (hyperparams/ppo.yml,
# sac.yml, dqn.yml), with stable-baselines3's defaults for what they leave out, translated
# to rejax 0.1.3's names. rejax has no gSDE (zoo's PPO and SAC on Pendulum-v1 use
# `use_sde: True`) and no linear schedules (zoo's `lin_0.001`): plain Gaussian exploration
# and constant rates are used instead.

_SAC_PENDULUM = dict(
    # zoo sac.yml Pendulum-v1: n_timesteps 20000, learning_rate 1e-3 (use_sde True: not in
    # rejax). SB3 SAC defaults: relu, learning_starts 100, batch_size 256, tau 0.005, gamma
    # 0.99, train_freq 1, gradient_steps 1, ent_coef "auto" (target entropy -dim(A));
    # buffer_size 1e6 (here: the whole budget, the same thing). One deviation: SB3's
    # default net_arch is [256, 256]; here 64x64 (rejax's default), because 20,000
    # sequential updates of 256-sample batches through 256x256 actor and twin critics cost
    # about 16 times as much and, five seeds on 2 CPU cores, took over 6 minutes for the
    # first 10 % of the budget (a shared machine): far beyond the 5-minute target.
    hidden=(64, 64),
    activation="relu",
    settings=dict(
        num_envs=1,
        learning_rate=1e-3,
        fill_buffer=100,
        batch_size=256,
        polyak=0.995,
        gamma=0.99,
        num_epochs=1,
        target_update_freq=1,
    ),
)
_PPO_PENDULUM = dict(
    # zoo ppo.yml Pendulum-v1: normalize true, n_envs 4, n_timesteps 1e5, n_steps 1024,
    # gae_lambda 0.95, gamma 0.9, n_epochs 10, ent_coef 0.0, learning_rate 1e-3,
    # clip_range 0.2 (use_sde True, sde_sample_freq 4: not in rejax). SB3 PPO defaults:
    # batch_size 64 (4 x 1024 / 64 = 64 minibatches), vf_coef 0.5, max_grad_norm 0.5,
    # net_arch [64, 64] tanh.
    hidden=(64, 64),
    activation="tanh",
    settings=dict(
        num_envs=4,
        num_steps=1024,
        num_minibatches=64,
        num_epochs=10,
        learning_rate=1e-3,
        gamma=0.9,
        gae_lambda=0.95,
        clip_eps=0.2,
        ent_coef=0.0,
        vf_coef=0.5,
        max_grad_norm=0.5,
        normalize_observations=True,
        normalize_rewards=True,
    ),
)
_PPO_CARTPOLE = dict(
    # zoo ppo.yml CartPole-v1: n_envs 8, n_timesteps 1e5, n_steps 32, batch_size 256 (one
    # minibatch of 8 x 32), gae_lambda 0.8, gamma 0.98, n_epochs 20, ent_coef 0.0,
    # learning_rate lin_0.001 and clip_range lin_0.2 (constant here). SB3 defaults:
    # vf_coef 0.5, max_grad_norm 0.5, net_arch [64, 64] tanh.
    hidden=(64, 64),
    activation="tanh",
    settings=dict(
        num_envs=8,
        num_steps=32,
        num_minibatches=1,
        num_epochs=20,
        learning_rate=1e-3,
        gamma=0.98,
        gae_lambda=0.8,
        clip_eps=0.2,
        ent_coef=0.0,
        vf_coef=0.5,
        max_grad_norm=0.5,
    ),
)
_DQN_CARTPOLE = dict(
    # zoo dqn.yml CartPole-v1: n_timesteps 5e4, learning_rate 2.3e-3, batch_size 64,
    # buffer_size 1e5, learning_starts 1000, gamma 0.99, target_update_interval 10,
    # train_freq 256, gradient_steps 128, exploration_fraction 0.16,
    # exploration_final_eps 0.04, net_arch [256, 256]. SB3 DQN defaults: relu, hard target
    # updates, max_grad_norm 10, no double Q. rejax takes `num_epochs` gradient steps per
    # step of `num_envs` envs: 2 envs and 1 gradient step keep zoo's 128 / 256 = 0.5
    # updates per env step, interleaved more finely. rejax's DQN loss is L2 (SB3: Huber).
    hidden=(256, 256),
    activation="relu",
    settings=dict(
        num_envs=2,
        num_epochs=1,
        learning_rate=2.3e-3,
        batch_size=64,
        buffer_size=50_000,
        fill_buffer=1000,
        gamma=0.99,
        target_update_freq=10,
        polyak=0.0,
        eps_start=1.0,
        eps_end=0.04,
        exploration_fraction=0.16,
        max_grad_norm=10.0,
        ddqn=False,
    ),
)


def _with(base: dict, **settings) -> dict:
    return base | {"settings": base["settings"] | settings}


RL_SETTINGS: dict[str, dict[str, dict]] = {
    "pendulum": {
        "sac": _SAC_PENDULUM | {"steps": 20_000, "quick_steps": 1_000},
        "ppo": _PPO_PENDULUM | {"steps": 100_000, "quick_steps": 8_192},
    },
    "cartpole": {
        "ppo": _PPO_CARTPOLE | {"steps": 100_000, "quick_steps": 2_048},
        "dqn": _DQN_CARTPOLE | {"steps": 50_000, "quick_steps": 2_000},
    },
    # No zoo entry for a continuous cart-pole: CartPole-v1's PPO settings and budget, and
    # Pendulum-v1's SAC settings with 50,000 steps (100 episodes of 500 steps, where
    # Pendulum's 20,000 are 100 episodes of 200).
    "cartpole-continuous": {
        "ppo": _PPO_CARTPOLE | {"steps": 100_000, "quick_steps": 2_048},
        "sac": _SAC_PENDULUM | {"steps": 50_000, "quick_steps": 1_000},
    },
    # No zoo entry for the swing-up: Pendulum-v1's settings (the tuned continuous swing-up)
    # with a discount for 500-step episodes (gamma 0.99) and budgets in line with what
    # published swing-up results need: SAC 100,000 steps (200 episodes), PPO 1,000,000.
    "cartpole-swingup": {
        "sac": _SAC_PENDULUM | {"steps": 100_000, "quick_steps": 1_000},
        "ppo": _with(_PPO_PENDULUM, gamma=0.99) | {"steps": 1_000_000, "quick_steps": 8_192},
    },
}
"""rejax settings and training budgets (env steps) by recipe and method, with their
sources in comments. Envs not listed (user envs) get the closest tuned set by action type:
Pendulum-v1's for continuous actions, CartPole-v1's for discrete ones."""

_FALLBACK = {"continuous": "pendulum", "discrete": "cartpole"}


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
    wall-clock can be read between them."""

    def __init__(self, name: str, algorithm: str, discrete: bool | None):
        self.name, self.algorithm, self.discrete = name, algorithm, discrete

    def check(self, recipe, env):
        is_discrete = isinstance(env.action_space, Discrete)
        if self.discrete is not None and is_discrete != self.discrete:
            kind = "discrete" if is_discrete else "continuous"
            fitting = [m for m, method in METHODS.items() if _fits(method, is_discrete)]
            raise DiffsimError(
                f"method {self.name!r} needs {'discrete' if self.discrete else 'continuous'} "
                f"actions but {recipe.name} has {kind} ones: choose from {', '.join(fitting)}"
            )
        _require_rejax(self.name)

    def settings(self, recipe: Recipe, env: AbstractEnv) -> dict:
        table = RL_SETTINGS.get(recipe.name)
        if table is None or self.name not in table:
            kind = "discrete" if isinstance(env.action_space, Discrete) else "continuous"
            table = RL_SETTINGS[_FALLBACK[kind]]
        if self.name in table:
            return table[self.name]
        # a method that fits but has no tuned set for this action type (e.g. sac on cartpole)
        other = RL_SETTINGS[_FALLBACK["continuous" if self.name == "sac" else "discrete"]]
        return other[self.name]

    def describe(self, recipe, env, quick):
        config = self.settings(recipe, env)
        steps = config["quick_steps"] if quick else config["steps"]
        hidden = "x".join(str(h) for h in config["hidden"])
        return f"rejax {self.algorithm}, {hidden} {config['activation']}, {steps:,} env steps"

    def run(self, recipe, seeds, *, quick, log):
        env = recipe.make_env()
        config = self.settings(recipe, env)
        spec = {
            "algorithm": self.algorithm,
            "hidden": list(config["hidden"]),
            "activation": config["activation"],
            "settings": config["settings"],
        }
        steps = config["quick_steps"] if quick else config["steps"]
        settings = config["settings"]
        per_iteration = settings["num_envs"] * settings.get("num_steps", 1)
        points = 2 if quick else CURVE_POINTS
        chunk = max(1, math.ceil(steps / per_iteration / points))
        algo = _build(env, spec, total_timesteps=chunk * points * per_iteration)
        from ._rejax import policy_from_rejax

        curve_states = initial_states(env, CURVE_EPISODES, CURVE_SEED)

        def score(ts):
            returns, _ = _episode_returns(env, policy_from_rejax(algo, ts), curve_states)
            return jnp.mean(returns)

        def train_chunk(ts):
            return jax.lax.fori_loop(0, chunk, lambda _, ts: algo.train_iteration(ts), ts)

        keys = jax.vmap(jr.key)(jnp.asarray(list(seeds), jnp.uint32))
        compile_started = _compile_clock[0]
        curve_steps, curve_seconds, curve_returns = [], [], []
        train_seconds = 0.0
        with _rejax_context():
            init = jax.jit(jax.vmap(algo.init_state))
            step = jax.jit(jax.vmap(train_chunk))
            evaluate = jax.jit(jax.vmap(score))
            ts = jax.block_until_ready(init(keys))
            for point in range(points + 1):
                if point:
                    before, started = _compile_clock[0], time.perf_counter()
                    ts = jax.block_until_ready(step(ts))
                    elapsed = time.perf_counter() - started
                    train_seconds += max(0.0, elapsed - (_compile_clock[0] - before))
                returns = jax.device_get(evaluate(ts))
                curve_steps.append(int(ts.global_step[0]))
                curve_seconds.append(train_seconds)
                curve_returns.append([float(r) for r in returns])
                log(
                    f"{self.name}: {curve_steps[-1]:,} env steps, {train_seconds:.1f} s, "
                    f"curve return median {statistics.median(returns):.1f} "
                    f"({len(seeds)} seeds in one program)"
                )
        compile_seconds = _compile_clock[0] - compile_started
        runs = []
        for i, seed in enumerate(seeds):
            one = _take(ts, i)
            runs.append(
                MethodRun(
                    seed=seed,
                    controller=policy_from_rejax(algo, one),
                    env=env,
                    env_steps=curve_steps[-1],
                    train_seconds=train_seconds,
                    compile_seconds=compile_seconds,
                    curve_steps=curve_steps,
                    curve_seconds=curve_seconds,
                    curve_returns=[r[i] for r in curve_returns],
                    spec=spec,
                    seeds_in_program=len(seeds),
                )
            )
        return runs

    def template(self, recipe, env, spec):
        from ._rejax import policy_from_rejax

        algo = _build(env, spec, total_timesteps=1)
        with _rejax_context():
            return policy_from_rejax(algo, algo.init_state(jr.key(0)))


def _fits(method: AbstractMethod, discrete: bool) -> bool:
    wanted = getattr(method, "discrete", None)
    return wanted is None or wanted == discrete


def _build(env: AbstractEnv, spec: dict, *, total_timesteps: int):
    """The rejax algorithm described by ``spec`` on ``env``."""
    rejax = _require_rejax(spec["algorithm"].lower())
    from flax import linen as nn

    from . import rl

    settings = dict(spec["settings"])
    hidden, activation = tuple(spec["hidden"]), spec["activation"]
    options = dict(
        env=rl.to_gymnax(env),
        total_timesteps=total_timesteps,
        eval_freq=total_timesteps,
        skip_initial_evaluation=True,
        **settings,
    )
    if spec["algorithm"] == "PPO":
        options["agent_kwargs"] = {"activation": activation, "hidden_layer_sizes": hidden}
    elif spec["algorithm"] == "SAC":
        options |= {"agent_kwargs": {"activation": activation}, "hidden_layer_sizes": hidden}
    else:
        options["agent_kwargs"] = {"activation": activation}
    algorithm = getattr(rejax, spec["algorithm"])
    algo = algorithm.create(**options)
    if spec["algorithm"] == "DQN":  # rejax 0.1.3 fixes DQN's hidden sizes at 64x64
        from rejax.algos.dqn import DiscreteQNetwork, EpsilonGreedyPolicy

        agent = EpsilonGreedyPolicy(DiscreteQNetwork)(
            hidden_layer_sizes=hidden,
            action_dim=env.action_space.num_actions,
            activation=getattr(nn, activation),
        )
        algo = algo.replace(agent=agent)
    return algo


METHODS: dict[str, AbstractMethod] = {
    "dp": DP(),
    "ppo": Rejax("ppo", "PPO", None),
    "sac": Rejax("sac", "SAC", False),
    "dqn": Rejax("dqn", "DQN", True),
}
"""The shipped methods by name."""


@functools.cache
def methods() -> dict[str, AbstractMethod]:
    """The shipped methods and those installed under the ``diffsim.methods`` group."""
    return METHODS | named_entry_points(METHOD_GROUP, AbstractMethod, "an AbstractMethod")


def default_methods(env: AbstractEnv) -> list[str]:
    """``dp`` and the RL baselines for the env's action space."""
    return ["dp", "ppo", "dqn"] if isinstance(env.action_space, Discrete) else ["dp", "ppo", "sac"]


def resolve(names: Sequence[str] | None, recipe: Recipe, env: AbstractEnv) -> list[AbstractMethod]:
    """The methods named (default :func:`default_methods`), each checked against ``env``
    before any work: an unknown name, a method that does not fit the action space or a
    missing extra is a :class:`DiffsimError` saying what to do."""
    known = methods()
    names = default_methods(env) if not names else list(names)
    chosen = []
    for name in names:
        if name not in known:
            raise DiffsimError(
                f"unknown method {name!r}: choose from {', '.join(sorted(known))} "
                "(comma-separated, e.g. --methods dp,ppo)"
            )
        known[name].check(recipe, env)
        if known[name] not in chosen:
            chosen.append(known[name])
    return chosen


def controller_template(
    recipe: Recipe, env: AbstractEnv, metadata: dict[str, Any]
) -> Controller | AbstractStatefulController:
    """The controller structure a checkpoint is loaded into: the method's (from the
    checkpoint's ``method`` and ``controller`` metadata, as ``diffsim compare`` writes
    them), else the recipe's."""
    name = metadata.get("method")
    if name is None:
        return recipe.make_controller(env, jr.key(0))
    known = methods()
    if name not in known:
        raise DiffsimError(
            f"the checkpoint was written by method {name!r}, which is not installed "
            f"(known: {', '.join(sorted(known))})"
        )
    return known[name].template(recipe, env, metadata.get("controller", {}))
