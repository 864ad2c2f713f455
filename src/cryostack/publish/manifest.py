"""The published manifest: the contract between the build side and the cluster side.

Plain data in, data out: building entries, merging them into a manifest, and checking a
manifest that another site (or a wrapper) reads. Files are written by publish/efs.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Dict, List, Optional

from .. import __version__
from ..errors import InputError
from ..plan import PlannedImage

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
ENTRY_KEYS = {"family", "version", "variant", "targets", "accel", "commands", "fingerprint", "sif", "prefix"}


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def empty() -> dict:
    return {"schema_version": SCHEMA_VERSION, "generator": f"cryostack {__version__}", "updated": None, "images": {}}


def sif_relpath(image: PlannedImage) -> str:
    """Where an image's SIF lives under the EFS root."""
    t = image.target
    return f"images/{t.family.family}/{t.version}/{t.variant_name}/{image.fingerprint.short}.sif"


def entry_for(image: PlannedImage, built: dict, sif: dict) -> dict:
    """The manifest entry of one image, from the plan and what build/report.json recorded."""
    t, v = image.target, image.target.variant
    labels = built.get("labels") or {}
    return {
        "family": t.family.family,
        "version": t.version,
        "variant": t.variant_name,
        "targets": list(v.targets),
        "accel": v.accel,
        "cuda_arch": v.cuda_arch,
        "toolchain": v.toolchain,
        "commands": [{"name": c.name, "mpi": c.mpi} for c in t.family.commands],
        "prefix": image.contract.prefix,
        "smoke": dict(image.build_args["smoke"]),
        "licence": {"name": t.family.licence.name, "redistributable": t.family.licence.redistributable},
        "fingerprint": image.fingerprint.digest,
        "sif": sif,
        "oci": built.get("oci"),
        "image": built.get("image", ""),
        "image_id": built.get("image_id", ""),
        "labels": labels,
        "built": labels.get("org.opencontainers.image.created", ""),
        "published": now(),
    }


def merge(manifest: dict, entries: Dict[str, dict]) -> dict:
    """The manifest with `entries` as the current images; replaced fingerprints go to history."""
    result = dict(manifest, generator=f"cryostack {__version__}", updated=now())
    images = dict(result.get("images", {}))
    for key, entry in entries.items():
        old = images.get(key)
        history: List[dict] = list(old.get("history", [])) if old else []
        if old and old["fingerprint"] != entry["fingerprint"]:
            history.insert(0, {k: old[k] for k in ("fingerprint", "sif", "published")})
        elif old:  # same image published again: keep its first publication time
            entry = dict(entry, published=old["published"])
        images[key] = dict(entry, history=history)
    result["images"] = dict(sorted(images.items()))
    return result


def check(manifest: object, where: str) -> dict:
    """A manifest read from elsewhere, refused with a clear message if it is not one we can use."""
    if not isinstance(manifest, dict) or "images" not in manifest:
        raise InputError(f"{where}: not a cryostack manifest (no 'images')")
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise InputError(f"{where}: schema_version {version!r} is not supported (this cryostack reads {SCHEMA_VERSION})")
    for key, entry in manifest["images"].items():
        missing = sorted(ENTRY_KEYS - set(entry))
        if missing:
            raise InputError(f"{where}: images[{key!r}]: missing {', '.join(missing)}")
    return manifest


def find(manifest: dict, key: str) -> Optional[dict]:
    return manifest["images"].get(key)
