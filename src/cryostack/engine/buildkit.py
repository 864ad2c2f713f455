"""Builds through BuildKit (`docker buildx build`), the engine's builder with cache mounts.

The Docker SDK only drives the legacy builder (no `RUN --mount=type=cache`, no cache export), so
builds go through the buildx CLI plugin (Debian's `docker-buildx`, installed by ci/setup.sh) on
the engine's own BuildKit. Every step's output goes to the image's log (`--progress plain`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, TextIO

from ..errors import BuildError, last_line

# Where the Docker CLI looks for plugins; Debian's docker-buildx installs into the libexec one.
PLUGIN_DIRS = ("/usr/libexec/docker/cli-plugins", "/usr/lib/docker/cli-plugins",
               "/usr/local/libexec/docker/cli-plugins", "/usr/local/lib/docker/cli-plugins")


@dataclass(frozen=True)
class BuildCache:
    """Cache to import before and export after a build: a registry reference (`type=registry,ref=...`)
    or an inline cache in the image itself, so CI shards can share layers."""

    imports: tuple = ()
    export: Optional[str] = None

    def options(self) -> List[str]:
        options = [f"--cache-from={source}" for source in self.imports]
        if self.export:
            options.append(f"--cache-to={self.export}")
        return options


def buildx() -> List[str]:
    """The command that runs buildx: the standalone plugin binary, which needs no particular docker CLI."""
    for directory in PLUGIN_DIRS:
        plugin = Path(directory, "docker-buildx")
        if plugin.is_file() and os.access(plugin, os.X_OK):
            return [str(plugin)]
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "buildx", "version"], capture_output=True, check=False).returncode == 0:
        return [docker, "buildx"]
    raise BuildError("BuildKit's buildx is not installed: apt-get install docker-buildx from Debian trixie "
                     "(ci/setup.sh does)")


def build(context: Path, tag: Optional[str], labels: Dict[str, str], log: TextIO, network: str = "host",
          target: Optional[str] = None, cache: BuildCache = BuildCache(), no_cache: bool = False) -> str:
    """Build CONTEXT/Dockerfile into the engine's image store; returns the image ID. NO_CACHE: reuse no
    layer (cache mounts still apply: give them a fresh namespace for a truly cold build)."""
    with tempfile.TemporaryDirectory(prefix="cryostack-buildx-") as tmp:
        iidfile = Path(tmp) / "iid"
        command = [*buildx(), "build", "--progress=plain", f"--network={network}", f"--iidfile={iidfile}"]
        if tag:
            command.append(f"--tag={tag}")
        if target:
            command.append(f"--target={target}")
        if no_cache:
            command.append("--no-cache")
        command += [f"--label={name}={value}" for name, value in sorted(labels.items())]
        command += cache.options()
        command.append(str(context))
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False,
                                env=dict(os.environ, BUILDX_NO_DEFAULT_ATTESTATIONS="1"))
        log.flush()
        if result.returncode != 0:
            raise BuildError(f"build failed: {_failed_step(log)}")
        image_id = iidfile.read_text().strip() if iidfile.exists() else ""
    if not image_id:
        raise BuildError("buildx build finished without an image ID")
    return image_id


def _failed_step(log: TextIO) -> str:
    """The line of the log that says which step failed (BuildKit's 'ERROR: ...'), else its last line."""
    try:
        text = Path(log.name).read_text(encoding="utf-8", errors="replace")
    except (OSError, AttributeError, TypeError):
        return "see the build log"
    errors = [line.strip() for line in text.splitlines() if line.startswith("ERROR")]
    if not errors:
        return last_line(text)
    failed = re.search(r"failed running \[(?:/bin/bash -o pipefail -c )?(.*)\]: exit code: (\d+)", errors[-1])
    if failed:
        return f"step `{' '.join(failed.group(1).split())}` exited with code {failed.group(2)}"
    return errors[-1]
