"""The catalogue's data model: one `Family` per images/*.yaml file.

Every model forbids unknown keys, so a typo in the catalogue is an error, not a silent default.
Every field has the precise type of values.py that says what it may hold: names are identifiers
(safe as paths and shell words), text is one printable line, paths and URLs are checked; the
templates still escape each value for their own language.
"""

from __future__ import annotations

import re
import warnings
from typing import Annotated, Dict, List, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from .values import AbsolutePath, FileName, HttpsUrl, Identifier, Line, Sha256, Text

from .checks.spec import CheckSpec

SHA256 = re.compile(r"^[0-9a-f]{64}$")
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
# Streaming multiprocessor versions nvcc accepts as sm_XX; T4 is 75, A10G is 86.
KNOWN_CUDA_ARCHS = (60, 61, 70, 75, 80, 86, 89, 90)


def _compiler_flags(value: str) -> str:
    if value and not re.fullmatch(r"-[A-Za-z0-9_=.,+:/-]+( -[A-Za-z0-9_=.,+:/-]+)*", value):
        raise ValueError("must be compiler options such as -O3 -march=x86-64-v2 (each starting with '-', "
                         "separated by single spaces; letters, digits and _ = . , + : / -)")
    return value


def _smoke_command(value: str) -> str:
    # It becomes a line of its own in the definition file's %test section, where a first word
    # starting with '%' would open a new section.
    if not re.match(r"^[A-Za-z0-9_./]", value):
        raise ValueError("must start with the name or path of the command to run")
    return value


def _no_backslash(value: str) -> str:
    # Dockerfile labels escape it correctly (\\), but hadolint's parser then misreads the closing
    # quote and `invoke lint` fails with DL1000; no description or licence name needs one.
    if "\\" in value:
        raise ValueError("must not contain a backslash")
    return value


# Text that becomes an image label (Dockerfile LABEL, definition-file %labels).
LabelText = Annotated[Line, AfterValidator(_no_backslash)]
# Compiler options for one variant: words, each an option, nothing a shell would expand.
CompilerFlags = Annotated[str, StringConstraints(max_length=500), AfterValidator(_compiler_flags)]
# The smoke test: shell code the maintainer writes (it runs inside the image), on one line.
SmokeCommand = Annotated[Line, AfterValidator(_smoke_command)]
# An instance family such as g5 or c6i.
InstanceFamily = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,31}$")]
# A Debian source package name (Debian policy 5.6.1).
DebianPackage = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.+-]{1,99}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Licence(Strict):
    name: LabelText
    redistributable: bool = Field(description="may its images go to a public registry")
    note: Line = Field("", description="shown when a push is refused")


class Command(Strict):
    name: Identifier = Field(description="a wrapper of this name is made on the cluster")
    mpi: bool = False


class Smoke(Strict):
    command: SmokeCommand
    expect: Line = Field("", description="regular expression the output must match; {version} is replaced")

    @field_validator("expect")
    @classmethod
    def _regular_expression(cls, value: str) -> str:
        try:
            with warnings.catch_warnings():  # FutureWarnings about odd sets are not the user's problem here
                warnings.simplefilter("ignore")
                re.compile(value.replace("{version}", "1.0"))
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return value


class DebianSource(Strict):
    """An upstream .orig tarball from Debian's source archive (apt-get source)."""

    package: DebianPackage
    suite: Identifier


class PypiSource(Strict):
    """A source distribution from the Python package index pip is configured with."""

    name: Identifier
    version: Identifier


class Source(Strict):
    """Where a version's source (or installer) comes from and the sha256 that pins it."""

    file: FileName = Field(description="file name in the source mirror")
    url: Optional[HttpsUrl] = None
    debian: Optional[DebianSource] = None
    pypi: Optional[PypiSource] = None
    supplied_by_maintainer: bool = False
    sha256: Optional[str] = None
    unpinned: Optional[Line] = Field(None, description="why no sha256 can be cited yet; builds refuse it")

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not SHA256.fullmatch(value):
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


# A component id of Intel's offline installer (--components), such as intel.oneapi.lin.mkl.devel.
InstallerComponent = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$")]


class Installer(Source):
    """One offline installer of a toolkit, run as `<file> -a --silent --eula accept --install-dir DIR`."""

    components: List[InstallerComponent] = Field(
        [], max_length=100, description="--components (default: everything the installer holds)")

    @model_validator(mode="after")
    def _from_the_site(self) -> "Installer":
        if self.debian or self.pypi:
            raise ValueError("a toolkit installer comes from the site (supplied_by_maintainer: true) or an https "
                             "url, not from debian or pypi")
        return self


