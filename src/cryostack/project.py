"""Where a cryostack checkout is: the catalogue, the recipes and the cluster templates it holds."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .errors import InputError


@dataclass(frozen=True)
class Project:
    """A cryostack checkout (or a site's copy of its images/ and recipes/)."""

    root: Path

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def recipes_dir(self) -> Path:
        return self.root / "recipes"

    @property
    def hadolint_config(self) -> Path:
        return self.recipes_dir / "hadolint.yaml"

    @classmethod
    def locate(cls, root: Optional[Path] = None) -> "Project":
        """ROOT, else $CRYOSTACK_ROOT, else the current directory; it must hold images/ and recipes/."""
        root = Path(root or os.environ.get("CRYOSTACK_ROOT") or Path.cwd())
        for needed in ("images", "recipes"):
            if not (root / needed).is_dir():
                raise InputError(f"{root}: no {needed}/ here; run from a cryostack checkout or set CRYOSTACK_ROOT")
        return cls(root)

    def resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else self.root / path
