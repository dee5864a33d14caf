"""The analysis CLI `scaling`: a thin layer over the Python API.

Each subcommand lives in its own module of this package and exposes `register(subparsers)`, which adds
its parser and sets `handler` (a function of the parsed arguments returning the exit status).
Errors a user can fix (`UsageError`, unreadable files) print one `error:` line and exit with status 2;
the library's messages name Python arguments, shown here as the flags that set them (`scaling.cli.common`).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from importlib import import_module

from scaling.cli.common import flag_names, in_flags
from scaling.errors import UsageError

# Order is the order of `scaling --help`.
COMMANDS = ["prepare", "runs", "fit", "allocate", "predict", "regimes", "report", "plan"]


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
        print("error: out of memory; raise the memory limit or give fewer rows", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
