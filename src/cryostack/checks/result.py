"""What a functional check found: passed or not, one line for people, the numbers for records."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import Dict


@dataclass(frozen=True)
class CheckResult:
    """The verdict of one check; `summary` names the numbers measured and the tolerance."""

    kind: str
    passed: bool
    summary: str
    measures: Dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def describe(self) -> str:
        """'check <kind> passed: <summary>' (or failed), for build summaries and error messages."""
        return f"check {self.kind} {'passed' if self.passed else 'failed'}: {self.summary}"


def exit_status(code: int) -> str:
    """'exited 1', or 'died of SIGSEGV (exit 139)' for a shell's 128+N codes."""
    if code > 128:
        try:
            return f"died of {signal.Signals(code - 128).name} (exit {code})"
        except ValueError:
            pass
    return f"exited {code}"
