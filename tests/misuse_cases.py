"""The misuses of the public API that ``test_misuse.py`` runs, as a user would meet them:
in a process of their own, without the test suite's runtime type checking."""

import tempfile

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax

import diffsim
from diffsim import MLPPolicy, plotting, rl
from diffsim.controllers import LQR, MPC, Mirrored, Residual, Squashed, ValueIteration
from diffsim.envs import Acrobot, CartPole, Epidemic, Pendulum, PlanarQuadrotor

ENV = Pendulum()
POLICY = MLPPolicy.for_env(ENV, width=4, depth=1, key=jr.key(0))
Y, U = jnp.zeros(2), jnp.zeros(1)


def _train(**options):
    options = dict(key=jr.key(0), iterations=1, progress=False) | options
    return diffsim.train(ENV, POLICY, optax.adam(1e-3), **options)


def _episodes(batch=None):
    """Pendulum episodes of 5 steps: one, or a batch."""
    one = lambda y: diffsim.rollout(ENV, POLICY, y, num_steps=5)  # noqa: E731
    return one(Y) if batch is None else jax.vmap(one)(jnp.zeros((batch, 2)))


class _OutputOnly(diffsim.AbstractStatefulController):
    def init(self):
        return jnp.zeros(())

    def step(self, state, t, x):
        return x[:1]


class _Growing(diffsim.AbstractStatefulController):
    def init(self):
        return jnp.zeros(1)

    def step(self, state, t, x):
        return x[:1], jnp.concatenate([state, x[:1]])


def _trained(iteration, metrics):
    raise RuntimeError("train refused its argument only after training")


def _train_first(**options):
    """train, failing otherwise if it trains before it refuses an argument."""
    return _train(callback=_trained, **options)


