"""The analysis CLI `scaling`: a thin layer over the Python API.

Each subcommand lives in its own module of this package and exposes `register(subparsers)`, which adds
its parser and sets `handler` (a function of the parsed arguments returning the exit status).
Errors a user can fix (`UsageError`, unreadable files) print one `error:` line and exit with status 2;
the library's messages name Python arguments, shown here as the flags that set them (`scaling.cli.common`).
What a command prints reaches stdout after it has written its files, so a reader that closes the pipe
early (`scaling fit ... --json f.json | head -1`) loses no file; the closed pipe then ends the command
quietly with status 141, as a Unix tool killed by SIGPIPE.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import warnings
from importlib import import_module

from scaling.cli.common import flag_names, in_flags
from scaling.errors import UsageError

EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a tool that SIGPIPE ended

# Order is the order of `scaling --help`.
COMMANDS = [
    "prepare", "runs", "fit", "allocate", "predict", "regimes", "hparams", "downstream", "report", "plan",
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors: same one-line form, status 2
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="scaling", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMANDS:
        import_module(f"scaling.cli.{name}").register(subparsers)
        command = subparsers.choices[name]
        command.set_defaults(flags=flag_names(command))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"warning: {in_flags(str(message), args.flags)}", file=sys.stderr)

    warnings.showwarning = show_warning
    stdout, sys.stdout = sys.stdout, io.StringIO()  # held until the command's files are written
    try:
        return int(args.handler(args) or 0)
    except UsageError as exc:
        print(f"error: {in_flags(str(exc), args.flags)}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path that is missing, a folder, unreadable, too long, on a full disk, ...
        name = "" if exc.filename is None else str(exc.filename)
        name = name if len(name) <= 200 else f"{name[:120]}...{name[-40:]}"
        print(f"error: {name}: {exc.strerror or exc}" if name else f"error: {exc}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except MemoryError:  # a memory limit (ulimit -v, a batch job's cap) below what the input needs
        resamples = getattr(args, "bootstrap", None)  # the commands that resample hold K fits at once
        fewer = f", fewer resamples (--bootstrap {resamples} asked)" if resamples else ""
        print(f"error: out of memory; raise the memory limit, or give fewer rows{fewer}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    finally:
        held, sys.stdout = sys.stdout.getvalue(), stdout
        if not _emit(held):
            return EXIT_BROKEN_PIPE  # noqa: B012 (a closed pipe overrides the status, as SIGPIPE would)


def _emit(text: str) -> bool:
    """Write `text` to stdout; False when the reader has closed the pipe (then stdout goes to /dev/null,
    so that Python's own flush at exit does not complain)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
        return True
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return False


if __name__ == "__main__":
    sys.exit(main())
