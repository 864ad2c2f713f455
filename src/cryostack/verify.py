"""Checks every built image must pass before it counts as built."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from .checks.result import CheckResult
from .engine.base import Engine
from .errors import last_line
from .plan import PlannedImage

# Provided by the host's NVIDIA driver at run time (apptainer --nv), never by the image.
HOST_DRIVER_LIBRARIES = ("libcuda.so", "libnvidia-ml.so", "libnvidia-ptxjitcompiler.so")

ELF_FILES = (
    'find {prefix} -type f \\( -perm -u+x -o -name "*.so*" \\) 2>/dev/null | while read -r f; do '
    'if [ "$(head -c 4 "$f" | tail -c 3)" = ELF ]; then echo "$f"; fi; done'
)


def smoke_test(engine: Engine, ref: str, image: PlannedImage) -> Optional[str]:
    """Run the family's smoke command in the image; a problem if it fails or its output does not match."""
    smoke = image.build_args["smoke"]
    return smoke_problem(smoke, *engine.run(ref, smoke["command"]))


def smoke_problem(smoke: dict, code: int, output: str) -> Optional[str]:
    """Judge a smoke command's exit code and output, wherever it ran (image or SIF)."""
    first = next((line for line in output.splitlines() if line.strip()), "(no output)")
    if code != 0:
        return f"smoke test `{smoke['command']}` exited {code}: {last_line(output)}"
    if smoke["expect"] and not re.search(smoke["expect"], output):
        return f"smoke test `{smoke['command']}` printed {first!r}, which does not match {smoke['expect']!r}"
    return None


def missing_commands(engine: Engine, ref: str, image: PlannedImage) -> Optional[str]:
    """Every command the catalogue promises must be on the image's PATH."""
    names = " ".join(shlex.quote(c) for c in image.build_args["commands"])
    code, output = engine.run(ref, f'for c in {names}; do command -v "$c" >/dev/null || echo "$c"; done')
    missing = output.split()
    if code != 0 or missing:
        return f"commands missing from the image: {', '.join(missing) or output.strip()}"
    return None


def missing_libraries(engine: Engine, ref: str, prefix: str) -> Optional[str]:
    """ldd over every ELF file under the install prefix: no 'not found' allowed."""
    script = f"{ELF_FILES.format(prefix=shlex.quote(prefix))} | while read -r f; do ldd \"$f\" 2>/dev/null | grep 'not found' | sed \"s|^|$f: |\"; done"
    _, output = engine.run(ref, script)
    missing = [line.strip() for line in output.splitlines()
               if "not found" in line and not any(lib in line for lib in HOST_DRIVER_LIBRARIES)]
    if missing:
        return f"missing shared libraries ({len(missing)}): {'; '.join(sorted(set(missing))[:5])}"
    return None


def cuda_architectures(engine: Engine, build_stage_ref: str, prefix: str) -> List[str]:
    """The sm_XX targets cuobjdump finds in the binaries under the prefix (run in the build stage)."""
    script = (f"{ELF_FILES.format(prefix=shlex.quote(prefix))} | while read -r f; do "
              "cuobjdump --list-elf \"$f\" 2>/dev/null; done")
    _, output = engine.run(build_stage_ref, script)
    return sorted(set(re.findall(r"\bsm_(\d+)\b", output)), key=int)


def functional_check(image: PlannedImage, run_in: Callable[[str, Path, int], Tuple[int, str]]) -> Optional[CheckResult]:
    """Run the version's functional check through RUN_IN(script, workdir, timeout), which runs the
    script in the image or its SIF with the work directory at /check; None when none is declared."""
    target = image.target
    spec = target.family.check_of(target.version)
    if spec is None:
        return None
    from .checks.run import run_check  # numpy, mrcfile, starfile: only where a check runs

    return run_check(spec, target.version, lambda script, workdir: run_in(script, workdir, spec.timeout))


def in_docker(engine: Engine, ref: str) -> Callable[[str, Path, int], Tuple[int, str]]:
    """Run a check's script in a container of REF, without network."""
    return lambda script, workdir, timeout: engine.run(
        ref, script, timeout=timeout, volumes={str(workdir): {"bind": "/check", "mode": "rw"}})


@dataclass(frozen=True)
class Verification:
    """Every problem found in a built image (none: it passed), and what its functional check measured."""

    problems: List[str]
    check: Optional[CheckResult] = None


def verify(engine: Engine, ref: str, image: PlannedImage, build_stage_ref: Optional[str]) -> Verification:
    """Smoke test, promised commands, shared libraries, CUDA SM, then the functional check."""
    prefix = image.contract.prefix
    problems = [p for p in (
        smoke_test(engine, ref, image),
        missing_commands(engine, ref, image),
        missing_libraries(engine, ref, prefix),
    ) if p]
    arch = image.build_args["cuda_arch"]
    if arch is not None and build_stage_ref is not None:
        found = cuda_architectures(engine, build_stage_ref, prefix)
        shown = ", ".join("sm_" + a for a in found) or "none"
        if str(arch) not in found:
            problems.append(f"binaries carry no sm_{arch} code (cuobjdump found: {shown})")
        elif found != [str(arch)]:  # a variant carries exactly the SM it claims, so its label can be trusted
            problems.append(f"binaries carry other SMs besides sm_{arch} (cuobjdump found: {shown})")
    checked = None
    if not problems:  # an image that does not start cannot compute anything: no need to try
        checked = functional_check(image, in_docker(engine, ref))
        if checked is not None and not checked.passed:
            problems.append(checked.describe())
    return Verification(problems, checked)
