"""The published manifest: the contract between the build side and the cluster side.

Plain data in, data out: building entries, merging them into a manifest, and checking a
manifest that another site (or a wrapper) reads. Files are written by publish/efs.py.

A manifest from elsewhere is untrusted input: `check` validates it against the typed model of
schema_version 1 below (every name an identifier, every path confined to images/<key>/, sha256
and size mandatory) and returns plain dicts of the validated values, so what the cluster side
and pull read has the types the model promises. Keys the model does not know are dropped, so
a newer cryostack's additions do not make older readers refuse the manifest.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Dict, List, Literal, Optional, Tuple, Union

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from .. import __version__
from ..errors import InputError
from ..jsonfile import load_json
from ..plan import PlannedImage
from ..values import AbsolutePath, FileName, Identifier, ImageReference, Line, OciDigest, RelativePath, Sha256
from ..yamlfile import Loc, describe, key_path, nearest_line

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
MAX_MANIFEST_BYTES = 64 << 20
MAX_SIF_BYTES = 1 << 44  # 16 TiB: far beyond any image, well inside every integer type

Timestamp = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$")]
# host[:port] of a registry, and a repository path as the OCI distribution spec spells it.
RegistryHost = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}(:[0-9]{1,5})?$")]
Repository = Annotated[str, StringConstraints(
    max_length=255, pattern=r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$")]
InstanceFamily = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,31}$")]
LabelKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")]
ImageId = Annotated[str, StringConstraints(pattern=r"^(sha256:[0-9a-f]{64})?$")]


class Part(BaseModel):
    # strict: JSON has real booleans and numbers; "12" is not a size and true is not a version.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


class Sif(Part):
    path: RelativePath
    sha256: Sha256
    size: int = Field(ge=0, le=MAX_SIF_BYTES)


class Command(Part):
    name: Identifier
    mpi: bool = False


class Smoke(Part):
    command: Line
    expect: Line = ""


class Licence(Part):
    name: Line
    redistributable: bool


class Oci(Part):
    registry: RegistryHost
    repository: Repository
    digest: OciDigest
    references: List[ImageReference] = Field(default_factory=list, max_length=16)
    pushed: bool = False


class Past(Part):
    """An image an entry pointed at before: what `prune` may remove once it is old enough."""

    fingerprint: Sha256
    sif: Sif
    published: Timestamp


class PatchRef(Part):
    file: FileName
    sha256: Sha256


class Checked(Part):
    """What the image's functional check measured when it was verified."""

    name: Identifier
    passed: bool
    summary: Line
    measures: Dict[Identifier, float] = Field(default_factory=dict, max_length=64)


class Entry(Part):
    family: Identifier
    version: Identifier
    variant: Identifier
    targets: List[InstanceFamily] = Field(min_length=1, max_length=64)
    accel: Literal["cpu", "cuda"]
    cuda_arch: Optional[int] = Field(None, ge=0, le=1000)
    toolchain: Optional[Identifier] = None
    commands: List[Command] = Field(max_length=1000)
    prefix: Union[AbsolutePath, Literal[""]]
    smoke: Optional[Smoke] = None
    licence: Optional[Licence] = None
    fingerprint: Sha256
    sif: Sif
    oci: Optional[Oci] = None
    image: Union[ImageReference, Literal[""]] = ""
    image_id: ImageId = ""
    labels: Dict[LabelKey, Line] = Field(default_factory=dict, max_length=256)
    built: Union[Timestamp, Literal[""]] = ""
    published: Timestamp
    history: List[Past] = Field(default_factory=list, max_length=1000)
    patches: List[PatchRef] = Field(default_factory=list, max_length=100)
    check: Optional[Checked] = None


_LABELS = TypeAdapter(Dict[LabelKey, Line])
_FILE_NAME = TypeAdapter(FileName)


