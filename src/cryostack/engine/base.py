"""The Engine protocol: everything cryostack asks of a container engine, and nothing more.

Stages type against this protocol; engine/docker.py implements it (Docker SDK for images and
containers, BuildKit for builds), so the rest of the package never imports the Docker SDK.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Protocol, TextIO, Tuple

from .buildkit import BuildCache


@dataclass(frozen=True)
class ImageInfo:
    """What an engine knows of one local image."""

    id: str
    labels: Dict[str, str]
    size: int


class Engine(Protocol):
    def image(self, ref: str) -> Optional[ImageInfo]:
        """The local image REF, or None."""

    def build(self, context: Path, tag: str, labels: Dict[str, str], log: TextIO, network: str = "host",
              target: Optional[str] = None, cache: BuildCache = BuildCache(), no_cache: bool = False) -> str:
        """Build CONTEXT/Dockerfile (a TARGET stage of it) as TAG; every step's output to LOG; the image ID."""

    def run(self, ref: str, script: str, timeout: int = 600, **options) -> Tuple[int, str]:
        """Run a shell script in a throw-away container; (exit code, output)."""

    def tag(self, ref: str, new_ref: str) -> None: ...

    def untag(self, ref: str) -> None: ...

    def pull(self, ref: str) -> Tuple[bool, str]:
        """Try to pull REF; (False, why) when it cannot be had."""

    def push(self, local_ref: str, remote_ref: str, auth: Optional[Dict[str, str]], log: TextIO,
             scrub: Callable[[str], str] = ...) -> str:
        """Push LOCAL_REF as REMOTE_REF; the digest the registry reported."""

    def pull_by_digest(self, repository: str, digest: str, auth: Optional[Dict[str, str]],
                       scrub: Callable[[str], str] = ...) -> str: ...

    def save(self, ref: str, dest: Path) -> None:
        """Write REF as a docker-archive tarball to DEST."""

    def import_rootfs(self, rootfs: Path, ref: str, changes: List[str]) -> str:
        """Import a root file system tree as image REF; its ID."""

    def images(self, repository: str) -> List[str]:
        """Every tag of REPOSITORY the engine holds."""


def connect() -> Engine:
    """The engine this machine runs (Docker, reached as DOCKER_HOST or the default socket says)."""
    from .docker import DockerEngine

    return DockerEngine.connect()
