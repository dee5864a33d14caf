"""Errors a user can fix. The CLI turns them into one `error:` line and exit status 2."""

from __future__ import annotations


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
