"""The Docker engine: the Docker SDK for Python for images and containers, BuildKit for builds."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Dict, List, Optional, TextIO, Tuple

import docker
import docker.errors

from ..errors import BuildError, last_line
from . import buildkit
from .base import ImageInfo
from .buildkit import BuildCache


class DockerEngine:
    """Build, inspect, run and tag images on one Docker engine."""

    def __init__(self, client: "docker.DockerClient"):
        self.client = client

    @classmethod
    def connect(cls) -> "DockerEngine":
        """The engine DOCKER_HOST (or the default socket) points at; a clear error if none answers."""
        try:
            client = docker.from_env(timeout=600)
            client.ping()
        except docker.errors.DockerException as exc:
            raise BuildError(f"no Docker engine answers ({exc}); start one with `bash ci/setup.sh`") from None
        return cls(client)

    def image(self, ref: str) -> Optional[ImageInfo]:
        """What the engine knows of an image, or None if it has no such image."""
        try:
            attrs = self.client.api.inspect_image(ref)
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.APIError as exc:
            if exc.status_code == 404:
                return None
            raise BuildError(f"docker: cannot inspect {ref}: {exc.explanation}") from None
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        return ImageInfo(attrs["Id"], dict(labels), int(attrs.get("Size") or 0))

    def pull(self, ref: str) -> Tuple[bool, str]:
        """Try to pull an image; (False, why) when the registry cannot be reached."""
        try:
            self.client.images.pull(ref)
            return True, ""
        except docker.errors.APIError as exc:
            return False, str(exc.explanation or exc).splitlines()[0]

    def build(
        self, context: Path, tag: str, labels: Dict[str, str], log: TextIO,
        network: str = "host", target: Optional[str] = None, cache: BuildCache = BuildCache(), no_cache: bool = False,
    ) -> str:
        """Build the Dockerfile in `context` with BuildKit, every step's output to `log`; returns the image ID."""
        return buildkit.build(context, tag, labels, log, network, target, cache, no_cache)

    def run(self, ref: str, script: str, timeout: int = 600, **options) -> Tuple[int, str]:
        """Run a shell script in a throw-away container, without network unless `options` say
        otherwise (volumes, cap_add, devices ...: the SDK's create() arguments); (exit code, output)."""
        options.setdefault("network_mode", "none")
        container = self.client.containers.create(ref, ["/bin/sh", "-c", script], **options)
        try:
            container.start()
            result = container.wait(timeout=timeout)
            output = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
            return int(result.get("StatusCode", 1)), output
        finally:
            container.remove(force=True)

    def push(self, local_ref: str, remote_ref: str, auth: Optional[Dict[str, str]], log: TextIO,
             scrub=lambda text: text) -> str:
        """Tag and push; returns the manifest digest the registry reported. The SDK reports a failed
        push as {'error': ...} in the stream, never as an exception: every item is checked."""
        self.tag(local_ref, remote_ref)
        repository, _, tag = remote_ref.rpartition(":")
        digest = None
        try:
            for item in self.client.api.push(repository, tag=tag, stream=True, decode=True, auth_config=auth):
                if "error" in item:
                    log.write(scrub(f"ERROR: {item['error']}\n"))
                    raise BuildError(f"push {remote_ref}: {scrub(_short(item['error']))}")
                if item.get("status"):
                    log.write(f"{item.get('id', '')} {item['status']}\n")
                digest = (item.get("aux") or {}).get("Digest", digest)
        except docker.errors.APIError as exc:
            raise BuildError(f"push {remote_ref}: {scrub(_short(str(exc.explanation or exc)))}") from None
        finally:
            log.flush()
        if not digest:
            raise BuildError(f"push {remote_ref}: the engine reported no digest")
        return digest

    def pull_by_digest(self, repository: str, digest: str, auth: Optional[Dict[str, str]], scrub=lambda t: t) -> str:
        """Pull repository@digest; returns the local image ID."""
        try:
            for item in self.client.api.pull(repository, tag=digest, stream=True, decode=True, auth_config=auth):
                if "error" in item:
                    raise BuildError(f"pull {repository}@{digest}: {scrub(_short(item['error']))}")
        except docker.errors.APIError as exc:
            raise BuildError(f"pull {repository}@{digest}: {scrub(_short(str(exc.explanation or exc)))}") from None
        info = self.image(f"{repository}@{digest}")
        if info is None:
            raise BuildError(f"pull {repository}@{digest}: no image afterwards")
        return info.id

    def save(self, ref: str, dest: Path) -> None:
        """`docker save REF > DEST` (a docker-archive tarball)."""
        with open(dest, "wb") as out:
            for chunk in self.client.images.get(ref).save(named=True):
                out.write(chunk)

    def tag(self, ref: str, new_ref: str) -> None:
        repository, _, tag = new_ref.rpartition(":")
        self.client.api.tag(ref, repository, tag, force=True)

    def untag(self, ref: str) -> None:
        try:
            self.client.api.remove_image(ref, noprune=True)
        except docker.errors.APIError:
            pass

    def images(self, repository: str) -> List[str]:
        return [tag for image in self.client.images.list(name=repository) for tag in image.tags]

    def import_rootfs(self, rootfs: Path, ref: str, changes: List[str]) -> str:
        """`tar -C ROOTFS -c . | docker import` : a base image from a debootstrap tree."""
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        try:
            repository, _, tag = ref.rpartition(":")
            result = self.client.api.import_image_from_stream(tar.stdout, repository=repository, tag=tag, changes=changes)
        finally:
            tar.stdout.close()
            tar.wait()
        if tar.returncode:
            raise BuildError(f"tar of {rootfs} failed with exit code {tar.returncode}")
        info = self.image(ref)
        if info is None:
            raise BuildError(f"docker import of {rootfs} gave no image: {str(result)[:200]}")
        return info.id


def _short(message: str) -> str:
    return last_line(message, "unknown error")