class Manifest(Part):
    schema_version: Literal[1]
    generator: Line = ""
    updated: Optional[Timestamp] = None
    images: Dict[str, Entry] = Field(max_length=10_000)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def empty() -> dict:
    return {"schema_version": SCHEMA_VERSION, "generator": f"cryostack {__version__}", "updated": None, "images": {}}


def sif_relpath(image: PlannedImage) -> str:
    """Where an image's SIF lives under the EFS root."""
    t = image.target
    return f"images/{t.family.family}/{t.version}/{t.variant_name}/{image.fingerprint.short}.sif"


def entry_for(image: PlannedImage, built: dict, sif: dict) -> dict:
    """The manifest entry of one image, from the plan and what the build record says of it."""
    t, v = image.target, image.target.variant
    labels = _publishable_labels(built.get("labels") or {})
    return {
        "family": t.family.family,
        "version": t.version,
        "variant": t.variant_name,
        "targets": t.targets,
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
        "patches": [{"file": p.file, "sha256": p.sha256} for p in t.spec.patches],
        "check": {k: (built.get("check") or {}).get(k) for k in ("name", "passed", "summary", "measures")}
        if built.get("check") else None,
    }


def _publishable_labels(labels: Dict[str, str]) -> Dict[str, str]:
    """The image's own labels (the OCI and cryostack namespaces): a base image's labels are not
    ours to publish, and one that is not a printable line would make the manifest unreadable."""
    return {k: v for k, v in labels.items()
            if k.startswith(("io.cryostack.", "org.opencontainers.image.")) and _valid(_LABELS, {k: v})}


def _valid(adapter: TypeAdapter, value: object) -> bool:
    try:
        adapter.validate_python(value, strict=True)
        return True
    except ValidationError:
        return False


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


def load(data: bytes, where: str) -> dict:
    """A manifest's bytes, parsed with bounds and checked: the plain dict of validated values."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise InputError(f"{where}: larger than {MAX_MANIFEST_BYTES >> 20} MiB; not a manifest this cryostack reads")
    document, lines = load_json(data, where)
    return check(document, where, lines)


def check(manifest: object, where: str, lines: Optional[Dict[Loc, int]] = None) -> dict:
    """A manifest read from elsewhere, refused with one clear line if it is not one we can use;
    otherwise its validated values as plain dicts (unknown keys dropped)."""
    lines = lines or {}
    if not isinstance(manifest, dict) or "images" not in manifest:
        raise InputError(f"{where}:1: not a cryostack manifest (no 'images')")
    version = manifest.get("schema_version")
    if type(version) is not int or version != SCHEMA_VERSION:
        line = nearest_line(("schema_version",), lines)
        raise InputError(f"{where}:{line}: schema_version {version!r} is not supported (this cryostack reads {SCHEMA_VERSION})")
    try:
        model = Manifest.model_validate(manifest)
    except ValidationError as exc:
        raise InputError(describe(where, exc, lines, Manifest)) from None
    for key, entry in model.images.items():
        problem, at = _misplaced(key, entry)
        if problem:
            loc = ("images", key) + at
            raise InputError(f"{where}:{nearest_line(loc, lines)}: {key_path(loc)}: {problem}")
    return model.model_dump(mode="json")


def _misplaced(key: str, entry: Entry) -> Tuple[str, Loc]:
    """Why an entry's key or SIF paths do not match the image it describes, and where."""
    own = f"{entry.family}/{entry.version}/{entry.variant}"
    if key != own:
        return f"the key must be family/version/variant of its entry ({own!r})", ()
    folder = f"images/{own}/"
    for at, sif in [(("sif", "path"), entry.sif)] + [(("history", n, "sif", "path"), p.sif) for n, p in enumerate(entry.history)]:
        name = sif.path[len(folder):]
        if not sif.path.startswith(folder) or not name.endswith(".sif") or not _valid(_FILE_NAME, name):
            return f"{sif.path!r} must be a .sif file directly in {folder}", at
    return "", ()


def find(manifest: dict, key: str) -> Optional[dict]:
    return manifest["images"].get(key)
