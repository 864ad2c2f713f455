"""Load and validate the catalogue (images/*.yaml); every error names file, line and key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Tuple

from .errors import InputError
from .schema import Family
from .yamlfile import load_model, shown


@dataclass(frozen=True)
class Catalogue:
    """Every software family, keyed by name, with the file it came from."""

    families: Dict[str, Family]
    files: Dict[str, Path]
    # family -> key path -> line, for problems found after validation (e.g. a patch's checksum)
    lines: Dict[str, Dict[Tuple, int]] = field(default_factory=dict)


def load_catalogue(images_dir: Path) -> Catalogue:
    """Load every images/*.yaml; raise InputError on the first problem found."""
    images_dir = Path(images_dir)
    paths = sorted(images_dir.glob("*.yaml"))
    if not paths:
        raise InputError(f"{images_dir}: no catalogue files (*.yaml) found")
    families: Dict[str, Family] = {}
    files: Dict[str, Path] = {}
    lines: Dict[str, Dict[Tuple, int]] = {}
    for path in paths:
        family, lines_of_family = load_family(path)
        if family.family in families:
            raise InputError(f"{path}:1: family: {family.family!r} is already defined in {files[family.family]}")
        families[family.family] = family
        files[family.family] = path
        lines[family.family] = lines_of_family
    return Catalogue(families, files, lines)


def load_family(path: Path) -> Tuple[Family, Dict[Tuple, int]]:
    """Parse and validate one catalogue file; also the line of every key path in it."""
    family, lines = load_model(path, Family)
    if family.family != path.stem:
        raise InputError(
            f"{shown(path)}:{lines.get(('family',), 1)}: family: {family.family!r} must match the file name {path.stem!r}"
        )
    return family, lines
