"""Run a functional check: make its input, run it in the image, judge what it computed."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Tuple

from . import ctf_estimation, molecule_map, picking_setup, reconstruction
from .result import CheckResult
from .spec import CheckSpec, NoCheck

# kind -> module with prepare(spec, workdir, version) -> script and judge(spec, workdir, code, output)
KINDS = {
    "reconstruction": reconstruction,
    "ctf-estimation": ctf_estimation,
    "molecule-map": molecule_map,
    "picking-setup": picking_setup,
}

# Runs a shell script in the image with the work directory mounted at /check, without network;
# returns (exit code, combined output).
RunInImage = Callable[[str, Path], Tuple[int, str]]


def prepare(spec: CheckSpec, workdir: Path, version: str) -> str:
    """Write the check's synthetic input into WORKDIR; the shell script to run in the image."""
    return KINDS[spec.kind].prepare(spec, workdir, version)


def judge(spec: CheckSpec, workdir: Path, exit_code: int, output: str) -> CheckResult:
    """Compare what the image computed (in WORKDIR and OUTPUT) with the known answer."""
    return KINDS[spec.kind].judge(spec, workdir, exit_code, output)


def run_check(spec: CheckSpec, version: str, run_in_image: RunInImage) -> CheckResult:
    """Prepare, run and judge one check in a fresh work directory. A wrong answer, a crash or a
    time-out is a failed result, never an exception."""
    if isinstance(spec, NoCheck):
        return CheckResult(spec.kind, True, f"no functional check: {spec.reason}")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"cryostack-check-{spec.kind}-") as tmp:
        workdir = Path(tmp)
        # The image may run as another user (Apptainer runs as the caller): let it write here.
        os.chmod(workdir, 0o777)
        script = prepare(spec, workdir, version)
        try:
            exit_code, output = run_in_image(script, workdir)
        except Exception as exc:  # a time-out or a lost engine: the image did not compute the answer
            result = CheckResult(spec.kind, False, f"did not run to the end: {type(exc).__name__}: {exc}")
        else:
            try:
                result = judge(spec, workdir, exit_code, output)
            except Exception as exc:  # output we cannot read is a wrong answer, not a crash of ours
                result = CheckResult(spec.kind, False, f"unreadable result ({type(exc).__name__}: {exc})")
    return replace(result, seconds=round(time.monotonic() - started, 1))
