"""The 2019 trebuchet: a differentiable hinged-counterweight trebuchet with a sling.

``shoot(wind, angle, weight)`` (m/s, degrees, pounds) returns the distance in metres; it
is jit-able, vmappable and differentiable in forward and reverse mode with respect to the
inputs and to the machine (:class:`Trebuchet`, a pytree of physical parameters). Two
presets: :func:`trebuchet` (physically faithful, the default: a ``diffsim.ODESolve``
with diffrax's Tsit5) and :func:`trebuchet_jl` (reproduces the published Trebuchet.jl
numbers: :class:`EulerHermite`, explicit Euler at 60 Hz). Aiming: :func:`aim` (direct,
bounded Newton root finds) and :class:`Aimer` / :func:`train_aimer` (a network trained
through ``shoot`` by ``diffsim.fit``). Plots in :func:`animate_shot` and
:func:`plot_distance`. Built on the public ``diffsim`` API only.
"""

from ._aim import (
    ANGLE_BOUNDS,
    NOMINAL,
    REACH_TOLERANCE,
    WEIGHT_BOUNDS,
    Aim,
    Aimer,
    aim,
    aimer_misses,
    test_set,
    train_aimer,
)
from ._physics import (
    FOOT,
    POUND,
    STATUS_MESSAGES,
    WEIGHT_LIMIT,
    WIND_LIMIT,
    EulerHermite,
    Shot,
    Trebuchet,
    shoot,
    simulate,
    trebuchet,
    trebuchet_jl,
)
from ._plot import ShotTrajectory, animate_shot, plot_distance, trajectory

__all__ = [
    "ANGLE_BOUNDS",
    "FOOT",
    "NOMINAL",
    "POUND",
    "REACH_TOLERANCE",
    "STATUS_MESSAGES",
    "WEIGHT_BOUNDS",
    "WEIGHT_LIMIT",
    "WIND_LIMIT",
    "Aim",
    "Aimer",
    "EulerHermite",
    "Shot",
    "ShotTrajectory",
    "Trebuchet",
    "aim",
    "aimer_misses",
    "animate_shot",
    "plot_distance",
    "shoot",
    "simulate",
    "test_set",
    "train_aimer",
    "trajectory",
    "trebuchet",
    "trebuchet_jl",
]
