"""The catalogue's data model: one `Family` per images/*.yaml file.

Every model forbids unknown keys, so a typo in the catalogue is an error, not a silent default.
"""

from __future__ import annotations

import re
from typing import Dict, List, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .checks.spec import CheckSpec

SHA256 = re.compile(r"^[0-9a-f]{64}$")
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
# Streaming multiprocessor versions nvcc accepts as sm_XX; T4 is 75, A10G is 86.
KNOWN_CUDA_ARCHS = (60, 61, 70, 75, 80, 86, 89, 90)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Licence(Strict):
    name: str
    redistributable: bool = Field(description="may its images go to a public registry")
    note: str = ""


class Command(Strict):
    name: str
    mpi: bool = False

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z0-9_.+-]+$", value):
            raise ValueError(f"command name {value!r} must be a plain file name")
        return value


class Smoke(Strict):
    command: str
    expect: str = Field("", description="regular expression the output must match; {version} is replaced")


class Variant(Strict):
    toolchain: Literal["gcc", "oneapi", "prebuilt"]
    accel: Literal["cpu", "cuda"]
    cuda_arch: Optional[int] = None
    cpu_flags: str = ""
    targets: List[str] = Field(min_length=1, description="instance families this variant serves")
    description: str = ""

    @field_validator("targets")
    @classmethod
    def _instance_families(cls, value: List[str]) -> List[str]:
        for family in value:
            if not re.match(r"^[a-z][a-z0-9-]*$", family):
                raise ValueError(f"target {family!r} is not an instance family such as g5 or c6i")
        return value

    @model_validator(mode="after")
    def _arch_matches_accel(self) -> "Variant":
        if self.accel == "cuda" and self.toolchain != "prebuilt" and self.cuda_arch is None:
            raise ValueError("a compiled cuda variant needs cuda_arch (75 for T4/g4dn, 86 for A10G/g5)")
        if self.accel == "cpu" and self.cuda_arch is not None:
            raise ValueError("cuda_arch is only for accel: cuda")
        if self.cuda_arch is not None and self.cuda_arch not in KNOWN_CUDA_ARCHS:
            raise ValueError(f"cuda_arch {self.cuda_arch} is not one of {', '.join(map(str, KNOWN_CUDA_ARCHS))}")
        return self


class DebianSource(Strict):
    """An upstream .orig tarball from Debian's source archive (apt-get source)."""

    package: str
    suite: str


class PypiSource(Strict):
    """A source distribution from the Python package index pip is configured with."""

    name: str
    version: str


class Source(Strict):
    """Where a version's source (or installer) comes from and the sha256 that pins it."""

    file: str = Field(description="file name in the source mirror")
    url: Optional[str] = None
    debian: Optional[DebianSource] = None
    pypi: Optional[PypiSource] = None
    supplied_by_maintainer: bool = False
    sha256: Optional[str] = None
    unpinned: Optional[str] = Field(None, description="why no sha256 can be cited yet; builds refuse it")

    @field_validator("file")
    @classmethod
    def _plain_file(cls, value: str) -> str:
        if "/" in value or value in ("", ".", ".."):
            raise ValueError(f"file {value!r} must be a plain file name")
        return value

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not SHA256.match(value):
            raise ValueError(f"sha256 {value!r} is not 64 lower-case hex digits")
        return value

    @model_validator(mode="after")
    def _one_origin_one_pin(self) -> "Source":
        origins = [o for o in (self.url, self.debian, self.pypi, self.supplied_by_maintainer or None) if o]
        if len(origins) != 1:
            raise ValueError("give exactly one of url, debian, pypi, supplied_by_maintainer: true")
        if (self.sha256 is None) == (self.unpinned is None):
            raise ValueError("missing sha256 (or, where none can be cited, unpinned: <reason>)")
        return self


class ModelWeights(Strict):
    """How RELION 5's model weights reach the image (never fetched from a hub at build time)."""

    strategy: Literal["site", "stage"]
    torch_home: str
    note: str = ""


class Patch(Strict):
    """A patch to the unpacked source (recipes/<recipe>/patches/<file>, applied with patch -p1)."""

    file: str = Field(description="file name under the recipe's patches/ folder")
    sha256: str

    @field_validator("file")
    @classmethod
    def _patch_name(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$", value):
            raise ValueError(f"patch {value!r} must be a plain file name (letters, digits, . _ + -)")
        return value

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not SHA256.match(value):
            raise ValueError(f"sha256 {value!r} is not 64 lower-case hex digits")
        return value


class Version(Strict):
    source: Source
    patches: List[Patch] = Field([], description="applied in this order after unpacking the source")
    variants: Optional[List[str]] = Field(None, description="subset of the family's variants; default all")
    model_weights: Optional[ModelWeights] = None
    check: Optional[CheckSpec] = Field(None, description="replaces the family's check for this version")
    note: str = ""

    @field_validator("patches")
    @classmethod
    def _each_once(cls, value: List[Patch]) -> List[Patch]:
        names = [patch.file for patch in value]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} listed more than once")
        return value


class Family(Strict):
    family: str
    description: str
    recipe: Optional[str] = Field(None, description="folder under recipes/; default the family name")
    licence: Licence
    commands: List[Command] = Field(min_length=1)
    smoke: Smoke
    check: Optional[CheckSpec] = Field(None, description="the computation with a known answer that verify runs")
    variants: Dict[str, Variant] = Field(min_length=1)
    versions: Dict[str, Version] = Field(min_length=1)

    @field_validator("commands", mode="before")
    @classmethod
    def _bare_names(cls, value):
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("family")
    @classmethod
    def _family_name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(f"family {value!r} must be lower-case letters, digits, '.', '_' or '-'")
        return value

    @model_validator(mode="after")
    def _names_and_references(self) -> "Family":
        for name in list(self.variants) + list(self.versions):
            if not NAME.match(name):
                raise ValueError(f"name {name!r} must be lower-case letters, digits, '.', '_' or '-'")
        for version_name, version in self.versions.items():
            for variant in version.variants or []:
                if variant not in self.variants:
                    raise ValueError(
                        f"versions.{version_name}.variants: unknown variant {variant!r} "
                        f"(defined: {', '.join(self.variants)})"
                    )
        return self

    @property
    def recipe_dir(self) -> str:
        return self.recipe or self.family

    def check_of(self, version: str) -> Optional[CheckSpec]:
        """The functional check for one version: its own, else the family's."""
        return self.versions[version].check or self.check

    def variants_of(self, version: str) -> List[str]:
        """The variant names built for one version, in catalogue order."""
        chosen = self.versions[version].variants
        return [name for name in self.variants if chosen is None or name in chosen]
