"""The source mirror: one directory of source archives and installers, each checked by sha256.

A file placed by hand (air-gapped sites, licence-gated installers) is used as it is once its
checksum matches; a missing file is fetched from its origin into a temporary name, checked,
then renamed, so the mirror never holds a file that failed its check under its final name.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Sequence

from .errors import BuildError, InputError, last_line
from .debian import DebianUnavailable, download_source
from .schema import DebianSource, Source



class SourceUnavailable(BuildError):
    """The source cannot be had on this machine (offline origin, maintainer-supplied file absent)."""



def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class SourceMirror:
    """A directory of verified source files, keyed by the catalogue's `file` names, behind a search
    path of read-only directories (a site's staged sources) that are looked in first and never written."""

    def __init__(self, root: Path, search_path: Sequence[Path] = ()):
        self.root = Path(root).absolute()
        self.search_path = [Path(p).absolute() for p in search_path]

    def path(self, source: Source) -> Path:
        return self.root / source.file

    def ensure(self, source: Source, where: str) -> Path:
        """The verified file for `source`: from the search path, else the mirror, else fetched into
        the mirror. `where` names the catalogue entry."""
        if source.sha256 is None:
            raise InputError(f"{where}: source {source.file} has no sha256 pin ({source.unpinned})")
        for directory in self.search_path:
            staged = directory / source.file
            if staged.is_file():
                actual = sha256_of(staged)
                if actual != source.sha256:
                    raise InputError(
                        f"{where}: sha256 mismatch for {staged} (CRYOSTACK_SOURCE_PATH): the file has {actual}, "
                        f"the catalogue pins {source.sha256}; refusing it (it is read-only here: fix it at its origin)")
                return staged
        path = self.path(source)
        if not path.exists():
            self._fetch(source, where)
        actual = sha256_of(path)
        if actual != source.sha256:
            raise InputError(
                f"{where}: sha256 mismatch for {path}: the file has {actual}, the catalogue pins {source.sha256}; "
                "refusing it (remove the file, or pin the new checksum if you have checked it)"
            )
        return path

    def _fetch(self, source: Source, where: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if source.supplied_by_maintainer:
            raise SourceUnavailable(
                f"{where}: {source.file} is supplied by the maintainer (licence-gated download): place it in {self.root}/"
            )
        with tempfile.TemporaryDirectory(dir=self.root, prefix=".fetch-") as tmp:
            if source.url:
                fetched = download(source.url, Path(tmp) / source.file)
            elif source.debian:
                fetched = _apt_source(source.debian, source.file, Path(tmp))
            else:
                fetched = _pip_sdist(source.pypi.name, source.pypi.version, source.file, Path(tmp))
            actual = sha256_of(fetched)
            if actual != source.sha256:
                raise InputError(
                    f"{where}: sha256 mismatch for {source.file} as fetched: got {actual}, the catalogue pins "
                    f"{source.sha256}; nothing was written to the mirror"
                )
            os.replace(fetched, self.path(source))


def download(url: str, dest: Path) -> Path:
    """Save URL to DEST; an unreachable URL is SourceUnavailable, naming it."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as exc:
        raise SourceUnavailable(f"cannot download {url}: {getattr(exc, 'reason', exc)}") from None
    return dest


def _apt_source(debian: DebianSource, file: str, tmp: Path) -> Path:
    """The .orig tarball of a Debian source package (the .debian half may be missing: not needed)."""
    try:
        fetched = download_source(debian.package, debian.suite, tmp) / file
    except DebianUnavailable as exc:
        raise SourceUnavailable(str(exc)) from None
    if not fetched.exists():
        raise SourceUnavailable(f"apt-get source {debian.package}/{debian.suite} gave no {file}")
    return fetched


def _pip_sdist(name: str, version: str, file: str, tmp: Path) -> Path:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--no-build-isolation",
         "--ignore-requires-python", "-d", str(tmp), f"{name}=={version}"],
        capture_output=True, text=True, check=False,
    )
    fetched = tmp / file
    if not fetched.exists():
        raise SourceUnavailable(f"pip download {name}=={version} gave no {file}: {last_line(result.stderr)}")
    return fetched
