"""Debian's archive through this machine's own apt configuration: source packages and packages
from other suites, fetched with a private apt configuration (the host's apt sources never change)."""

from __future__ import annotations

import argparse
import glob
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List

from .errors import BuildError, last_line

APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


class DebianUnavailable(BuildError):
    """The archive cannot be reached, or it has no such package."""


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


def _apt(kind: str, suite: str, components: str, work: Path) -> List[str]:
    """apt options for a private configuration under WORK with one stanza (deb or deb-src) for SUITE."""
    uris = archive_uris()
    if not uris:
        raise DebianUnavailable("no Debian archive in this machine's apt sources")
    for sub in ("parts", "lists/partial", "cache/archives/partial"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    signed = f"Signed-By: {KEYRING}\n" if KEYRING.exists() else ""
    (work / "parts" / "cryostack.sources").write_text(
        f"Types: {kind}\nURIs: {' '.join(uris)}\nSuites: {suite}\nComponents: {components}\n{signed}")
    options = [
        "-o", "Dir::Etc::SourceList=/dev/null", "-o", f"Dir::Etc::SourceParts={work / 'parts'}",
        "-o", f"Dir::State::Lists={work / 'lists'}", "-o", f"Dir::Cache={work / 'cache'}",
        # Suites such as sid may carry a Release file past its Valid-Until date.
        "-o", "Acquire::Check-Valid-Until=false", "-q",
    ]
    update = subprocess.run(["apt-get", *options, "update"], capture_output=True, text=True, check=False)
    if update.returncode:
        raise DebianUnavailable(f"apt-get update for {suite} failed: {last_line(update.stderr)}")
    return options


def download_source(package: str, suite: str, into: Path) -> Path:
    """`apt-get source --download-only PACKAGE/SUITE` into INTO; returns INTO."""
    options = _apt("deb-src", suite, "main", into / ".apt")
    result = subprocess.run(["apt-get", *options, "source", "--download-only", f"{package}/{suite}"],
                            cwd=into, capture_output=True, text=True, check=False)
    if not any(into.glob(f"{package}_*")):
        raise DebianUnavailable(f"apt-get source {package}/{suite}: {last_line(result.stderr or result.stdout)}")
    return into


def install_package(package: str, suite: str) -> None:
    """Install one binary package from another suite (its dependencies must already be met here)."""
    with tempfile.TemporaryDirectory(prefix="cryostack-apt-") as tmp:
        work = Path(tmp)
        options = _apt("deb", suite, "main", work)
        result = subprocess.run(["apt-get", *options, "download", package], cwd=work,
                                capture_output=True, text=True, check=False)
        debs = sorted(work.glob(f"{package}_*.deb"))
        if not debs:
            raise DebianUnavailable(f"apt-get download {package} from {suite}: {last_line(result.stderr)}")
        result = subprocess.run(["dpkg", "-i", str(debs[0])], capture_output=True, text=True, check=False)
        if result.returncode:
            raise DebianUnavailable(f"dpkg -i {debs[0].name}: {last_line(result.stderr or result.stdout)}")


def main(argv: List[str] | None = None) -> None:
    """`python -m cryostack.debian install PACKAGE --suite SUITE` (what ci/setup.sh runs)."""
    parser = argparse.ArgumentParser(prog="python -m cryostack.debian")
    parser.add_argument("action", choices=["install"])
    parser.add_argument("package")
    parser.add_argument("--suite", required=True)
    args = parser.parse_args(argv)
    try:
        install_package(args.package, args.suite)
    except BuildError as exc:
        sys.exit(f"cryostack: error: {exc}")


if __name__ == "__main__":
    main()
