"""What the generated dispatcher and wrapper add to a command's start: the same command run
through `bin/<command>` and by a direct `apptainer exec` of the SIF the wrapper picks."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..errors import BuildError, last_line


@dataclass(frozen=True)
class Overhead:
    command: str
    image: str
    wrapped_ms: float   # median wall time through dispatcher and wrapper
    direct_ms: float    # median wall time of `apptainer exec IMAGE COMMAND ARGS`
    runs: int

    @property
    def overhead_ms(self) -> float:
        return self.wrapped_ms - self.direct_ms

    @property
    def ratio(self) -> float:
        return self.wrapped_ms / self.direct_ms if self.direct_ms else float("inf")

    def line(self) -> str:
        return (f"{self.command}: {self.wrapped_ms:.1f} ms through the wrapper, {self.direct_ms:.1f} ms direct "
                f"(+{self.overhead_ms:.1f} ms, x{self.ratio:.2f}, median of {self.runs})")


def wrapper_overhead(prefix: Path, command: str, args: Sequence[str] = ("--version",), runs: int = 10,
                     env: Optional[Dict[str, str]] = None) -> Overhead:
    """Time PREFIX/bin/COMMAND ARGS against `apptainer exec <its SIF> COMMAND ARGS`, alternating,
    RUNS times each after one warm-up of each; ENV chooses the partition (SLURM_JOB_PARTITION) or module."""
    environment = dict(os.environ if env is None else env)
    dispatcher = Path(prefix) / "bin" / command
    query = subprocess.run([str(dispatcher)], env=dict(environment, CRYOSTACK_QUERY="image"),
                           capture_output=True, text=True)
    if query.returncode != 0 or not query.stdout.strip():
        raise BuildError(f"{dispatcher}: cannot tell which image it runs: {last_line(query.stderr)}")
    image = query.stdout.strip()
    wrapped: List[float] = []
    direct: List[float] = []
    for index in range(runs + 1):
        for argv, times in (([str(dispatcher), *args], wrapped), (["apptainer", "exec", image, command, *args], direct)):
            started = time.perf_counter()
            done = subprocess.run(argv, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            elapsed = (time.perf_counter() - started) * 1000
            if done.returncode != 0:
                raise BuildError(f"{' '.join(argv[:4])}: exit {done.returncode}: {last_line(done.stderr)}")
            if index:  # the first round warms caches (page cache, the SIF's squashfs)
                times.append(elapsed)
    return Overhead(command, image, statistics.median(wrapped), statistics.median(direct), runs)