MISUSES = [
    # (what, call, words the message must contain)
    ("Box of text", lambda: diffsim.Box("a", 1.0), "Box's low must be numbers"),
    ("Box upside down", lambda: diffsim.Box(2.0, 1.0), "low must not exceed its high"),
    ("Box of NaN", lambda: diffsim.Box(float("nan"), 1.0), "Box's low must be numbers or "
     "infinities, not NaN, got nan"),
    ("Discrete of text", lambda: diffsim.Discrete("ab"), "Discrete's values must be numbers"),
    ("Gumbel at zero temperature", lambda: diffsim.GumbelSoftmax(0.0), "temperature must be"),
    ("ODEStep solver by name", lambda: diffsim.ODEStep(solver="tsit5"), "diffrax.Tsit5()"),
    ("ODEStep no substeps", lambda: diffsim.ODEStep(substeps=0), "substeps must be a positive"),
    ("ODESolve no steps", lambda: diffsim.ODESolve(max_steps=0), "max_steps must be a positive"),
    ("ODESolve controller by name", lambda: diffsim.ODESolve(stepsize_controller="pid"),
     "stepsize_controller must be a diffrax step-size controller"),
    ("ODESolve adjoint by name", lambda: diffsim.ODESolve(adjoint="x"), "adjoint must be"),
    ("MLP without inputs", lambda: MLPPolicy(0, ENV.action_space, key=jr.key(0)),
     "observation_size must be a positive integer"),
    ("MLP for a name", lambda: MLPPolicy.for_env("env", key=jr.key(0)), "needs a diffsim.AbstractEnv"),
    ("MLP without width", lambda: MLPPolicy.for_env(ENV, width=0, key=jr.key(0)), "width must be"),
    ("MLP negative depth", lambda: MLPPolicy.for_env(ENV, depth=-1, key=jr.key(0)), "depth must be"),
    ("MLP seed as key", lambda: MLPPolicy.for_env(ENV, key=0), "key must be a JAX PRNG key"),
    ("MLP scales of another env", lambda: MLPPolicy.for_env(ENV, observation_scale=(1, 2),
     key=jr.key(0)), "observation_scale must be 3 positive numbers"),
    ("MLP space by name", lambda: MLPPolicy(3, "box", key=jr.key(0)), "action_space must be"),
    ("ClosedLoop of a name", lambda: diffsim.ClosedLoop("env", POLICY), "env must be a diffsim"),
    ("Recipe of numbers", lambda: diffsim.Recipe("x", 1, 1, 1, 10, 1), "make_env must be a function"),
    ("Trainer with a name", lambda: diffsim.Trainer("adam"), "optimiser must be an optax"),
    ("Trainer on a count of devices", lambda: diffsim.Trainer(optax.adam(1e-3), devices=4),
     "devices must be a non-empty list of jax devices (e.g. jax.devices()), a "
     "jax.sharding.Mesh or None, got 4"),
    ("SHAC critic optimiser by name", lambda: diffsim.SHAC(optax.adam(1e-3), "adam"),
     "critic_optimiser must be an optax"),
    ("SHAC discount above 1", lambda: diffsim.SHAC(optax.adam(1e-3), optax.adam(1e-3), gamma=1.5),
     "gamma must be in [0, 1], got 1.5"),
    ("SHAC negative lambda", lambda: diffsim.SHAC(optax.adam(1e-3), optax.adam(1e-3), lam=-0.1),
     "lam must be in [0, 1]"),
    ("SHAC no critic updates",
     lambda: diffsim.SHAC(optax.adam(1e-3), optax.adam(1e-3), critic_updates=0), "critic_updates"),
    ("SHAC zero value scale",
     lambda: diffsim.SHAC(optax.adam(1e-3), optax.adam(1e-3), value_scale=0.0), "value_scale"),
    ("SHAC critic batch above the batch", lambda: diffsim.SHAC(optax.adam(1e-3), optax.adam(1e-3),
     batch_size=8, critic_batch_size=16), "critic_batch_size=16 exceeds the 8 episodes"),
    ("SHAC empty critic batch", lambda: diffsim.SHAC(optax.adam(1e-3), optax.adam(1e-3),
     critic_batch_size=0), "critic_batch_size must be a positive"),
    ("SHAC step cost a number", lambda: diffsim.SHAC(optax.adam(1e-3), optax.adam(1e-3), cost=1.0),
     "cost must be a function cost(env, trajectory)"),
    ("SHAC.step of a name", lambda: diffsim.SHAC(optax.adam(1e-3), optax.adam(1e-3)).step("s"),
     "state must be a diffsim.SHACState"),
    ("ValueMLP for a name", lambda: diffsim.ValueMLP.for_env("env", key=jr.key(0)),
     "ValueMLP.for_env needs a diffsim.AbstractEnv"),
    ("Trainer with a rate", lambda: diffsim.Trainer(0.01), "optimiser must be an optax"),
    ("Trainer empty batch", lambda: diffsim.Trainer(optax.adam(1e-3), batch_size=0), "batch_size"),
    ("Trainer negative window", lambda: diffsim.Trainer(optax.adam(1e-3), window=-1), "window"),
    ("Trainer no horizon", lambda: diffsim.Trainer(optax.adam(1e-3), horizon=0), "horizon must be"),
    (
        "Trainer horizon past the episode",
        lambda: diffsim.Trainer(optax.adam(1e-3), horizon=300).init(ENV, POLICY, jr.key(0)),
        "horizon=300 is longer than Pendulum's episode of 200 steps",
    ),
    (
        "Trainer window past the episode",
        lambda: diffsim.Trainer(optax.adam(1e-3), window=80, horizon=50).init(
            ENV, POLICY, jr.key(0)
        ),
        "window=80 is longer than a training episode of Pendulum (50 steps)",
    ),
    ("Trainer unknown part", lambda: diffsim.Trainer(optax.adam(1e-3), trainable="all"),
     "trainable must be one of 'controller', 'env', 'both'"),
    ("Trainer devices by name", lambda: diffsim.Trainer(optax.adam(1e-3), devices="all"),
     "devices must be jax devices, e.g. jax.devices()"),
    ("Trainer estimator by name", lambda: diffsim.Trainer(optax.adam(1e-3), estimator="st"),
     "estimator must be a diffsim.StraightThrough()"),
    ("Trainer.step of a name", lambda: diffsim.Trainer(optax.adam(1e-3)).step("state"),
     "state must be a diffsim.TrainState"),
    ("Trainer.init swapped", lambda: diffsim.Trainer(optax.adam(1e-3)).init(POLICY, ENV, jr.key(0)),
     "the env and the controller are swapped"),
    ("Trainer.init seed as key", lambda: diffsim.Trainer(optax.adam(1e-3)).init(ENV, POLICY, 0),
     "key must be a JAX PRNG key such as jax.random.key(0), got 0"),
    ("adam_cosine negative rate", lambda: diffsim.adam_cosine(-1.0, 10), "learning_rate must be"),
    ("adam_cosine no updates", lambda: diffsim.adam_cosine(1e-2, 0), "iterations must be"),
    ("adam_cosine no clip", lambda: diffsim.adam_cosine(1e-2, 10, clip=0.0), "clip must be"),
    ("adam_cosine growing", lambda: diffsim.adam_cosine(1e-2, 10, final_fraction=2.0),
     "final_fraction must be between 0 and 1"),
    ("check_positive of text", lambda: diffsim.check_positive(m="a"), "m must be a positive"),
    ("compare methods as text", lambda: diffsim.compare("pendulum", methods="dp"),
     "methods must be a list of method names"),
    ("compare no seeds", lambda: diffsim.compare("pendulum", seeds=0), "seeds must be a positive"),
    ("compare env by number", lambda: diffsim.compare(3), "the env must be named by a string"),
    ("control state shape", lambda: diffsim.control(ENV, POLICY, 0.0, jnp.zeros(3)),
     "state has shape (3,) but Pendulum needs shape (2,)"),
    ("control of a name", lambda: diffsim.control("env", POLICY, 0.0, Y), "env must be a diffsim"),
    ("curve_return of a name", lambda: diffsim.curve_return("env", POLICY), "env must be"),
    ("default_recipe of numbers", lambda: diffsim.default_recipe(1, 2), "name must be"),
    ("evaluate a name", lambda: diffsim.evaluate(ENV, "policy"),
     "controller must be callable as controller(t, observation)"),
    ("evaluate swapped", lambda: diffsim.evaluate(POLICY, ENV), "swapped"),
    ("evaluate no episodes", lambda: diffsim.evaluate(ENV, POLICY, episodes=0), "episodes must"),
    ("evaluate negative seed", lambda: diffsim.evaluate(ENV, POLICY, seed=-1), "seed must be"),
    ("evaluate another env's policy", lambda: diffsim.evaluate(CartPole(), POLICY, episodes=2),
     "MLPPolicy takes observations of shape (3,), got (4,)"),
    ("fit a name", lambda: diffsim.fit("loss", POLICY, optax.adam(1e-3), key=jr.key(0),
     iterations=1), "loss must be a function"),
    ("fit nothing", lambda: diffsim.fit(lambda m, k: 0.0, POLICY, optax.adam(1e-3), key=jr.key(0),
     iterations=1, where=lambda m: m.nothing), "where must select nodes of the model"),
    ("fit seed as key", lambda: diffsim.fit(lambda m, k: 0.0, POLICY, optax.adam(1e-3), key=0,
     iterations=1), "key must be a JAX PRNG key"),
    ("initial_states none", lambda: diffsim.initial_states(ENV, 0, 0), "episodes must be"),
    ("linearise a name", lambda: diffsim.linearise("env", Y, U), "env must be a diffsim"),
    ("linearise state shape", lambda: diffsim.linearise(ENV, jnp.zeros(3), U), "state has shape"),
    ("load_checkpoint missing", lambda: diffsim.load_checkpoint("/no/such.eqx", POLICY),
     "no checkpoint file at /no/such.eqx"),
    ("load_recipe by number", lambda: diffsim.load_recipe(3), "named by a string"),
    ("load_recipe missing file", lambda: diffsim.load_recipe("nowhere.py:X"), "no Python file"),
    ("parameter of text", lambda: diffsim.parameter("a"), "a parameter's default must be"),
    ("rollout no steps", lambda: diffsim.rollout(ENV, POLICY, Y, num_steps=0), "num_steps"),
    ("rollout before the start", lambda: diffsim.rollout(ENV, POLICY, Y, start_step=-1),
     "start_step must be a non-negative integer"),
    ("rollout past the end", lambda: diffsim.rollout(ENV, POLICY, Y, start_step=500),
     "start_step 500 is not inside Pendulum's episode of 200 steps"),
    ("rollout unknown mode", lambda: diffsim.rollout(ENV, POLICY, Y, mode="euler"), "mode must"),
    ("rollout unrolled 0 steps", lambda: diffsim.rollout(ENV, POLICY, Y, unroll=0), "unroll must"),
    ("rollout seed as key", lambda: diffsim.rollout(ENV, POLICY, Y, key=0), "key must be a JAX"),
    ("rollout from NaN", lambda: diffsim.rollout(ENV, POLICY, jnp.array([jnp.nan, 0.0])),
     "initial state contains NaN"),
    ("rollout from text", lambda: diffsim.rollout(ENV, POLICY, "y"), "initial state must be"),
    ("rollout estimator by name", lambda: diffsim.rollout(ENV, POLICY, Y, estimator="st"),
     "estimator must be"),
    ("save_checkpoint list metadata", lambda: diffsim.save_checkpoint("/tmp/x.eqx", POLICY, [1]),
     "metadata must be a dict"),
    ("save_checkpoint nowhere", lambda: diffsim.save_checkpoint("/proc/x/y.eqx", POLICY),
     "cannot write a checkpoint at /proc/x/y.eqx"),
    ("seconds_per_step no repeats", lambda: diffsim.seconds_per_step(ENV, POLICY, repeats=0),
     "repeats must be"),
    ("step control shape", lambda: diffsim.step(ENV, 0.0, Y, jnp.zeros(2)),
     "control has shape (2,) but Pendulum needs shape (1,)"),
    ("step time as text", lambda: diffsim.step(ENV, "0", Y, U), "t (s) must be a number of seconds"),
    ("train a rate as optimiser", lambda: diffsim.train(ENV, POLICY, 0.01, key=jr.key(0),
     iterations=1), "optimiser must be an optax"),
    ("train seed as key", lambda: _train(key=0), "key must be a JAX PRNG key"),
    ("train swapped", lambda: diffsim.train(POLICY, ENV, optax.adam(1e-3), key=jr.key(0),
     iterations=1), "the env and the controller are swapped"),
    ("train negative schedule", lambda: _train(eval_every=-1), "eval_every must be"),
    ("train misspelt option", lambda: _train(batchsize=4), "unknown options ['batchsize']"),
    ("train callback by name", lambda: _train(callback="x"), "callback must be a function"),
    ("train checkpoint nowhere", lambda: _train_first(checkpoint="/proc/x/y.eqx"),
     "the checkpoint's folder /proc/x is not a writable folder"),
    ("train checkpoint a folder", lambda: _train_first(checkpoint=tempfile.gettempdir()),
     "is a folder (name a file)"),
    ("train negative evaluation seed", lambda: _train_first(eval_seed=-1),
     "eval_seed must be a whole number from 0"),
    ("train metadata a list", lambda: _train_first(metadata=[1, 2]),
     "metadata must be a dict of JSON values, got list"),
    ("train metadata not JSON", lambda: _train_first(
     checkpoint=f"{tempfile.gettempdir()}/diffsim-misuse.eqx", metadata={"a": object()}),
     "checkpoint metadata must be JSON-serialisable"),
    ("save_checkpoint into a folder", lambda: diffsim.save_checkpoint(tempfile.gettempdir(),
     POLICY), "is a folder (name a file)"),
    ("train resume missing", lambda: _train(resume="/no/such.eqx"), "no checkpoint file"),
    ("Pendulum one half-width", lambda: Pendulum(start=(1.0,)), "start must be two non-negative"),
    ("Pendulum negative mass", lambda: Pendulum(m=-1.0), "m must be positive and finite"),
    ("evaluate a batch of envs with a negative g",
     lambda: diffsim.evaluate(
         eqx.filter_vmap(lambda g: Pendulum(g=g))(jnp.array([9.0, -1.0])), POLICY, episodes=2
     ),
     "evaluate: Pendulum.g = [9.0, -1.0]: each must be positive and finite"),
    ("CartPole unknown task", lambda: CartPole(task="x"), "task must be one of"),
    ("Acrobot unknown action", lambda: Acrobot(action="x"), "action must be one of"),
    ("PlanarQuadrotor massless", lambda: PlanarQuadrotor(mass=0.0), "mass must be positive"),
    ("Epidemic negative rate", lambda: Epidemic(beta=-1.0), "beta must be positive"),
    ("Epidemic beyond every contact", lambda: Epidemic(max_reduction=2.0), "at most 1"),
    ("LQR of a name", lambda: LQR.from_env("env", Y, U, jnp.eye(2), jnp.eye(1)), "AbstractEnv"),
    ("LQR weights of another size", lambda: LQR.from_env(ENV, Y, U, jnp.eye(3), jnp.eye(1)),
     "Q must have shape (2, 2), got (3, 3)"),
    ("MPC of a name", lambda: MPC("env", 10, 10, optax.adam(0.1)), "plans through a diffsim"),
    ("MPC without horizon", lambda: MPC(ENV, 0, 10, optax.adam(0.1)), "horizon must be"),
    ("MPC a rate as optimiser", lambda: MPC(ENV, 10, 10, 0.1), "optimiser must be an optax"),
    ("Mirrored of a name", lambda: Mirrored("pol", (1, -1, -1), (-1,)), "Mirrored needs a policy"),
    ("Mirrored signs of zeros", lambda: Mirrored(POLICY, (1, 0, -1), (-1,)),
     "observation_signs must be a sequence of +1 and -1"),
    ("Squashed of a name", lambda: Squashed("pol", diffsim.Box(-2.0, 2.0)), "Squashed needs a policy"),
    ("Squashed into an unbounded box", lambda: Squashed(POLICY, diffsim.Box(-jnp.inf, 2.0)),
     "Squashed needs a diffsim.Box with finite bounds"),
    ("check_env of a name", lambda: diffsim.testing.check_env("env"), "needs a diffsim.AbstractEnv"),
    ("Quantity of a number", lambda: diffsim.Quantity(3), "name must be a string"),
    ("Variables of names", lambda: diffsim.Variables(("x",), (), ()), "tuple of diffsim.Quantity"),
    ("compare no methods", lambda: diffsim.compare("pendulum", methods=[]),
     "methods names no method: pass None for the default methods"),
    ("compare a negative eval seed", lambda: diffsim.compare("pendulum", eval_seed=-1),
     "eval_seed must be a whole number from 0 to 4294967295, got -1"),
    ("compare quick as text", lambda: diffsim.compare("pendulum", quick="no"),
     "quick must be True or False, got 'no'"),
    ("compare into a file", lambda: diffsim.compare("pendulum", methods=["dp"], out=__file__),
     "misuse_cases.py exists and is not a folder"),
    ("Residual of a number base", lambda: Residual.for_env(ENV, 3, bound=1.0, key=jr.key(0)),
     'Residual needs a base callable as base(t, observation), got 3'),
    ("Residual of a number network", lambda: Residual(lambda t, o: jnp.zeros(1), 3, bound=1.0),
     'Residual needs a network callable as network(t, observation), got 3'),
    ("Residual for a name", lambda: Residual.for_env("pendulum", lambda t, o: jnp.zeros(1), bound=1.0, key=jr.key(0)),
     "Residual.for_env needs a diffsim.AbstractEnv, got 'pendulum'"),
    ("MPC objective a number", lambda: MPC(ENV, 5, 5, optax.adam(0.1), objective=3),
     'MPC objective must be callable as objective(env, trajectory), got 3'),
    ("MPC iterations a float", lambda: MPC(ENV, 5, 2.0, optax.adam(0.1)),
     'MPC iterations must be a positive integer, got 2.0'),
    ("ValueIteration bound a number", lambda: ValueIteration.unsolved(ENV, {"theta_dot": 8.0}),
     'bounds of theta_dot must be a pair (low, high) of numbers, got 8.0'),
    ("ValueIteration bound of three", lambda: ValueIteration.unsolved(ENV, {"theta_dot": (1.0, 2.0, 3.0)}),
     'bounds of theta_dot must be a pair (low, high) of numbers, got (1.0, 2.0, 3.0)'),
    ("ValueIteration bound text", lambda: ValueIteration.unsolved(ENV, {"theta_dot": "18"}),
     "bounds of theta_dot must be a pair (low, high) of numbers, got '18'"),
    ("ValueIteration grid one number", lambda: ValueIteration.unsolved(ENV, {"theta_dot": (-8, 8)}, grid=11),
     'grid must be two integers of at least 3, got 11'),
    ("ValueIteration grid of floats", lambda: ValueIteration.unsolved(ENV, {"theta_dot": (-8, 8)}, grid=(11.0, 11)),
     'grid must be two integers of at least 3, got (11.0, 11)'),
    ("gymnax adapter of a non-env", lambda: rl.to_gymnax(object()),
     "to_gymnax needs a diffsim.AbstractEnv, got <object"),
    ("gymnasium adapter of a name", lambda: rl.to_gymnasium("pendulum"),
     "to_gymnasium needs a diffsim.AbstractEnv, got 'pendulum'"),
    ("RL step a float index", lambda: rl.step(CartPole(), rl.reset(CartPole(), jr.key(0))[1], 0.5),
     "a Discrete action is one integer index from 0 to 1, got shape () and dtype float"),
    ("RL reset with a seed", lambda: rl.reset(ENV, 0),
     "key must be a JAX PRNG key (jax.random.key(seed)), got 0"),
    ("learning curve of a dict", lambda: plotting.plot_learning_curve({"loss": [1, 2]}),
     "history must be a diffsim.History"),
    ("learning curve of nothing", lambda: plotting.plot_learning_curve(diffsim.History()),
     "history holds no update and no evaluation yet"),
    ("animate a batch", lambda: plotting.animate(ENV, _episodes(2)),
     "animate takes one trajectory, got a batch of shape (2,)"),
    ("animate every 0th state", lambda: plotting.animate(ENV, _episodes(), every=0),
     "every must be a positive integer, got 0"),
    ("animate backwards in time", lambda: plotting.animate(ENV, _episodes(), interval_ms=-5),
     "interval_ms must be a positive, finite number, got -5"),
    ("stateful step without its state", lambda: diffsim.rollout(ENV, _OutputOnly(), Y),
     "_OutputOnly.step must return (output, next_state), got float32[1]"),
    ("stateful state that grows", lambda: diffsim.evaluate(ENV, _Growing(), episodes=2),
     "_Growing.step returned a next state of another form than the state it was given "
     "(init()'s): float32[2] for float32[1]"),
]



MISSING = [
    # (what, call, the argument Python's TypeError names)
    ("MPC without iterations", lambda: MPC(ENV, 10), "'iterations' and 'optimiser'"),
    ("Trainer without optimiser", lambda: diffsim.Trainer(), "'optimiser'"),
    ("train without key", lambda: diffsim.train(ENV, POLICY, optax.adam(1e-3), iterations=1), "'key'"),
    ("rollout without a start", lambda: diffsim.rollout(ENV, POLICY), "'y0'"),
]


def outcomes() -> dict[str, list[str]]:
    """``{what: [exception type, message]}`` for every case (``["", ""]`` if none raised)."""
    found = {}
    for what, call, _ in MISUSES + MISSING:
        try:
            call()
            found[what] = ["", ""]
        except Exception as error:  # every outcome is recorded, whatever it is
            found[what] = [type(error).__name__, str(error)]
    return found
