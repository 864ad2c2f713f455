"""Pull another site's published images into a local EFS tree, verifying every byte.

The source is a published manifest (a path or an http(s) URL): untrusted input, validated by
the manifest model before anything is fetched. SIF files come from beside it (same origin,
unless --allow-origin names more), streamed into a staging directory of the tree with their
size and sha256 enforced while they arrive; or, with a registry, the OCI images are pulled by
the manifest's digests (content-addressed, so verified by the engine) and converted to SIF
here. Only then is the tree locked, for the switch: files renamed into place, current.sif
links, manifest.
"""

from __future__ import annotations

import http.client
import os
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, FrozenSet, Iterable, List, Optional, Tuple

from ..errors import BuildError, InputError
from ..plan import matches
from ..sources import sha256_of
from . import manifest as manifests
from .efs import EfsTree, open_below
from .fetch import CONNECT_TIMEOUT, TOTAL_TIMEOUT, copy_verified, download_verified, origin, read_limited

# obtain(key, entry, dest) writes the entry's SIF to DEST and returns its {path, sha256, size}.
Obtain = Callable[[str, dict, Path], dict]


@dataclass(frozen=True)
class Remote:
    """Where a pull reads from: the manifest's path or URL, the origins SIF downloads and
    redirects may reach (the manifest's own, plus --allow-origin), and the time limits."""

    source: str
    extra_origins: FrozenSet[str] = field(default_factory=frozenset)
    connect_timeout: float = CONNECT_TIMEOUT
    timeout: float = TOTAL_TIMEOUT

    @classmethod
    def of(cls, source: str, allow_origins: Iterable[str] = (), timeout: object = None) -> "Remote":
        """A Remote from the command line's options; InputError naming the option at fault."""
        origins = set()
        for text in allow_origins:
            try:
                origins.add(origin(text))
            except InputError:
                raise InputError(f"--allow-origin {text!r}: give scheme://host[:port], e.g. https://cdn.example.org") from None
        seconds = TOTAL_TIMEOUT
        if timeout is not None:
            try:
                seconds = float(timeout)
            except ValueError:
                seconds = -1
            if not 0 < seconds <= 7 * 86400:
                raise InputError(f"--timeout {timeout!r}: give the seconds one download may take (more than 0)")
        return cls(source, frozenset(origins), timeout=seconds)

    @property
    def is_url(self) -> bool:
        return self.source.startswith(("http://", "https://"))

    @property
    def origins(self) -> FrozenSet[str]:
        return self.extra_origins | {origin(self.source)}


