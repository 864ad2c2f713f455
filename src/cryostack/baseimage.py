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

# Bump when the way the base is made changes: an existing base of another layout is made again.
LAYOUT = "slim-1"

# dpkg leaves these out of every package installed later (in the base and in every image made
# from it): manuals, documentation and translations nobody reads in a container. Copyright files
# stay: the images are redistributed, and they carry the packages' licences.
DPKG_EXCLUDES = """\
# Written by cryostack's base image: no manuals, documentation or translations in containers.
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/usr/share/lintian/*
"""


def make_base_image(engine: Engine, ref: str, suite: str, workdir: Path, log_path: Path,
                    force: bool = False) -> Optional[str]:
    """debootstrap --variant=minbase SUITE, trimmed (see `trim`), then docker import as REF. None if REF
    exists already in the current layout."""
    existing = engine.image(ref)
    if existing is not None and existing.labels.get("io.cryostack.base-layout") == LAYOUT and not force:
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
        trim(rootfs)
        return engine.import_rootfs(rootfs, ref, changes=[
            f"LABEL io.cryostack.base-suite={suite} io.cryostack.base-layout={LAYOUT}",
            'CMD ["/bin/bash"]',
        ])


def trim(rootfs: Path) -> None:
    """What debootstrap leaves that no image needs: the downloaded .debs and apt's package lists
    (every recipe runs apt-get update), and the files DPKG_EXCLUDES keeps out from now on."""
    (rootfs / "etc/dpkg/dpkg.cfg.d").mkdir(parents=True, exist_ok=True)
    (rootfs / "etc/dpkg/dpkg.cfg.d/cryostack-slim").write_text(DPKG_EXCLUDES)
    for pattern in ("var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*_*",
                    "usr/share/man/*", "usr/share/info/*", "usr/share/lintian/*"):
        for path in rootfs.glob(pattern):
            _remove(path)
    for path in (rootfs / "usr/share/locale").glob("*"):
        if path.name != "locale.alias":
            _remove(path)
    for package in (rootfs / "usr/share/doc").glob("*"):
        for path in (package.iterdir() if package.is_dir() and not package.is_symlink() else ()):
            if path.name != "copyright":
                _remove(path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
