"""Errors a user can fix. The CLI turns them into one `error:` line and exit status 2."""


class UsageError(Exception):
    """Bad input: a bad file, option or value. The message names the problem and, where known, the fix."""


class ScalingWarning(UserWarning):
    """A result is still meaningful but the user should know something (excluded rows, long extrapolation)."""
