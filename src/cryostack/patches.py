"""Patches to a version's source: files under recipes/<recipe>/patches/, pinned by sha256 in the
catalogue, applied in order after unpacking (macro unpack_source), part of the fingerprint.

A patch whose bytes do not match its pin is refused where the catalogue names it, so what is
built is always what was reviewed, and editing a patch means re-pinning it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

from .errors import InputError
from .schema import Patch
from .sources import sha256_of
from .yamlfile import shown

# Where build.sh finds the patches in the build stage (staged next to the source).
STAGED = "/opt/cryostack/sources/patches"


def patch_dir(recipes_dir: Path, recipe: str) -> Path:
    return Path(recipes_dir) / recipe / "patches"


def checked_patches(patches: List[Patch], recipes_dir: Path, recipe: str, catalogue_file: Path, version: str,
                    lines: Dict[tuple, int]) -> Tuple[Path, ...]:
    """The patch files of one version, each checked against its sha256; InputError naming the
    catalogue file and line of the first that is missing or differs."""
    found = []
    for index, patch in enumerate(patches):
        key = ("versions", version, "patches", index)
        line = lines.get(key + ("sha256",)) or lines.get(key) or lines.get(("versions", version), 1)
        where = f"{shown(Path(catalogue_file))}:{line}: versions[{version!r}].patches[{index}]"
        path = patch_dir(recipes_dir, recipe) / patch.file
        if not path.is_file():
            raise InputError(f"{where}: no patch file {shown(path)} (patches live in recipes/{recipe}/patches/)")
        actual = sha256_of(path)
        if actual != patch.sha256:
            raise InputError(f"{where}.sha256: {shown(path)} has sha256 {actual}, the catalogue pins {patch.sha256}; "
                             "refusing it (review the patch, then pin its new checksum)")
        found.append(path)
    return tuple(found)


def unapplied(build_script: str, patches: List[Patch]) -> List[str]:
    """The patches a rendered build script does not apply (a recipe that does not unpack its
    source with m.unpack_source cannot take patches)."""
    return [p.file for p in patches if f"{STAGED}/{p.file}" not in build_script]


def label(patches: List[Patch]) -> str:
    """The io.cryostack.patches label: file@sha256:<hex>, comma-separated, in the order applied."""
    return ",".join(f"{p.file}@sha256:{p.sha256}" for p in patches)
