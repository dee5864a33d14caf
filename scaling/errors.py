"""Errors a user can fix. The CLI turns them into one `error:` line and exit status 2."""

from __future__ import annotations


class UsageError(Exception):
    """Bad input: a bad file, option or value. The message names the problem and, where known, the fix.

    arguments: the Python argument names (`bootstrap`, `holdout_top`) the message mentions, as whole
    words; a front end that spells them otherwise (the CLI's `--bootstrap`) rewrites those words."""

    def __init__(self, message: str, *, arguments: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.arguments = arguments


class FigureNotSupported(UsageError):
    """The data cannot support this figure (too few runs, no shared budget, no IsoFLOP profile, ...).

    The one exception a figure function raises on purpose: the report leaves the figure out with this
    message as the reason, and lets any other exception (a bug) through."""


class ScalingWarning(UserWarning):
    """A result is still meaningful but the user should know something (excluded rows, long extrapolation)."""
