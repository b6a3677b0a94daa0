"""What every `aesweep` command line shares: usage mistakes and user errors as one line and exit status 2,
and the argument types that refuse a bad value in that one line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from aesweep.errors import AesweepError


class UsageError(Exception):
    """Raised instead of argparse's print-usage-and-exit, so a command can print one line and return 2."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: error: {message}")


def one_line_errors(prog: str, command: Callable[[], int]) -> int:
    """Run a command; usage and user errors become one stderr line and exit status 2, Ctrl-C 130."""
    try:
        return command()
    except UsageError as error:
        print(error, file=sys.stderr)
        return 2
    except SystemExit as done:  # --help
        return done.code if isinstance(done.code, int) else 0
    except AesweepError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1, refused in one line otherwise."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: a positive whole number")
    return value


def hydra_override(text: str) -> str:
    """argparse type: a Hydra override, KEY=VALUE (or ~KEY, which deletes a key), refused in one line otherwise."""
    key = text.split("=", 1)[0].lstrip("+~")
    if not key or ("=" not in text and not text.startswith("~")):
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: KEY=VALUE, a Hydra override such as "
                                         "model.bottleneck=16")
    return text