class Toolkit(Strict):
    """A compiler toolkit the site supplies (Intel oneAPI): its offline installers, each pinned by sha256
    like any source, run in order into one directory in the build stage; the runtime stage carries only
    what the built programs load from it."""

    installers: List[Installer] = Field(min_length=1, max_length=4)
    build_packages: List[DebianPackage] = Field(
        [], max_length=100, description="Debian packages the toolkit needs in the build stage beside the recipe's")
    runtime_packages: List[DebianPackage] = Field(
        [], max_length=100, description="Debian packages its runtime part needs that it does not ship itself")
    note: Text = ""

    def unpinned(self) -> List[Installer]:
        """The installers that have no sha256 yet (a build refuses the toolkit until none is left)."""
        return [installer for installer in self.installers if installer.sha256 is None]


class Variant(Strict):
    toolchain: Literal["gcc", "oneapi", "prebuilt"]
    accel: Literal["cpu", "cuda"]
    cuda_arch: Optional[int] = None
    cpu_flags: CompilerFlags = ""
    cpu_features: List[Literal["avx512"]] = Field(default_factory=list, description="CPU features the binaries need")
    targets: Optional[List[InstanceFamily]] = Field(
        None, min_length=1, max_length=64,
        description="instance families this variant serves; default: derived from the hardware table "
                    "(CUDA variants the families of their SM, CPU variants every family with their CPU features)")
    toolkit: Optional[Toolkit] = Field(None, description="toolchain oneapi: the site's toolkit installer")
    description: Line = ""

    @model_validator(mode="after")
    def _toolkit_matches_toolchain(self) -> "Variant":
        if self.toolchain == "oneapi" and self.toolkit is None:
            raise ValueError("toolchain oneapi needs toolkit: {installers: [{supplied_by_maintainer: true, file: "
                             "l_HPCKit_p_<version>_offline.sh, sha256: ...}]} (Intel's offline installers, staged by the site)")
        if self.toolchain != "oneapi" and self.toolkit is not None:
            raise ValueError("toolkit is only for toolchain: oneapi")
        return self

    @model_validator(mode="after")
    def _arch_matches_accel(self) -> "Variant":
        if self.accel == "cuda" and self.toolchain != "prebuilt" and self.cuda_arch is None:
            raise ValueError("a compiled cuda variant needs cuda_arch (75 for T4/g4dn, 86 for A10G/g5)")
        if self.accel == "cpu" and self.cuda_arch is not None:
            raise ValueError("cuda_arch is only for accel: cuda")
        if self.cuda_arch is not None and self.cuda_arch not in KNOWN_CUDA_ARCHS:
            raise ValueError(f"cuda_arch {self.cuda_arch} is not one of {', '.join(map(str, KNOWN_CUDA_ARCHS))}")
        return self


class ModelWeights(Strict):
    """How RELION 5's model weights reach the image (never fetched from a hub at build time)."""

    strategy: Literal["site", "stage"]
    torch_home: AbsolutePath
    note: Text = ""


class Patch(Strict):
    """A patch to the unpacked source (recipes/<recipe>/patches/<file>, applied with patch -p1)."""

    file: FileName = Field(description="file name under the recipe's patches/ folder")
    sha256: Sha256


class Version(Strict):
    source: Source
    patches: List[Patch] = Field([], description="applied in this order after unpacking the source")
    variants: Optional[List[Identifier]] = Field(None, description="subset of the family's variants; default all")
    model_weights: Optional[ModelWeights] = None
    check: Optional[CheckSpec] = Field(None, description="replaces the family's check for this version")
    note: Text = ""

    @field_validator("patches")
    @classmethod
    def _each_once(cls, value: List[Patch]) -> List[Patch]:
        names = [patch.file for patch in value]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} listed more than once")
        return value


class Family(Strict):
    family: Identifier
    description: LabelText
    recipe: Optional[Identifier] = Field(None, description="folder under recipes/; default the family name")
    licence: Licence
    commands: List[Command] = Field(min_length=1, max_length=1000)
    smoke: Smoke
    check: Optional[CheckSpec] = Field(None, description="the computation with a known answer that verify runs")
    variants: Dict[Identifier, Variant] = Field(min_length=1, max_length=100)
    versions: Dict[Identifier, Version] = Field(min_length=1, max_length=1000)

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
        names = [command.name for command in self.commands]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"commands: {', '.join(twice)} listed more than once (each becomes one wrapper)")
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