def read_source_manifest(remote: Remote) -> dict:
    """The manifest at a path or URL, parsed with bounds and checked against the model."""
    limit = manifests.MAX_MANIFEST_BYTES
    try:
        if remote.is_url:
            data = read_limited(remote.source, limit, remote.origins, remote.connect_timeout, remote.timeout)
        else:
            with open(remote.source, "rb") as handle:
                data = handle.read(limit + 1)
    except (OSError, http.client.HTTPException, BuildError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        raise InputError(f"--manifest {remote.source}: cannot read it ({reason})") from None
    return manifests.load(data, remote.source)


def select_entries(manifest: dict, only: Optional[str], source: str) -> Dict[str, dict]:
    """Entries whose key matches any comma-separated glob; all of them without `only`."""
    if not only:
        return dict(manifest["images"])
    chosen = {}
    for pattern in (p.strip() for p in only.split(",") if p.strip()):
        hits = {k: v for k, v in manifest["images"].items() if matches(k, pattern)}
        if not hits:
            available = ", ".join(manifest["images"]) or "none"
            raise InputError(f"--only {pattern!r}: not in {source} (it has: {available})")
        chosen.update(hits)
    return chosen


def fetch_sif(remote: Remote, sif: dict, dest: Path) -> dict:
    """The SIF a manifest entry names, from beside the manifest, written to DEST and checked
    against the entry's size and sha256 while it streams; returns the entry's sif record."""
    relpath, sha256, size = sif["path"], sif["sha256"], sif["size"]
    with open(dest, "xb") as out:
        if remote.is_url:
            # relpath is confined to images/<key>/<name>.sif: joined, it stays on the manifest's origin.
            download_verified(urllib.parse.urljoin(remote.source, relpath), out, sha256, size, remote.origins,
                              remote.connect_timeout, remote.timeout)
        else:
            folder = Path(remote.source).parent
            try:
                handle = open_below(folder, relpath)
            except FileNotFoundError:
                raise BuildError(f"{folder / relpath}: listed in {remote.source} but missing") from None
            with os.fdopen(handle, "rb") as source:
                copy_verified(source.read, out, sha256, size, str(folder / relpath))
    return dict(sif)


@dataclass
class Staged:
    """One entry ready for the switch: its SIF in the staging directory, or already in the tree."""

    key: str
    entry: dict
    sif: dict
    file: Optional[Path] = None

    @property
    def copied(self) -> int:
        return self.sif["size"] if self.file else 0


def stage_entries(entries: Dict[str, dict], tree: EfsTree, obtain: Obtain, staging: Path,
                  ) -> Tuple[List[Staged], List[str]]:
    """Obtain each entry's SIF into STAGING unless the tree already holds it (no lock needed:
    nothing in the tree changes). Returns what is ready and the failures."""
    ready, failures = [], []
    for number, (key, entry) in enumerate(entries.items()):
        if tree.holds(entry["sif"]["path"], entry["sif"]["sha256"]):
            ready.append(Staged(key, entry, dict(entry["sif"])))
            continue
        dest = staging / f"{number}.sif"
        try:
            ready.append(Staged(key, entry, obtain(key, entry, dest), dest))
        except BuildError as exc:
            dest.unlink(missing_ok=True)
            failures.append(f"{key}: {exc}")
    return ready, failures


def install_staged(ready: List[Staged], tree: EfsTree, report=lambda text: None) -> Tuple[Dict[str, dict], List[str]]:
    """Under the tree's lock: rename each staged SIF into place; returns the local manifest
    entries and the failures."""
    installed, failures = {}, []
    for item in ready:
        relpath = item.sif["path"]
        try:
            if item.file is not None:
                tree.install_staged(item.file, relpath)
            elif tree.size_of(relpath) != item.sif["size"]:
                raise BuildError(f"{relpath} changed in the tree while pulling; run pull again")
        except BuildError as exc:
            failures.append(f"{item.key}: {exc}")
            continue
        installed[item.key] = dict(item.entry, sif=item.sif, history=[])
        state = "verified, " if item.file else "already here, "
        report(f"pulled {item.key:<30} {relpath} ({state}{item.copied / 1e6:.0f} MB copied)")
    return installed, failures


def registry_obtainer(registry, root: Path) -> Obtain:
    """obtain() for registry pulls: the registry is asked for the digest first (over its API,
    credentials never following a redirect to another origin); then the engine pulls the image
    by digest and Apptainer converts it to a SIF on this machine."""
    from ..engine.apptainer import Apptainer
    from ..engine.base import connect
    from .registry import remote_digest

    auth = {"username": registry.username, "password": registry.password or ""} if registry.username else None
    tools: Dict[str, object] = {}

    def obtain(key: str, entry: dict, dest: Path) -> dict:
        oci = entry.get("oci")
        if not oci:
            raise BuildError("the manifest has no OCI digest for it (was it pushed?)")
        if remote_digest(registry, oci["repository"], oci["digest"]) != oci["digest"]:
            raise BuildError(f"registry {registry.host} has no {oci['repository']}@{oci['digest']}")
        if not tools:  # the engine and the Apptainer image only once an image is really to be made
            engine = connect()
            apptainer = Apptainer(engine, root / "recipes" / "tools" / "apptainer.Dockerfile", dest.parent / "apptainer.log")
            apptainer.ensure()
            tools.update(engine=engine, apptainer=apptainer)
        repository = f"{registry.host}/{oci['repository']}"
        tools["engine"].pull_by_digest(repository, oci["digest"], auth, registry.scrub)
        tools["apptainer"].build_sif(f"{repository}@{oci['digest']}", dest)
        # A SIF made here: the local manifest records its own sha256 and size.
        return {"path": entry["sif"]["path"], "sha256": sha256_of(dest), "size": dest.stat().st_size}

    return obtain
