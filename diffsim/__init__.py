"""diffsim: differentiable physics and control in JAX.

Physical systems are ODE environments (:class:`AbstractEnv`) integrated with diffrax;
controllers are trained by backpropagating through simulated rollouts (:func:`train`).
Environments live in ``diffsim.envs``, controllers in ``diffsim.controllers``.
"""

from ._env import AbstractEnv, check_positive, parameter
from ._errors import DiffsimError
from ._integrators import AbstractIntegrator, Adaptive, EnvDiscretisation, FixedStep
from ._rollout import Controller, Feedback, HeldControl, Trajectory, rollout, step
from ._spaces import (
    AbstractActionSpace,
    AbstractEstimator,
    Box,
    Discrete,
    GumbelSoftmax,
    StraightThrough,
)

__version__ = "0.1.0"

__all__ = [
    "AbstractActionSpace",
    "AbstractEnv",
    "AbstractEstimator",
    "AbstractIntegrator",
    "Adaptive",
    "Box",
    "Controller",
    "DiffsimError",
    "Discrete",
    "EnvDiscretisation",
    "Feedback",
    "FixedStep",
    "GumbelSoftmax",
    "HeldControl",
    "StraightThrough",
    "Trajectory",
    "check_positive",
    "parameter",
    "rollout",
    "step",
]

from ._checkpoint import load_checkpoint, read_metadata, save_checkpoint  # noqa: E402
from ._evaluate import Evaluation, evaluate, initial_states  # noqa: E402
from ._recipe import Recipe, adam_cosine  # noqa: E402
from ._train import History, TrainingDiverged, mean_step_cost, train  # noqa: E402

__all__ += [
    "Evaluation",
    "History",
    "Recipe",
    "adam_cosine",
    "load_checkpoint",
    "read_metadata",
    "save_checkpoint",
    "TrainingDiverged",
    "evaluate",
    "initial_states",
    "mean_step_cost",
    "train",
]


def __getattr__(name):
    # `diffsim.envs.Pendulum()` after a bare `import diffsim`, without the core importing
    # any env (or matplotlib) until asked.
    if name in ("envs", "controllers", "plotting"):
        import importlib

        return importlib.import_module(f"diffsim.{name}")
    raise AttributeError(f"module 'diffsim' has no attribute {name!r}")
