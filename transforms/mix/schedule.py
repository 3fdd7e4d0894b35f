"""The instruction-token ratio over the output stream: a constant, or a schedule of steps.

A schedule is piecewise over the share of output tokens written so far, a
position in [0, 1]. Step i covers (until[i-1], until[i]] (the first from 0) and
holds its ratio there, or, with `ramp`, goes in a straight line from the
previous step's ratio to its own across that span. The config writes it as

    ratio: {schedule: [{until: 0.5, ratio: 0.02}, {until: 1.0, ratio: 0.08}]}

and a plain float is the one-step schedule. Positions outside [0, 1] take the
value at the nearer end, for `at` and for the averages alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Above one half the "instruction data" would outweigh the corpus it is mixed into.
MAX_RATIO = 0.5
STEP_KEYS = ("until", "ratio", "ramp")
SCHEDULE_SHAPE = "{schedule: [{until: 0.5, ratio: 0.02}, {until: 1.0, ratio: 0.08}]}"


def ratio_range_error(ratio: float) -> str | None:
    """Why `ratio` cannot be an instruction-token ratio, or None when it can."""
    if not 0 < ratio <= MAX_RATIO:  # NaN fails both comparisons
        return f"must be in (0, {MAX_RATIO}], got {ratio}"
    return None


@dataclass(frozen=True)
class RatioStep:
    until: float  # share of output tokens (0, 1] where this step ends
    ratio: float
    ramp: bool = False  # linear from the previous step's ratio to this one across the step


@dataclass(frozen=True)
class RatioSchedule:
    steps: tuple[RatioStep, ...]

    def __post_init__(self) -> None:
        steps = tuple(self.steps)
        object.__setattr__(self, "steps", steps)
        if not steps:
            raise ValueError(f"schedule must have at least one step, as in {SCHEDULE_SHAPE}")
        previous = 0.0
        for i, step in enumerate(steps):
            problem = ratio_range_error(step.ratio)
            if problem:
                raise ValueError(f"schedule[{i}].ratio {problem}")
            if not 0 < step.until <= 1:
                raise ValueError(f"schedule[{i}].until must be in (0, 1], got {step.until}")
            if i and step.until <= previous:
                raise ValueError(f"schedule[{i}].until {step.until} must be greater than the previous "
                                 f"step's until {previous}")
            if i == 0 and step.ramp:
                raise ValueError("schedule[0].ramp: the first step cannot ramp, there is no previous step "
                                 "to ramp from; give it ramp: false and let the second step ramp")
            previous = step.until
        if steps[-1].until != 1.0:
            raise ValueError(f"schedule[{len(steps) - 1}].until is {steps[-1].until}, but the last step "
                             "must end at 1.0 (the end of the output)")

    # ----------------------------------------------------------------- building

    @classmethod
    def constant(cls, ratio: float) -> RatioSchedule:
        return cls((RatioStep(1.0, float(ratio)),))

    @classmethod
    def from_spec(cls, spec: Any) -> RatioSchedule:
        """A schedule from the config's `ratio`: a number, or {schedule: [{until, ratio, ramp?}, ...]}.

        Raises ValueError naming the step and key at fault (`schedule[1].until ...`), for a
        wrong type too: it is a bad config, and pydantic reports ValueErrors under the key.
        """
        if isinstance(spec, RatioSchedule):
            return spec
        if _is_number(spec):
            problem = ratio_range_error(float(spec))
            if problem:
                raise ValueError(f"ratio {problem}")
            return cls.constant(float(spec))
        if not isinstance(spec, Mapping):
            raise ValueError(f"ratio must be a number or a schedule {SCHEDULE_SHAPE}, got {spec!r}")  # noqa: TRY004
        unknown = [k for k in spec if k != "schedule"]
        if unknown:
            raise ValueError(f"unknown key(s) {unknown} in a ratio schedule; write it as {SCHEDULE_SHAPE}")
        if "schedule" not in spec:
            raise ValueError(f"a ratio given as a mapping needs the key schedule, as in {SCHEDULE_SHAPE}")
        raw = spec["schedule"]
        if isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Sequence):
            raise ValueError(f"schedule must be a list of steps, as in {SCHEDULE_SHAPE}; got {raw!r}")  # noqa: TRY004
        return cls(tuple(_parse_step(i, s) for i, s in enumerate(raw)))

    def as_dict(self) -> dict:
        """The schedule as the config writes it; what the mix manifest records."""
        return {"schedule": [{"until": s.until, "ratio": s.ratio, "ramp": s.ramp} for s in self.steps]}

    # ---------------------------------------------------------------- properties

    @property
    def is_constant(self) -> bool:
        return len({s.ratio for s in self.steps}) == 1

    @property
    def max_ratio(self) -> float:
        # Ramps are straight lines between step ratios, so the extremes are step ratios.
        return max(s.ratio for s in self.steps)

    @property
    def min_ratio(self) -> float:
        return min(s.ratio for s in self.steps)

    # ------------------------------------------------------------------ values

    def at(self, position: float) -> float:
        """The ratio at `position` (clamped to [0, 1]); on a step boundary, the earlier step's."""
        return float(self.at_many(np.asarray([position], dtype=float))[0])

    def at_many(self, positions: np.ndarray) -> np.ndarray:
        """`at` for every position at once (same shape), without a Python loop per position."""
        x, ends, starts, ratios, froms, ramps = self._arrays(positions)
        i = np.searchsorted(ends, x, side="left")  # first step with until >= x: boundaries go to the earlier step
        return self._value(x, i, starts, ends, ratios, froms, ramps)

    def mean(self, start: float, end: float) -> float:
        """The exact average of the schedule over [start, end]: its integral divided by the width.

        start == end gives `at(start)`. Outside [0, 1] the schedule holds its end values.
        """
        return float(self.mean_many(np.asarray([start], dtype=float), np.asarray([end], dtype=float))[0])

    def mean_many(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """`mean` for each pair of `starts[k]`, `ends[k]` (a shard's span, say), vectorised."""
        a = np.asarray(starts, dtype=float)
        b = np.asarray(ends, dtype=float)
        if np.any(b < a):
            raise ValueError("mean needs start <= end")
        if self.is_constant:  # exactly the ratio, with no rounding from the integral
            return np.full(np.broadcast(a, b).shape, self.steps[0].ratio)
        width = b - a
        safe = np.where(width > 0, width, 1.0)
        averaged = (self._integral(b) - self._integral(a)) / safe
        # A span inside one flat step averages to exactly that step's ratio, not to a rounded quotient.
        _, ends, _, ratios, _, ramps = self._arrays(a)
        last = len(ends) - 1
        first_step = np.minimum(np.searchsorted(ends, np.clip(a, 0, 1), side="right"), last)
        last_step = np.minimum(np.searchsorted(ends, np.clip(b, 0, 1), side="left"), last)
        flat = (first_step == last_step) & ~ramps[first_step]
        return np.where(width > 0, np.where(flat, ratios[first_step], averaged), self.at_many(a))

    # --------------------------------------------------------------- internals

    def _arrays(self, positions: np.ndarray):
        x = np.clip(np.asarray(positions, dtype=float), 0.0, 1.0)
        ends = np.array([s.until for s in self.steps])
        starts = np.concatenate(([0.0], ends[:-1]))
        ratios = np.array([s.ratio for s in self.steps])
        froms = np.concatenate((ratios[:1], ratios[:-1]))  # a ramp starts at the previous step's ratio
        ramps = np.array([s.ramp for s in self.steps])
        return x, ends, starts, ratios, froms, ramps

    @staticmethod
    def _value(x, i, starts, ends, ratios, froms, ramps) -> np.ndarray:
        i = np.minimum(i, len(ends) - 1)
        along = (x - starts[i]) / (ends[i] - starts[i])
        ramped = froms[i] + (ratios[i] - froms[i]) * along
        return np.where(ramps[i], ramped, ratios[i])

    def _integral(self, positions: np.ndarray) -> np.ndarray:
        """The integral of the schedule from 0 to each position, held at its end values outside [0, 1]."""
        raw = np.asarray(positions, dtype=float)
        x, ends, starts, ratios, froms, ramps = self._arrays(raw)
        widths = ends - starts
        areas = np.where(ramps, widths * (froms + ratios) / 2, widths * ratios)
        before = np.concatenate(([0.0], np.cumsum(areas)))  # area of the steps before step i
        i = np.minimum(np.searchsorted(ends, x, side="left"), len(ends) - 1)
        value = self._value(x, i, starts, ends, ratios, froms, ramps)
        # Within step i the schedule is a straight line (flat or ramped): trapezoid from its start to x.
        start_value = np.where(ramps[i], froms[i], ratios[i])
        inside = before[i] + (x - starts[i]) * (start_value + value) / 2
        return inside + np.minimum(raw, 0.0) * ratios[0] + np.maximum(raw - 1.0, 0.0) * ratios[-1]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _parse_step(i: int, step: Any) -> RatioStep:
    if not isinstance(step, Mapping):
        raise ValueError(f"schedule[{i}] must be a mapping like {{until: 1.0, ratio: 0.05}}, got {step!r}")  # noqa: TRY004
    unknown = [k for k in step if k not in STEP_KEYS]
    if unknown:
        raise ValueError(f"schedule[{i}]: unknown key(s) {unknown}; a step has until, ratio and optionally ramp")
    for key in ("until", "ratio"):
        if key not in step:
            raise ValueError(f"schedule[{i}].{key} is required")
        if not _is_number(step[key]):
            raise ValueError(f"schedule[{i}].{key} must be a number, got {step[key]!r}")
    ramp = step.get("ramp", False)
    if not isinstance(ramp, bool):
        raise ValueError(f"schedule[{i}].ramp must be true or false, got {ramp!r}")  # noqa: TRY004
    return RatioStep(until=float(step["until"]), ratio=float(step["ratio"]), ramp=ramp)
