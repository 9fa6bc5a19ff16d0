"""The ``sora-tta`` command line: one subcommand per pipeline step.

Each area of the package registers its own subcommands through a
``register(subparsers)`` function in its ``commands`` module; heavy imports
(torch, diffusers) happen inside the command functions so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

COMMAND_MODULES = (
    "sora_tta.smoke",
    "sora_tta.data.commands",
    "sora_tta.tta.commands",
    "sora_tta.evaluation.commands",
    "sora_tta.workflow_commands",
    "sora_tta.cluster.commands",
    "sora_tta.world.commands",
)


class CommandError(RuntimeError):
    """An expected failure: printed as one line, exit status 1 (or ``exit_code``)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="sora-tta", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    for sub in subparsers.choices.values():
        # -v after the subcommand too; SUPPRESS keeps a -v given before it
        sub.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging"
        )
    return parser


def package_version() -> str:
    """The installed sora-tta version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sora-tta")
    except PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sora-tta`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args) or 0)
    except CommandError as err:
        print(f"sora-tta {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except OSError as err:  # I/O failure: one line naming the file, no traceback
        where = f"{err.filename}: " if err.filename else ""
        print(f"sora-tta {args.command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
