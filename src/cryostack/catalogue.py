"""Load and validate the catalogue (images/*.yaml); every error names file, line and key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict

from .errors import InputError
from .schema import Family
from .yamlfile import load_model, shown


@dataclass(frozen=True)
class Catalogue:
    """Every software family, keyed by name, with the file it came from."""

    families: Dict[str, Family]
    files: Dict[str, Path]


def load_catalogue(images_dir: Path) -> Catalogue:
    """Load every images/*.yaml; raise InputError on the first problem found."""
    images_dir = Path(images_dir)
    paths = sorted(images_dir.glob("*.yaml"))
    if not paths:
        raise InputError(f"{images_dir}: no catalogue files (*.yaml) found")
    families: Dict[str, Family] = {}
    files: Dict[str, Path] = {}
    for path in paths:
        family = load_family(path)
        if family.family in families:
            raise InputError(f"{path}:1: family: {family.family!r} is already defined in {files[family.family]}")
        families[family.family] = family
        files[family.family] = path
    return Catalogue(families, files)


def load_family(path: Path) -> Family:
    """Parse and validate one catalogue file."""
    family, lines = load_model(path, Family)
    if family.family != path.stem:
        raise InputError(
            f"{shown(path)}:{lines.get(('family',), 1)}: family: {family.family!r} must match the file name {path.stem!r}"
        )
    return family
