"""OCI registries: where images are pushed, and the distribution API that confirms what arrived."""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Optional

from ..errors import BuildError, InputError
from .fetch import CONNECT_TIMEOUT, opener

MANIFEST_TYPES = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
])


@dataclass(frozen=True)
class Registry:
    """A registry to push to. `public`: anyone may pull, so non-redistributable images are refused.
    `immutable_tags`: only fingerprint tags are pushed (ECR with IMMUTABLE tags refuses moving ones)."""

    url: str
    username: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    public: bool = False
    immutable_tags: bool = False

    @property
    def host(self) -> str:
        host = self.url.split("://", 1)[-1].rstrip("/")
        if not host or "/" in host:
            raise InputError(f"--registry {self.url!r}: give host[:port] or a URL without a path")
        return host

    @property
    def scheme(self) -> str:
        if "://" in self.url:
            return self.url.split("://", 1)[0]
        name = self.host.rsplit(":", 1)[0].strip("[]")
        try:
            loopback = ipaddress.ip_address(name).is_loopback
        except ValueError:
            loopback = name == "localhost"
        return "http" if loopback else "https"  # as Docker does: plain HTTP only on loopback

    def scrub(self, text: str) -> str:
        """Text with the password replaced, for messages and logs."""
        return text.replace(self.password, "***") if self.password else text


def remote_digest(registry: Registry, repository: str, tag: str) -> Optional[str]:
    """The manifest digest the registry holds for repository:tag, or None if it has none."""
    try:
        with _open(registry, f"/v2/{repository}/manifests/{tag}", "HEAD") as response:
            return response.headers.get("Docker-Content-Digest")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise _http_error(registry, exc, f"{repository}:{tag}") from None


def manifest(registry: Registry, repository: str, reference: str) -> dict:
    """The manifest document a tag or digest resolves to."""
    try:
        with _open(registry, f"/v2/{repository}/manifests/{reference}", "GET") as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise _http_error(registry, exc, f"{repository}@{reference}") from None
    except json.JSONDecodeError:
        raise BuildError(f"registry {registry.host}: the manifest of {repository}@{reference} is not JSON") from None


def _open(registry: Registry, path: str, method: str):
    request = urllib.request.Request(f"{registry.scheme}://{registry.host}{path}", method=method,
                                     headers={"Accept": MANIFEST_TYPES})
    if registry.username:
        token = base64.b64encode(f"{registry.username}:{registry.password or ''}".encode()).decode()
        # Unredirected: urllib does not copy it to a redirect; fetch's handler carries it over
        # only when the redirect stays on the registry's own origin.
        request.add_unredirected_header("Authorization", f"Basic {token}")
    try:
        return opener(None).open(request, timeout=CONNECT_TIMEOUT)
    except urllib.error.HTTPError:
        raise
    except (OSError, http.client.HTTPException) as exc:
        why = registry.scrub(str(getattr(exc, "reason", None) or exc))
        raise BuildError(f"registry {registry.host} cannot be reached: {why}") from None


def _http_error(registry: Registry, exc: urllib.error.HTTPError, what: str) -> BuildError:
    if exc.code == 401:
        return BuildError(f"registry {registry.host}: credentials refused (HTTP 401)")
    return BuildError(f"registry {registry.host}: HTTP {exc.code} for {what}")
