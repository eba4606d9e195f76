"""Plots and animations of training and trajectories (matplotlib).

Works for any env: trajectories are plotted per state component, and animations draw
the polylines that ``env.draw(state)`` returns.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import animation

from . import _validate as validate
from ._env import AbstractEnv
from ._errors import DiffsimError
from ._identify import Identification
from ._record import Record
from ._rollout import Trajectory
from ._train import History


def plot_learning_curve(history: History, ax=None, *, label: str | None = None):
    """Evaluation return (and training loss, on a second axis) against training env steps;
    a history without env steps (:func:`diffsim.fit`'s) against updates, its loss alone if
    it holds no evaluation.

    Args:
        history: the :class:`diffsim.History` of a training run or a fit.
        ax: a matplotlib axis (default: a new figure).
        label: the legend label of the evaluation curve.

    Returns:
        The axis.

    Raises:
        DiffsimError: for another object than a ``History``, or one with no update yet.
    """
    validate.instance("history", history, History, "a diffsim.History (of train or fit)")
    if not history.loss and not history.eval_return:
        raise DiffsimError("history holds no update and no evaluation yet: nothing to plot")
    by_env_steps = bool(history.env_steps)
    updates = history.env_steps if by_env_steps else history.iteration
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5), constrained_layout=True)
    ax.set_xlabel("training env steps" if by_env_steps else "updates")
    ax.grid(alpha=0.3)
    loss_ax = ax
    if history.eval_return:
        evaluated = history.eval_env_steps if by_env_steps else history.eval_iteration
        ax.plot(evaluated, history.eval_return, "o-", label=label or "evaluation")
        ax.set_ylabel("mean evaluation return")
        loss_ax = ax.twinx() if history.loss else None
    if history.loss:
        # windows of carried episodes cycle through episode phases: average over ~20 updates
        width = min(20, len(history.loss))
        smoothed = np.convolve(history.loss, np.ones(width) / width, mode="valid")
        loss_ax.plot(updates[width - 1 :], smoothed, color="0.6", lw=1.0)
        loss_ax.set_ylabel(f"training loss ({width}-update mean)", color="0.5")
    done = (
        f"{history.total_env_steps:,} env steps" if by_env_steps
        else f"{len(history.iteration):,} updates"
    )
    ax.set_title(
        f"{done}, {history.train_seconds:.1f} s ({history.compile_seconds:.1f} s compile)",
        fontsize=9,
    )
    return ax


def plot_trajectory(env: AbstractEnv, trajectory: Trajectory, *, axes=None):
    """States, controls and per-step cost of one trajectory against time, each component
    labelled with its name and unit from ``env.variables``; angles wrapped into
    ``[-pi, pi)`` (the line broken where it wraps).

    Args:
        env: the env that produced the trajectory.
        trajectory: one episode (no batch axis).
        axes: three matplotlib axes (default: a new figure).

    Returns:
        The axes.

    Raises:
        DiffsimError: for a batch of trajectories, or ``env.variables`` of the wrong
            lengths.
    """
    states = _one_episode("plot_trajectory", env, trajectory)
    controls = np.asarray(trajectory.controls, np.float64)
    times = np.asarray(trajectory.times)
    variables = env.variables
    for what, quantities, size in (
        ("states", variables.states, states.shape[1]),
        ("controls", variables.controls, controls.shape[1]),
    ):
        if len(quantities) != size:
            raise DiffsimError(
                f"{type(env).__name__}.variables names {len(quantities)} {what}, but the "
                f"trajectory has {size}"
            )
    if axes is None:
        _, axes = plt.subplots(3, 1, figsize=(6, 6), sharex=True, constrained_layout=True)
    for i, quantity in enumerate(variables.states):
        axes[0].plot(times, _shown(states[:, i], quantity.angle), label=quantity.label)
    for i, quantity in enumerate(variables.controls):
        axes[1].step(times[:-1], controls[:, i], where="post", label=quantity.label)
    axes[2].plot(times[:-1], np.where(trajectory.alive, trajectory.costs, np.nan), color="C3")
    axes[0].set_ylabel("state")
    axes[1].set_ylabel("control")
    axes[2].set_ylabel("cost per step")
    axes[2].set_xlabel("time (s)")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper right")
    axes[1].legend(fontsize=8, loc="upper right")
    return axes


def plot_identification(
    record: Record, report: Identification, *, record_index: int = 0, labels=None, axes=None
):
    """What :func:`diffsim.identify` fitted: one record against the fitted model's
    simulation, the residuals, and each parameter with its 95 % confidence interval.

    Args:
        record: the record (as passed to ``identify``).
        report: ``identify``'s report.
        record_index: which of the fitted records ``record`` is.
        labels: one label per observation component (default: ``y[i]``); for full-state
            records, ``[q.label for q in env.variables.states]``.
        axes: three matplotlib axes (default: a new figure).

    Returns:
        The axes.

    Raises:
        DiffsimError: for a record that is not the one fitted at ``record_index``.
    """
    observed = np.asarray(record.observations, np.float64)
    if not 0 <= record_index < len(report.predictions) or (
        report.predictions[record_index].shape != observed.shape
    ):
        raise DiffsimError(
            f"record of shape {observed.shape} is not record {record_index} of the report "
            f"(shapes {[p.shape for p in report.predictions]})"
        )
    predicted = report.predictions[record_index]
    labels = labels or [f"y[{i}]" for i in range(observed.shape[1])]
    if axes is None:
        _, axes = plt.subplots(3, 1, figsize=(6, 7), constrained_layout=True)
    times = np.asarray(record.times)
    for i, label in enumerate(labels):
        axes[0].plot(times, observed[:, i], ".", ms=3, color=f"C{i}", label=f"{label} (data)")
        axes[0].plot(times, predicted[:, i], "-", lw=1, color=f"C{i}", label=f"{label} (fit)")
        axes[1].plot(times, observed[:, i] - predicted[:, i], lw=0.8, color=f"C{i}", label=label)
    axes[0].set_ylabel("observation")
    axes[1].set_ylabel("data - fit")
    axes[1].set_xlabel("time (s)")
    interval = 1.96 * np.asarray(report.relative_errors) * 100
    finite = np.isfinite(interval)
    positions = np.arange(len(report.names))
    axes[2].errorbar(
        np.zeros(finite.sum()), positions[finite], xerr=interval[finite], fmt="o", capsize=4
    )
    axes[2].set_yticks(
        positions,
        [
            f"{name} = {value:.4g}" + ("" if ok else " (unidentifiable)")
            for name, value, ok in zip(report.names, report.values, finite, strict=True)
        ],
    )
    axes[2].set_xlabel("95 % confidence interval (% of the value)")
    axes[2].axvline(0, color="k", lw=0.5)
    if report.misfit:
        axes[0].set_title("MISFIT: the model does not explain the data", color="C3")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2, loc="upper right")
    return axes


def _one_episode(caller: str, env: AbstractEnv, trajectory: Trajectory) -> np.ndarray:
    """The states of ``trajectory``, shape ``(T + 1, n)``, once it is one episode of an env
    with ``env``'s state size."""
    validate.instance("env", env, AbstractEnv, "a diffsim.AbstractEnv")
    validate.instance("trajectory", trajectory, Trajectory, "a diffsim.Trajectory (rollout's)")
    states = np.asarray(trajectory.states, np.float64)
    if states.ndim != 2:
        raise DiffsimError(
            f"{caller} takes one trajectory, got a batch of shape {states.shape[:-2]}: "
            "index it first, jax.tree.map(lambda x: x[i], trajectory)"
        )
    if states.shape[1] != env.state_size:
        raise DiffsimError(
            f"{caller}: the trajectory's states have {states.shape[1]} components, "
            f"{type(env).__name__}'s {env.state_size}: a trajectory of another env?"
        )
    return states


def _shown(values: np.ndarray, angle: bool) -> np.ndarray:
    """``values`` as plotted: an angle wrapped into ``[-pi, pi)``, NaN where it wraps."""
    if not angle:
        return values
    wrapped = (values + np.pi) % (2 * np.pi) - np.pi
    jumps = np.abs(np.diff(wrapped)) > np.pi
    return np.where(np.concatenate([[False], jumps]), np.nan, wrapped)


def animate(
    env: AbstractEnv,
    trajectory: Trajectory,
    *,
    every: int = 1,
    interval_ms: float | None = None,
    figsize=(4, 4),
) -> animation.FuncAnimation:
    """An animation of ``env.draw`` over the trajectory's states (every ``every``-th).

    Show it in a notebook with ``IPython.display.HTML(anim.to_jshtml())`` or save it with
    ``anim.save("file.gif")``.

    Args:
        env: an environment with a ``draw`` method.
        trajectory: one episode (no batch axis).
        every: draw every ``every``-th state.
        interval_ms: milliseconds between frames (default: real time).
        figsize: the figure's size in inches.

    Returns:
        A ``matplotlib.animation.FuncAnimation``.

    Raises:
        DiffsimError: for a batch of trajectories, one of another env, or a non-positive
            ``every`` or ``interval_ms``.
        NotImplementedError: for an env that defines no ``draw``.
    """
    _one_episode("animate", env, trajectory)
    validate.positive_int("every", every)
    if interval_ms is not None:
        validate.positive_float("interval_ms", interval_ms)
    states = jnp.asarray(trajectory.states)[::every]  # draw takes JAX arrays, as annotated
    frames = [[np.asarray(p) for p in jax.device_get(env.draw(y))] for y in states]
    points = np.concatenate([p for frame in frames for p in frame])
    low, high = points.min(axis=0), points.max(axis=0)
    margin = 0.1 * max(high - low) + 0.1
    fig, ax = plt.subplots(figsize=figsize)
    ax.set_xlim(low[0] - margin, high[0] + margin)
    ax.set_ylim(low[1] - margin, high[1] + margin)
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    lines = [ax.plot([], [], "o-", lw=3, ms=4)[0] for _ in frames[0]]
    label = ax.text(0.02, 0.95, "", transform=ax.transAxes)
    times = np.asarray(trajectory.times)[::every]

    def draw_frame(i):
        for line, polyline in zip(lines, frames[i], strict=True):
            line.set_data(polyline[:, 0], polyline[:, 1])
        label.set_text(f"t = {times[i]:.2f} s")
        return [*lines, label]

    interval = 1000 * env.control_dt * every if interval_ms is None else interval_ms
    anim = animation.FuncAnimation(fig, draw_frame, frames=len(frames), interval=interval)
    plt.close(fig)
    return anim
