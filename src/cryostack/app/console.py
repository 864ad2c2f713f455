"""How commands talk to people: rich output on stdout, one-line errors on stderr, exit codes."""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List

from rich.console import Console
from rich.table import Table

from ..errors import CryostackError

console = Console(highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn a CryostackError into one line on stderr and its exit code: never a traceback."""
    try:
        yield
        sys.stdout.flush()  # a reader that went away shows up here, not at interpreter exit
    except CryostackError as exc:
        errors.print(f"cryostack: error: {exc}", markup=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        errors.print("cryostack: interrupted", markup=False)
        sys.exit(130)
    except BrokenPipeError:  # the reader went away (`| head`): nothing to report, nothing more to write
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
    except Exception as exc:  # a bug of ours: still one line, the traceback only on request
        if os.environ.get("CRYOSTACK_DEBUG"):
            raise
        errors.print(f"cryostack: internal error: {type(exc).__name__}: {exc} "
                     "(rerun with CRYOSTACK_DEBUG=1 for the traceback, and please report it)", markup=False)
        sys.exit(1)


def relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class Progress:
    """Live status while building: a table on a terminal, one line per change elsewhere (CI logs)."""

    def __init__(self, keys: List[str]):
        self.state = {key: "waiting" for key in keys}
        self.started: dict = {}
        self.live = None
        self.lock = threading.Lock()

    def __enter__(self):
        if console.is_terminal:
            from rich.live import Live
            self.live = Live(self._table(), console=console, refresh_per_second=2)
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live is not None:
            self.live.update(self._table())
            self.live.__exit__(*exc)

    def update(self, key: str, text: str) -> None:
        with self.lock:
            self.started.setdefault(key, time.monotonic())
            self.state[key] = text
            if self.live is not None:
                self.live.update(self._table())
            else:
                console.print(f"{time.strftime('%H:%M:%S')} {key}: {text}", markup=False)

    def _table(self) -> Table:
        table = Table("image", "status", "elapsed", box=None)
        for key, text in self.state.items():
            since = self.started.get(key)
            table.add_row(key, text, f"{time.monotonic() - since:.0f}s" if since else "")
        return table
