"""diffsim: differentiable physics and control in JAX.

Physical systems are ODE environments (:class:`AbstractEnv`) advanced by a transition
(:class:`ODEStep`, :class:`ODESolve`, or an env's own exact map); controllers are trained
by backpropagating through simulated rollouts (:class:`Trainer`, :func:`train`).
Environments live in ``diffsim.envs``, controllers in ``diffsim.controllers``.
"""

from importlib.metadata import PackageNotFoundError, version

from ._checkpoint import load_checkpoint, read_metadata, save_checkpoint
from ._compare import compare
from ._env import AbstractEnv, check_positive, parameter
from ._errors import DiffsimError
from ._evaluate import Evaluation, evaluate, initial_states
from ._fit import fit
from ._identify import Identification, identify
from ._linearise import Linearisation, linearise
from ._methods import (
    CURVE_EPISODES,
    AbstractMethod,
    MethodRun,
    curve_return,
    load_trained,
    train_seeds,
)
from ._mlp import MLPPolicy
from ._recipe import Recipe, adam_cosine
from ._record import Record
from ._registry import default_recipe, load_recipe, recipes
from ._rollout import ClosedLoop, Controller, Trajectory, control, rollout, step
from ._runner import History, TrainingDiverged, TrainingInterrupted, TrainingWarning
from ._shac import SHAC, SHACState, StepCosts, ValueMLP, env_costs, lambda_returns
from ._spaces import (
    AbstractActionSpace,
    AbstractEstimator,
    Box,
    Discrete,
    GumbelSoftmax,
    StraightThrough,
)
from ._state import TrainState
from ._stateful import AbstractStatefulController
from ._timing import Stopwatch, seconds_per_step
from ._train import Episodes, Trainer, mean_step_cost, train
from ._transitions import AbstractTransition, Dynamics, ODESolve, ODEStep
from ._variables import Quantity, Variables

try:
    __version__ = version("diffsim")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "AbstractActionSpace",
    "AbstractEnv",
    "AbstractMethod",
    "AbstractStatefulController",
    "AbstractEstimator",
    "AbstractTransition",
    "Box",
    "CURVE_EPISODES",
    "ClosedLoop",
    "Controller",
    "DiffsimError",
    "Discrete",
    "Dynamics",
    "Episodes",
    "Evaluation",
    "GumbelSoftmax",
    "History",
    "Identification",
    "Linearisation",
    "MethodRun",
    "MLPPolicy",
    "ODESolve",
    "ODEStep",
    "Quantity",
    "Recipe",
    "Record",
    "StraightThrough",
    "Stopwatch",
    "TrainState",
    "Trainer",
    "SHAC",
    "SHACState",
    "StepCosts",
    "ValueMLP",
    "lambda_returns",
    "env_costs",
    "TrainingDiverged",
    "TrainingInterrupted",
    "TrainingWarning",
    "Trajectory",
    "Variables",
    "adam_cosine",
    "check_positive",
    "compare",
    "curve_return",
    "control",
    "default_recipe",
    "evaluate",
    "fit",
    "identify",
    "initial_states",
    "linearise",
    "load_checkpoint",
    "load_recipe",
    "load_trained",
    "mean_step_cost",
    "parameter",
    "read_metadata",
    "recipes",
    "rollout",
    "save_checkpoint",
    "seconds_per_step",
    "step",
    "train",
    "train_seeds",
]


def __getattr__(name):
    # `diffsim.envs.Pendulum()` after a bare `import diffsim`, without the core importing
    # any env (or matplotlib) until asked.
    if name in ("envs", "controllers", "plotting", "rl", "testing"):
        import importlib

        return importlib.import_module(f"diffsim.{name}")
    raise AttributeError(f"module 'diffsim' has no attribute {name!r}")
