"""The source mirror: one directory of source archives and installers, each checked by sha256.

A file placed by hand (air-gapped sites, licence-gated installers) is used as it is once its
checksum matches; a missing file is fetched from its origin into a temporary name, checked,
then renamed, so the mirror never holds a file that failed its check under its final name.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import List

from .errors import BuildError, InputError, last_line
from .schema import DebianSource, Source

APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))


class SourceUnavailable(BuildError):
    """The source cannot be had on this machine (offline origin, maintainer-supplied file absent)."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class SourceMirror:
    """A directory of verified source files, keyed by the catalogue's `file` names."""

    def __init__(self, root: Path):
        self.root = Path(root).absolute()

    def path(self, source: Source) -> Path:
        return self.root / source.file

    def ensure(self, source: Source, where: str) -> Path:
        """The verified file for `source`, fetching it if absent. `where` names the catalogue entry."""
        if source.sha256 is None:
            raise InputError(f"{where}: source {source.file} has no sha256 pin ({source.unpinned})")
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
    """apt-get source --download-only through a private apt configuration with deb-src entries
    for the wanted suite, derived from this machine's own apt sources (nothing on the host changes)."""
    uris = archive_uris()
    if not uris:
        raise SourceUnavailable("no Debian archive in this machine's apt sources to fetch source packages from")
    (tmp / "parts").mkdir()
    (tmp / "lists" / "partial").mkdir(parents=True)
    (tmp / "cache" / "archives" / "partial").mkdir(parents=True)
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    signed = f"Signed-By: {keyring}\n" if Path(keyring).exists() else ""
    (tmp / "parts" / "cryostack-src.sources").write_text(
        f"Types: deb-src\nURIs: {' '.join(uris)}\nSuites: {debian.suite}\nComponents: main\n{signed}"
    )
    options = [
        "-o", "Dir::Etc::SourceList=/dev/null", "-o", f"Dir::Etc::SourceParts={tmp / 'parts'}",
        "-o", f"Dir::State::Lists={tmp / 'lists'}", "-o", f"Dir::Cache={tmp / 'cache'}",
        "-o", "Acquire::Check-Valid-Until=false", "-q",
    ]
    update = subprocess.run(["apt-get", *options, "update"], capture_output=True, text=True, check=False)
    if update.returncode:
        raise SourceUnavailable(f"apt-get update for {debian.suite} sources failed: {last_line(update.stderr)}")
    into = tmp / "download"
    into.mkdir()
    # The .debian.tar.xz half may be missing from a mirror; only the .orig tarball matters.
    result = subprocess.run(
        ["apt-get", *options, "source", "--download-only", f"{debian.package}/{debian.suite}"],
        cwd=into, capture_output=True, text=True, check=False,
    )
    fetched = into / file
    if not fetched.exists():
        raise SourceUnavailable(
            f"apt-get source {debian.package}/{debian.suite} gave no {file}: {last_line(result.stderr or result.stdout)}"
        )
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


def archive_uris() -> List[str]:
    """The Debian archive URIs this machine's apt uses (security and updates suites left out)."""
    uris: List[str] = []
    # apt reads only *.list and *.sources from sources.list.d; anything else is disabled.
    parts = glob.glob(str(APT_SOURCES[1] / "*.list")) + glob.glob(str(APT_SOURCES[1] / "*.sources"))
    files = [APT_SOURCES[0]] + sorted(Path(p) for p in parts)
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources":
            for stanza in text.split("\n\n"):
                fields = _deb822(stanza)
                suites = fields.get("Suites", "").split()
                if "deb" in fields.get("Types", "").split() and any(_main_suite(s) for s in suites):
                    uris += [u for u in fields.get("URIs", "").split() if u not in uris]
        else:
            for line in text.splitlines():
                words = [w for w in line.split() if not w.startswith("[")]
                if len(words) >= 3 and words[0] == "deb" and _main_suite(words[2]) and words[1] not in uris:
                    uris.append(words[1])
    return uris


def _main_suite(suite: str) -> bool:
    return not suite.endswith(("-security", "-updates", "-backports", "/updates"))


def _deb822(stanza: str) -> dict:
    fields = {}
    for line in stanza.splitlines():
        if line.startswith("#") or ":" not in line or line[:1].isspace():
            continue
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields
