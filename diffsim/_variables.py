"""Names and units of what an env's vectors hold: states, observations, controls."""

from __future__ import annotations

import dataclasses

from ._errors import DiffsimError


@dataclasses.dataclass(frozen=True)
class Quantity:
    """One component of a state, an observation or a control.

    Attributes:
        name: what it is, e.g. ``"theta"``.
        unit: its unit, e.g. ``"rad"`` (``""``: dimensionless or unstated).
        angle: whether it is an angle in radians, shown wrapped into ``[-pi, pi)``.

    Example: ``diffsim.Quantity("theta", "rad", angle=True).label`` is ``"theta (rad)"``.
    """

    name: str
    unit: str = ""
    angle: bool = False

    def __post_init__(self):
        for field, value in (("name", self.name), ("unit", self.unit)):
            if not isinstance(value, str):
                raise DiffsimError(f"a Quantity's {field} must be a string, got {value!r}")
        if not isinstance(self.angle, bool):
            raise DiffsimError(f"a Quantity's angle must be True or False, got {self.angle!r}")

    @property
    def label(self) -> str:
        """``"name (unit)"``, or the name alone without a unit."""
        return f"{self.name} ({self.unit})" if self.unit else self.name


@dataclasses.dataclass(frozen=True)
class Variables:
    """The :class:`Quantity` of every component of an env's states ``(n,)``, observations
    ``(o,)`` and controls ``(m,)``: what plots, tables and the RL adapters call them
    (:attr:`diffsim.AbstractEnv.variables`).

    Example:
        ```python
        import diffsim

        speed = diffsim.Quantity("theta_dot", "rad/s")
        diffsim.Variables(
            states=(diffsim.Quantity("theta", "rad", angle=True), speed),
            observations=(diffsim.Quantity("cos theta"), diffsim.Quantity("sin theta"), speed),
            controls=(diffsim.Quantity("torque", "N m"),),
        )
        ```
    """

    states: tuple[Quantity, ...]
    observations: tuple[Quantity, ...]
    controls: tuple[Quantity, ...]

    def __post_init__(self):
        for field in ("states", "observations", "controls"):
            value = getattr(self, field)
            if not isinstance(value, (tuple, list)) or not all(
                isinstance(q, Quantity) for q in value
            ):
                raise DiffsimError(
                    f"Variables' {field} must be a tuple of diffsim.Quantity, got {value!r:.80}"
                )
            object.__setattr__(self, field, tuple(value))

    @classmethod
    def indexed(cls, states: int, observations: int, controls: int) -> Variables:
        """``y[0] ... y[n-1]``, ``o[0] ...``, ``u[0] ...`` without units: the default of an
        env that declares none."""
        return cls(
            states=tuple(Quantity(f"y[{i}]") for i in range(states)),
            observations=tuple(Quantity(f"o[{i}]") for i in range(observations)),
            controls=tuple(Quantity(f"u[{i}]") for i in range(controls)),
        )
