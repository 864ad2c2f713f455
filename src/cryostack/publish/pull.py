"""Pull another site's published images into a local EFS tree, verifying every byte.

The source is a published manifest (a path or an http(s) URL). SIF files come from beside it,
checked against the manifest's sha256; or, with a registry, the OCI images are pulled by the
manifest's digests (content-addressed, so verified by the engine) and converted to SIF here.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from ..errors import BuildError, InputError
from ..plan import matches
from ..sources import download, sha256_of
from . import manifest as manifests


def read_source_manifest(source: str) -> dict:
    """The manifest at a path or URL, checked."""
    try:
        if _is_url(source):
            with urllib.request.urlopen(source, timeout=60) as response:
                text = response.read().decode()
        else:
            text = Path(source).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--manifest {source}: cannot read it ({getattr(exc, 'reason', exc)})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"--manifest {source}: not JSON ({exc})") from None
    return manifests.check(data, source)


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


def fetch_sif(source: str, relpath: str, dest: Path) -> Path:
    """Copy or download the SIF at `relpath` beside the source manifest into `dest`."""
    if _is_url(source):
        download(urllib.parse.urljoin(source, relpath), dest)
    else:
        origin = Path(source).parent / relpath
        if not origin.is_file():
            raise BuildError(f"{origin}: listed in {source} but missing")
        shutil.copyfile(origin, dest)
    return dest


def pull_entries(entries: Dict[str, dict], tree, obtain: Callable[[str, dict, Path], Tuple[Path, Optional[str]]],
                 report=lambda text: None) -> Tuple[Dict[str, dict], List[str]]:
    """Install each entry's SIF into the tree (obtain() puts it in a scratch directory and says
    which sha256 it must have); returns the local manifest entries and the failures."""
    installed, failures = {}, []
    for key, entry in entries.items():
        relpath = entry["sif"]["path"]
        local = tree.root / relpath
        if local.exists() and sha256_of(local) == entry["sif"]["sha256"]:
            sif, copied = dict(entry["sif"]), 0
        else:
            with tempfile.TemporaryDirectory(dir=tree.root, prefix=".pull-") as scratch:
                try:
                    path, expect = obtain(key, entry, Path(scratch) / "image.sif")
                    sif, copied = tree.install_sif(path, relpath, expect)
                except BuildError as exc:
                    failures.append(f"{key}: {exc}")
                    continue
        installed[key] = dict(entry, sif=sif, history=[])
        report(f"pulled {key:<30} {relpath} ({'verified, ' if copied else 'already here, '}{copied / 1e6:.0f} MB copied)")
    return installed, failures


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))
