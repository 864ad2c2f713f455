"""Apptainer: SIF files from built Docker images, with the host's apptainer or a containerised one.

Apptainer is not packaged for bookworm; where the host has none, cryostack builds a tool image
from Debian packages (recipes/tools/apptainer.Dockerfile) and runs it with the few privileges
`apptainer build` needs (SYS_ADMIN, no seccomp/AppArmor profile; --privileged is not needed).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

from ..errors import BuildError, last_line, run_hint
from .base import Engine

TOOL_IMAGE = "local/apptainer:sid"
TOOL_BASE = "local/debian:trixie"
CONTAINER_OPTIONS = dict(
    cap_add=["SYS_ADMIN"],
    security_opt=["seccomp=unconfined", "apparmor=unconfined"],
    devices=["/dev/fuse"],
)


class Apptainer:
    """Build and test SIF files; every apptainer call goes through here."""

    def __init__(self, engine: Engine, tool_dockerfile: Path, log_path: Path):
        self.engine = engine
        self.tool_dockerfile = tool_dockerfile
        self.log_path = log_path
        self.host = shutil.which("apptainer")

    @property
    def where(self) -> str:
        return f"host ({self.host})" if self.host else f"container ({TOOL_IMAGE})"

    def ensure(self) -> None:
        """Make the tool image if the host has no apptainer and the engine lacks the image."""
        if self.host or self.engine.image(TOOL_IMAGE) is not None:
            return
        if not self.tool_dockerfile.is_file():
            raise BuildError(f"no apptainer on this host and no {self.tool_dockerfile} to build one: "
                             "put apptainer on PATH, or run from a cryostack checkout")
        if self.engine.image(TOOL_BASE) is None:
            raise BuildError(f"no apptainer on this host and no {TOOL_BASE} to build one from: "
                             f"run {run_hint('base-image --suite trixie')} first")
        with tempfile.TemporaryDirectory() as context, open(self.log_path, "a") as log:
            shutil.copy(self.tool_dockerfile, Path(context) / "Dockerfile")
            self.engine.build(Path(context), TOOL_IMAGE, {"io.cryostack.tool": "apptainer"}, log)

    def build_sif(self, image_ref: str, dest: Path) -> None:
        """SIF of a local Docker image, written under a temporary name then renamed into place."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".sif-") as tmp:
            work = Path(tmp)
            self.engine.save(image_ref, work / "image.tar")
            code, output = self._apptainer(work, "build /data/image.sif docker-archive:/data/image.tar")
            if code != 0 or not (work / "image.sif").exists():
                raise BuildError(f"apptainer build of {image_ref} failed: {last_line(output)}")
            with open(work / "image.sif", "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(work / "image.sif", dest)

    def exec(self, sif: Path, script: str, binds: Optional[Dict[Path, str]] = None) -> Tuple[int, str]:
        """Run a shell script inside a SIF (apptainer exec), with host directories bound where BINDS says."""
        binds = binds or {}
        # In the tool container loop devices cannot be attached; --userns mounts the SIF with squashfuse.
        mode = "" if self.host else "--userns "
        # The tool container sees each bound directory at its host path, so one --bind serves both cases.
        bind = "".join(f"--bind {shlex.quote(f'{Path(host).resolve()}:{inside}')} " for host, inside in binds.items())
        return self._apptainer(sif.parent, f"exec {mode}{bind}/data/{shlex.quote(sif.name)} /bin/sh -c {shlex.quote(script)}",
                               extra_volumes=[Path(host).resolve() for host in binds])

    def _apptainer(self, data: Path, arguments: str, extra_volumes: Sequence[Path] = ()) -> Tuple[int, str]:
        with open(self.log_path, "a") as log:
            log.write(f"$ apptainer {arguments}   (/data = {data})\n")
            if self.host:
                command = f"cd {shlex.quote(str(data))} && {shlex.quote(self.host)} {arguments.replace('/data/', '')}"
                result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=False)
                code, output = result.returncode, result.stdout + result.stderr
            else:
                volumes = {str(path): {"bind": str(path), "mode": "rw"} for path in extra_volumes}
                volumes[str(data.resolve())] = {"bind": "/data", "mode": "rw"}
                code, output = self.engine.run(TOOL_IMAGE, f"apptainer {arguments}", timeout=3600,
                                               volumes=volumes, **CONTAINER_OPTIONS)
            log.write(output)
        return code, output
