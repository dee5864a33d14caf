"""Errors a user can fix, and the argument constraints that raise them. The CLI turns them into one
`error:` line and exit status 2."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from numbers import Integral
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class UsageError(Exception):
    """Bad input: a bad file, option or value. The message names the problem and, where known, the fix.

    A message names a Python argument in backticks ("`bootstrap` must be >= 0, got -1"), so that a front
    end that spells it otherwise (the CLI: `--bootstrap`) can rewrite exactly those words."""


class FigureNotSupported(UsageError):
    """The data cannot support this figure (too few runs, no shared budget, no IsoFLOP profile, ...).

    The one exception a figure function raises on purpose: the report leaves the figure out with this
    message as the reason, and lets any other exception (a bug) through."""


class ScalingWarning(UserWarning):
    """A result is still meaningful but the user should know something (excluded rows, long extrapolation)."""


# ---- argument constraints ----------------------------------------------------------------------------
# Each public function declares the rule of each argument it checks once, beside its signature
# (`@checked(seed=NON_NEGATIVE, ...)`), in the spirit of scikit-learn's `_parameter_constraints`; the
# message is always "`name` <what it must be>, got <value>", which the CLI rewrites into its flags.


@dataclass(frozen=True)
class Constraint:
    """What one argument must be: `holds(value)` is true for a good value; `says` completes "`name` ..."
    in the message; `show` writes the bad value into it (str, or repr where a type mix-up is likely)."""

    holds: Callable[[Any], bool]
    says: str
    show: Callable[[Any], str] = str

    def check(self, name: str, value: Any) -> None:
        """UsageError "`name` says, got value" unless `value` holds."""
        if not self.holds(value):
            raise UsageError(f"`{name}` {self.says}, got {self.show(value)}")


NON_NEGATIVE = Constraint(lambda v: v >= 0, "must be >= 0")  # counts, and numpy's seeds


def one_of(choices: Iterable[Any], says: str | None = None, show: Callable[[Any], str] = repr) -> Constraint:
    """A value among `choices` (says, by default, "must be one of a, b, c")."""
    choices = tuple(choices)
    return Constraint(lambda v: v in choices, says or f"must be one of {', '.join(map(str, choices))}", show)


def whole_number(minimum: int, says: str) -> Constraint:
    """An int (a numpy integer too, never a bool) of at least `minimum`."""
    return Constraint(
        lambda v: isinstance(v, Integral) and not isinstance(v, bool) and v >= minimum, says, repr
    )


def check_arguments(constraints: Mapping[str, Constraint], **values: Any) -> None:
    """Check each of `values` against its constraint, in the table's order (UsageError at the first bad)."""
    for name, constraint in constraints.items():
        if name in values:
            constraint.check(name, values[name])


def checked(**constraints: Constraint) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: check the named arguments of each call (given or defaulted) before the function runs.

    The table stays readable on the function as `__constraints__` ({argument: Constraint})."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(func)
        unknown = set(constraints) - set(signature.parameters)
        assert not unknown, f"{func.__qualname__} has no argument(s) {', '.join(sorted(unknown))}"

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            check_arguments(constraints, **bound.arguments)
            return func(*args, **kwargs)

        wrapper.__constraints__ = dict(constraints)  # type: ignore[attr-defined]
        return wrapper

    return decorate
