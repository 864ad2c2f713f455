"""The two kinds of failure a user sees, each with its exit code."""

import sys
from pathlib import Path
from typing import Optional


def run_hint(task: str) -> str:
    """`TASK` as the user would type it with the front door they used: `invoke TASK` or `cryostack TASK`."""
    program = "invoke" if Path(sys.argv[0]).name in ("inv", "invoke") else "cryostack"
    return f"`{program} {task}`"


def last_line(text: Optional[str], empty: str = "(no output)") -> str:
    """The last non-blank line of a tool's output, stripped: what a one-line error quotes of it."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else empty


class CryostackError(Exception):
    """A failure reported to the user as one line; `exit_code` is what the CLI exits with."""

    exit_code = 1


class InputError(CryostackError):
    """Bad input (catalogue, selector, option, site file): exit code 2, nothing done."""

    exit_code = 2


class BuildError(CryostackError):
    """A build, verification or publish step failed: exit code 1."""

    exit_code = 1
