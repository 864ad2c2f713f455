"""Build settings a site may change: base images and where sources and outputs live."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple

from .errors import InputError

# The local base image `invoke base-image` makes with debootstrap; no registry is needed.
LOCAL_DEBIAN = "local/debian:bookworm"

# Settings that no longer exist, and what replaced them: a site that still sets one is told, not ignored.
REMOVED = {
    name: "the oneAPI toolkit is Intel's offline installers, pinned by sha256 in the catalogue "
          "(images/relion.yaml, variant oneapi-cpu-avx512, toolkit:), built on the base image"
    for name in ("oneapi_image", "oneapi_runtime_image")
}


@dataclass(frozen=True)
class BuildSettings:
    """Images the recipes start FROM, and the directories cryostack reads and writes."""

    base_image: str = LOCAL_DEBIAN
    python_image: str = "python:3.8-slim-bookworm"
    build_dir: Path = Path("build")
    source_mirror: Path = Path(".cache/sources")
    # Read-only directories searched for sources before the mirror (colon-separated in the environment).
    source_path: Tuple[Path, ...] = ()
    # Prefix of the BuildKit cache mounts' ids: a separate namespace starts with empty caches (bench).
    cache_namespace: str = "cryostack"

    def images(self) -> Dict[str, str]:
        """The base image references, by the names recipes use (images.base, images.python)."""
        return {
            "base": self.base_image,
            "python": self.python_image,
        }

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None, **overrides: Optional[str]) -> "BuildSettings":
        """Defaults, then CRYOSTACK_<FIELD> environment variables, then explicit overrides."""
        env = os.environ if env is None else env
        for name, now in REMOVED.items():
            if env.get(f"CRYOSTACK_{name.upper()}"):
                raise InputError(f"setting {name} (CRYOSTACK_{name.upper()}) was removed: {now}")
        values = {}
        for field in fields(cls):
            value = overrides.get(field.name) or env.get(f"CRYOSTACK_{field.name.upper()}")
            if value is None:
                continue
            if not str(value).strip():
                raise InputError(f"setting {field.name}: empty value")
            if field.name == "source_path":
                values[field.name] = tuple(Path(p) for p in str(value).split(os.pathsep) if p)
            else:
                values[field.name] = Path(value) if field.type in ("Path", Path) else str(value)
        namespace = values.get("cache_namespace", cls.cache_namespace)
        if not re.match(r"^[a-z0-9][a-z0-9-]{0,40}$", str(namespace)):
            raise InputError(f"setting cache_namespace {namespace!r}: give lower-case letters, digits and '-'")
        return replace(cls(), **values)
