"""Make a local Debian base image with debootstrap, for sites (and machines) that pull no images."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

from .engine.base import Engine
from .errors import BuildError
from .debian import archive_uris


def make_base_image(engine: Engine, ref: str, suite: str, workdir: Path, log_path: Path,
                    force: bool = False) -> Optional[str]:
    """debootstrap --variant=minbase SUITE, then docker import as REF. None if REF exists already."""
    if engine.image(ref) is not None and not force:
        return None
    if shutil.which("debootstrap") is None:
        raise BuildError("debootstrap is not installed: apt-get install debootstrap (ci/setup.sh does)")
    mirrors = archive_uris()  # this machine's own Debian archive; debootstrap's default otherwise
    workdir.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=workdir, prefix=".debootstrap-") as tmp, open(log_path, "w") as log:
        rootfs = Path(tmp) / "rootfs"
        command = ["debootstrap", "--variant=minbase", suite, str(rootfs)] + mirrors[:1]
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
        if result.returncode:
            raise BuildError(f"debootstrap {suite} failed (exit {result.returncode}); see {log_path}")
        return engine.import_rootfs(rootfs, ref, changes=[
            f"LABEL io.cryostack.base-suite={suite}",
            'CMD ["/bin/bash"]',
        ])
