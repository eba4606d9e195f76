"""Measured trajectories: times, the controls applied and what was observed."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ._errors import DiffsimError
from ._rollout import Trajectory


class Record(eqx.Module):
    """One recorded episode: ``times`` (s, shape ``(T+1,)``, strictly increasing), the
    ``controls`` held over each interval ``[times[i], times[i+1]]`` (shape ``(T, m)``) and
    the ``observations`` made at each time (shape ``(T+1, o)``: full states, or what a
    sensor saw of them). What :func:`diffsim.identify` fits an env to.

    Built from arrays (NumPy or JAX), from a :class:`diffsim.Trajectory`
    (:meth:`from_trajectory`) or from a CSV file (:meth:`from_csv`); mismatched lengths,
    times that do not increase and NaN or inf values are a :class:`DiffsimError` naming the
    row.

    Example::

        record = diffsim.Record(times=np.arange(201) * 0.05, controls=u, observations=y)
        record = diffsim.Record.from_csv("swing.csv", controls=["u"],
                                         observations=["theta", "theta_dot"])
    """

    times: np.ndarray = eqx.field(converter=lambda x: _as_numbers("times", x))
    controls: np.ndarray = eqx.field(converter=lambda x: _as_numbers("controls", x))
    observations: np.ndarray = eqx.field(converter=lambda x: _as_numbers("observations", x))

    def __check_init__(self):
        times, controls, observations = self.times, self.controls, self.observations
        if times.ndim != 1 or times.shape[0] < 2:
            raise DiffsimError(f"times must be a vector of at least 2 times, got {times.shape}")
        if controls.ndim != 2 or observations.ndim != 2:
            raise DiffsimError(
                f"controls (T, m) and observations (T+1, o) must be 2-D, got {controls.shape} "
                f"and {observations.shape} (a single channel is shape (T, 1))"
            )
        if observations.shape[0] != times.shape[0] or controls.shape[0] != times.shape[0] - 1:
            raise DiffsimError(
                f"mismatched lengths: {times.shape[0]} times need {times.shape[0]} observations "
                f"and {times.shape[0] - 1} controls, got {observations.shape[0]} observations "
                f"and {controls.shape[0]} controls"
            )
        for name, values in (
            ("times", times),
            ("controls", controls),
            ("observations", observations),
        ):
            _check_finite(name, values)
        steps = np.diff(times)
        if np.any(steps <= 0):
            row = int(np.argmax(steps <= 0)) + 1
            raise DiffsimError(
                f"times must increase strictly: times[{row}] = {times[row]} after "
                f"times[{row - 1}] = {times[row - 1]}"
            )

    @property
    def num_steps(self) -> int:
        """``T``, the control intervals recorded."""
        return int(self.controls.shape[0])

    @classmethod
    def from_trajectory(
        cls,
        trajectory: Trajectory,
        observe: Callable[[Float[Array, " n"]], Float[Array, " o"]] | None = None,
    ) -> Record:
        """The record of one simulated episode (a :func:`diffsim.rollout`), up to where it
        terminated; ``observe(state)`` makes the observations (default: the full state).
        For a batch of trajectories, index it first (``jax.tree.map(lambda x: x[i], t)``).
        """
        if np.ndim(trajectory.times) != 1:
            raise DiffsimError(
                f"from_trajectory takes one episode, got a batch of shape "
                f"{np.shape(trajectory.times)[:-1]}: index it, jax.tree.map(lambda x: x[i], t)"
            )
        steps = int(trajectory.length)
        states = trajectory.states[: steps + 1]
        observations = states if observe is None else jax.vmap(observe)(states)
        return cls(
            times=np.asarray(trajectory.times[: steps + 1]),
            controls=np.asarray(trajectory.controls[:steps]),
            observations=np.asarray(observations),
        )

    @classmethod
    def from_csv(
        cls,
        path: str | os.PathLike,
        *,
        controls: Sequence[str],
        observations: Sequence[str],
        time: str = "t",
    ) -> Record:
        """Read a CSV file with a header row, one row per time: the ``time`` column (s),
        the ``controls`` columns (the control applied from this row's time to the next;
        empty in the last row) and the ``observations`` columns.

        Raises:
            DiffsimError: for a file that cannot be read, a missing column, a value that
                is not a number, and everything :class:`Record` refuses.
        """
        try:
            with open(path, newline="") as file:
                rows = list(csv.reader(file))
        except (OSError, UnicodeDecodeError) as error:
            raise DiffsimError(f"cannot read the record {os.fspath(path)!r}: {error}") from None
        if not rows:
            raise DiffsimError(f"the record {os.fspath(path)!r} is empty")
        header = [name.strip() for name in rows[0]]
        columns = {}
        for name in (time, *controls, *observations):
            if name not in header:
                raise DiffsimError(
                    f"the record {os.fspath(path)!r} has no column {name!r} (columns: {header})"
                )
            columns[name] = header.index(name)
        body = rows[1:]

        def read(names, rows, first_row):
            values = np.empty((len(rows), len(names)))
            for i, row in enumerate(rows):
                for j, name in enumerate(names):
                    text = row[columns[name]].strip() if columns[name] < len(row) else ""
                    try:
                        values[i, j] = float(text)
                    except ValueError:
                        values[i, j] = np.nan
                    if not np.isfinite(values[i, j]):
                        raise DiffsimError(
                            f"the record {os.fspath(path)!r}, line {first_row + i}, column "
                            f"{name!r}: {text!r} is not a finite number"
                        )
            return values

        return cls(
            times=read([time], body, 2)[:, 0],
            controls=read(list(controls), body[:-1], 2),
            observations=read(list(observations), body, 2),
        )

    def to_csv(
        self,
        path: str | os.PathLike,
        *,
        controls: Sequence[str] | None = None,
        observations: Sequence[str] | None = None,
        time: str = "t",
    ) -> None:
        """Write the record as :meth:`from_csv` reads it (column names default to
        ``u0, u1, ...`` and ``y0, y1, ...``; the last row's controls are empty)."""
        controls = controls or [f"u{i}" for i in range(self.controls.shape[1])]
        observations = observations or [f"y{i}" for i in range(self.observations.shape[1])]
        if len(controls) != self.controls.shape[1] or len(observations) != len(
            self.observations[0]
        ):
            raise DiffsimError(
                f"{len(controls)} control and {len(observations)} observation names for "
                f"{self.controls.shape[1]} controls and {self.observations.shape[1]} observations"
            )
        try:
            with open(path, "w", newline="") as file:
                writer = csv.writer(file)
                writer.writerow([time, *controls, *observations])
                for i, t in enumerate(self.times):
                    u = self.controls[i] if i < self.num_steps else [""] * len(controls)
                    writer.writerow(
                        [repr(float(t)), *map(_text, u), *map(_text, self.observations[i])]
                    )
        except OSError as error:
            raise DiffsimError(f"cannot write the record {os.fspath(path)!r}: {error}") from None


def _text(value) -> str:
    return value if value == "" else repr(float(value))


def _as_numbers(name: str, values: object) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DiffsimError(f"{name} must be numbers, got {values!r:.80}") from None


def _check_finite(name: str, values: ArrayLike) -> None:
    values = np.asarray(values)
    finite = np.isfinite(values).reshape(values.shape[0], -1).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        raise DiffsimError(f"{name}[{row}] contains NaN or inf: {values[row]}")
