"""HTTP for pull and the registry API, bounded: which origins a redirect may reach, how long a
download may take, how many bytes it may bring, and that credentials never leave their origin.

Only http and https are spoken (no file://, ftp:// or data: URLs, not even through a redirect).
"""

from __future__ import annotations

import hashlib
import http.client
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import BinaryIO, Callable, FrozenSet, Optional

from ..errors import BuildError, InputError

CONNECT_TIMEOUT = 30.0     # seconds to connect, and the longest silence while reading
TOTAL_TIMEOUT = 3600.0     # seconds for one whole download
BLOCK = 1 << 20
_DEFAULT_PORTS = {"http": 80, "https": 443}


class RedirectRefused(urllib.error.URLError):
    """A redirect to an origin the caller did not allow, or away from http(s), or down to http."""


def origin(url: str) -> str:
    """scheme://host:port of URL, lower-cased with the default port spelled out: what a redirect
    is compared by. InputError for anything but an http(s) URL with a host."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        port = None
    if scheme not in _DEFAULT_PORTS or not parts.hostname or port is None:
        raise InputError(f"{url!r}: not an http(s) URL with a host")
    return f"{scheme}://{parts.hostname.lower()}:{port}"


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to an allowed origin (ALLOWED None: to any http(s) origin), never
    from https down to http, and carries credentials only to the origin they were given for."""

    def __init__(self, allowed: Optional[FrozenSet[str]]):
        self.allowed = allowed

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        try:
            target, start = origin(newurl), origin(req.full_url)
        except InputError:
            raise RedirectRefused(f"redirected to {newurl[:100]!r}, which is not an http(s) URL; refused") from None
        if start.startswith("https:") and not target.startswith("https:"):
            raise RedirectRefused(f"redirected from https down to {target}; refused")
        if self.allowed is not None and target not in self.allowed:
            raise RedirectRefused(f"redirected to {target}, another origin; refused (allow it with --allow-origin {target})")
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        # Credentials go on requests as "unredirected" headers, which urllib never copies to the
        # next request; they are carried over here, and only when the origin stays the same.
        if new is not None and target == start:
            for name, value in req.unredirected_hdrs.items():
                if name.lower() == "authorization":
                    new.add_unredirected_header(name, value)
        return new


def opener(allowed: Optional[FrozenSet[str]]) -> urllib.request.OpenerDirector:
    """An opener for http(s) only, whose redirects follow _Redirects."""
    director = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), urllib.request.HTTPHandler(), urllib.request.HTTPSHandler(),
                    _Redirects(allowed), urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPErrorProcessor()):
        director.add_handler(handler)
    return director


def read_limited(url: str, limit: int, allowed: FrozenSet[str], timeout: float = CONNECT_TIMEOUT,
                 total: float = TOTAL_TIMEOUT) -> bytes:
    """The body at URL, at most LIMIT bytes (more is an error), within TOTAL seconds.
    OSError (with a reason) for anything that went wrong on the way."""
    deadline = time.monotonic() + total
    request = urllib.request.Request(url, headers={"User-Agent": "cryostack"})
    with opener(allowed).open(request, timeout=min(timeout, total)) as response:
        chunks, size = [], 0
        while True:
            _check_deadline(deadline, total, url)
            chunk = response.read1(min(BLOCK, limit + 1 - size))
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                raise urllib.error.URLError(f"larger than {limit} bytes; stopped reading")
            chunks.append(chunk)


def download_verified(url: str, out: BinaryIO, sha256: str, size: int, allowed: FrozenSet[str],
                      timeout: float = CONNECT_TIMEOUT, total: float = TOTAL_TIMEOUT) -> None:
    """Stream URL into OUT, stopping as soon as it brings more than SIZE bytes or takes longer
    than TOTAL seconds; BuildError unless exactly SIZE bytes with this SHA256 arrived."""
    deadline = time.monotonic() + total
    request = urllib.request.Request(url, headers={"User-Agent": "cryostack"})
    try:
        with opener(allowed).open(request, timeout=min(timeout, total)) as response:
            announced = response.headers.get("Content-Length", "")
            if announced.isdigit() and int(announced) > size:
                raise BuildError(f"{url}: the server announces {announced} bytes, the manifest says {size}; not downloaded")
            copy_verified(response.read1, out, sha256, size, url, deadline, total)
    except RedirectRefused as exc:
        raise BuildError(f"{url}: {exc.reason}") from None
    except urllib.error.HTTPError as exc:
        raise BuildError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise BuildError(f"cannot download {url}: {getattr(exc, 'reason', None) or exc or type(exc).__name__}") from None


def copy_verified(read: Callable[[int], bytes], out: BinaryIO, sha256: str, size: int, what: str,
                  deadline: float = float("inf"), total: float = 0) -> None:
    """Copy from READ to OUT, hashing as it goes; never more than SIZE + 1 bytes are read."""
    digest, got = hashlib.sha256(), 0
    while True:
        _check_deadline(deadline, total, what)
        block = read(min(BLOCK, size + 1 - got))
        if not block:
            break
        got += len(block)
        if got > size:
            raise BuildError(f"{what}: more than the {size} bytes the manifest says; stopped and discarded")
        digest.update(block)
        out.write(block)
    if got != size:
        raise BuildError(f"{what}: {got} bytes arrived, the manifest says {size}; discarded")
    if digest.hexdigest() != sha256:
        raise BuildError(f"{what}: sha256 {digest.hexdigest()} does not match the manifest's {sha256}; discarded")


def _check_deadline(deadline: float, total: float, what: str) -> None:
    if time.monotonic() > deadline:
        raise BuildError(f"{what}: not complete after {total:.0f}s (--timeout); stopped and discarded")
