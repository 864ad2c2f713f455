"""Expand the catalogue into the build matrix, render each entry and fingerprint it."""

from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from . import patches as patching
from . import hardware, recipes
from .catalogue import Catalogue
from .errors import InputError
from .files import write_text_atomically
from .schema import Family, Variant, Version
from .settings import BuildSettings

IMAGE_NAMESPACE = "cryostack"


@dataclass(frozen=True)
class Target:
    """One matrix entry: a family at one version, built as one variant."""

    family: Family
    version: str
    variant_name: str
    catalogue_file: Path

    @property
    def key(self) -> str:
        return f"{self.family.family}/{self.version}/{self.variant_name}"

    @property
    def variant(self) -> Variant:
        return self.family.variants[self.variant_name]

    @property
    def targets(self) -> List[str]:
        """The instance families this entry serves: the catalogue's list, else what the hardware
        table says fits (CUDA: the families whose GPU has this SM; CPU: those with the CPU features)."""
        variant = self.variant
        if variant.targets:
            return list(variant.targets)
        return hardware.shipped().families_for(variant.accel, variant.cuda_arch, variant.cpu_features)

    @property
    def spec(self) -> Version:
        return self.family.versions[self.version]

    @property
    def repository(self) -> str:
        return f"{IMAGE_NAMESPACE}/{self.family.family}"

    @property
    def tag(self) -> str:
        return f"{self.version}-{self.variant_name}"

    @property
    def blocked(self) -> Optional[str]:
        """Why this entry may not be built from the catalogue as it stands, or None."""
        source = self.spec.source
        if source.sha256 is None:
            return f"source {source.file} has no sha256 pin: {source.unpinned}"
        toolkit = self.variant.toolkit
        if toolkit is not None and toolkit.unpinned():
            return "; ".join(f"toolkit installer {installer.file} has no sha256 pin: {installer.unpinned}"
                             for installer in toolkit.unpinned())
        return None


@dataclass(frozen=True)
class Fingerprint:
    """sha256 over everything that decides an image's content."""

    digest: str

    @property
    def short(self) -> str:
        return self.digest[:12]

    @classmethod
    def of(cls, files: Dict[str, str], build_args: Dict[str, object]) -> "Fingerprint":
        hasher = hashlib.sha256()
        for name in sorted(files):
            hasher.update(f"file {name} {len(files[name].encode())}\n".encode())
            hasher.update(files[name].encode())
        hasher.update(json.dumps(build_args, sort_keys=True).encode())
        return cls(hasher.hexdigest())


@dataclass(frozen=True)
class PlannedImage:
    """A target with its rendered files, build arguments and fingerprint."""

    target: Target
    files: Dict[str, str] = field(repr=False)
    build_args: Dict[str, object] = field(repr=False)
    fingerprint: Fingerprint
    contract: recipes.RecipeContract = field(repr=False)
    patches: Tuple[Path, ...] = ()  # checked against their pins, in the order applied

    def summary(self) -> Dict[str, object]:
        """What `invoke matrix --json` prints for this entry (also what CI shards on)."""
        t, v = self.target, self.target.variant
        return {
            "key": t.key,
            "family": t.family.family,
            "version": t.version,
            "variant": t.variant_name,
            "toolchain": v.toolchain,
            "accel": v.accel,
            "cuda_arch": v.cuda_arch,
            "targets": t.targets,
            "image": f"{t.repository}:{t.tag}",
            "fingerprint": self.fingerprint.digest,
            "blocked": t.blocked,
        }


def fingerprint_ref(image: PlannedImage) -> str:
    """The immutable tag: repository:version-variant-<fingerprint>."""
    return f"{image.target.repository}:{image.target.tag}-{image.fingerprint.short}"


def readable_ref(image: PlannedImage) -> str:
    """The moving tag: repository:version-variant, the newest verified build."""
    return f"{image.target.repository}:{image.target.tag}"


def expand(catalogue: Catalogue) -> List[Target]:
    """Every (family, version, variant) the catalogue defines, in a stable order."""
    return [
        Target(family, version, variant, catalogue.files[name])
        for name, family in sorted(catalogue.families.items())
        for version in family.versions
        for variant in family.variants_of(version)
    ]


def select(targets: List[Target], only: Optional[str]) -> List[Target]:
    """Filter by comma-separated selectors: family, family/version, or family/version/variant (globs)."""
    if not only:
        return list(targets)
    patterns = [p.strip() for p in only.split(",") if p.strip()]
    if not patterns:
        raise InputError(f"--only {only!r}: give family[/version[/variant]], e.g. relion/3.1.3/gcc-cpu")
    chosen = []
    for target in targets:
        if any(matches(target.key, pattern) for pattern in patterns):
            chosen.append(target)
    for pattern in patterns:
        if not any(matches(t.key, pattern) for t in targets):
            known = ", ".join(t.key for t in targets)
            raise InputError(f"--only {pattern!r}: matches no matrix entry (entries: {known})")
    return chosen


def matches(key: str, pattern: str) -> bool:
    """Does a family/version/variant key match one selector (its leading parts, shell globs)?"""
    parts = pattern.rstrip("/").split("/")
    if len(parts) > 3:
        return False
    return fnmatch.fnmatchcase("/".join(key.split("/")[: len(parts)]), "/".join(parts))


def build_args(target: Target, settings: BuildSettings) -> Dict[str, object]:
    """The parameters a recipe is rendered with: the catalogue entry plus the site's base images."""
    family, variant, source = target.family, target.variant, target.spec.source
    weights = target.spec.model_weights
    pinned: Dict[str, object] = {"file": source.file, "sha256": source.sha256 or "unpinned"}
    if target.spec.patches:  # only then: the fingerprints of unpatched versions stay as they were
        pinned["patches"] = [{"file": p.file, "sha256": p.sha256} for p in target.spec.patches]
    extra: Dict[str, object] = {}
    if variant.toolkit is not None:  # likewise: only toolkit variants get the key
        extra["toolkit"] = {
            "installers": [{"file": i.file, "sha256": i.sha256 or "unpinned", "components": list(i.components)}
                           for i in variant.toolkit.installers],
            "build_packages": list(variant.toolkit.build_packages),
            "runtime_packages": list(variant.toolkit.runtime_packages),
        }
    if variant.cpu_features:  # likewise: only images that need CPU features get a guard
        names, flags = hardware.cpu_flags(variant.cpu_features)
        extra["cpu_guard"] = {"names": names, "flags": flags}
    return {
        "family": family.family,
        "version": target.version,
        "variant": target.variant_name,
        "toolchain": variant.toolchain,
        "accel": variant.accel,
        "cuda_arch": variant.cuda_arch,
        "cpu_flags": variant.cpu_flags,
        "targets": target.targets,
        "source": pinned,
        "commands": [c.name for c in family.commands],
        "smoke": {"command": family.smoke.command, "expect": family.smoke.expect.replace("{version}", target.version)},
        "model_weights": weights.model_dump() if weights else None,
        "images": settings.images(),
        "licence": {"name": family.licence.name, "redistributable": family.licence.redistributable},
        "description": family.description,
        **extra,
    }


def static_labels(target: Target) -> Dict[str, str]:
    """OCI labels known before the build; fingerprint, commit and build time are added when building."""
    family, variant = target.family, target.variant
    labels = {
        "org.opencontainers.image.title": target.repository,
        "org.opencontainers.image.version": target.version,
        "org.opencontainers.image.description": family.description,
        "org.opencontainers.image.licenses": family.licence.name,
        "io.cryostack.family": family.family,
        "io.cryostack.version": target.version,
        "io.cryostack.variant": target.variant_name,
        "io.cryostack.toolchain": variant.toolchain,
        "io.cryostack.accel": variant.accel,
        "io.cryostack.targets": ",".join(target.targets),
        "io.cryostack.source-sha256": target.spec.source.sha256 or "unpinned",
        "io.cryostack.redistributable": str(family.licence.redistributable).lower(),
    }
    if variant.cuda_arch is not None:
        labels["io.cryostack.cuda-arch"] = str(variant.cuda_arch)
    if variant.cpu_features:
        labels["io.cryostack.cpu-features"] = ",".join(variant.cpu_features)
    if target.spec.patches:
        labels["io.cryostack.patches"] = patching.label(target.spec.patches)
    if variant.toolkit is not None:
        labels["io.cryostack.toolkit"] = ",".join(f"{i.file}@{i.sha256 or 'unpinned'}" for i in variant.toolkit.installers)
    return labels


def plan(
    catalogue: Catalogue, recipes_dir: Path, settings: BuildSettings, only: Optional[str] = None
) -> List[PlannedImage]:
    """Render and fingerprint every selected matrix entry."""
    env = recipes.environment(recipes_dir)
    planned = []
    for target in select(expand(catalogue), only):
        args = build_args(target, settings)
        labels = static_labels(target)
        context = dict(
            args,
            labels=labels,
            key=target.key,
            recipe_template=f"{target.family.recipe_dir}/recipe.j2",
            recipe_dir=target.family.recipe_dir,
            catalogue_file=str(target.catalogue_file),
            cache_namespace=settings.cache_namespace,
        )
        contract = recipes.recipe_contract(env, context)
        if contract.mpi is not None:  # the launcher the cluster side picks for this image
            context["labels"] = dict(labels, **{"io.cryostack.mpi": contract.mpi})
        files = recipes.render_files(env, context)
        patch_files = _checked_patches(target, catalogue, recipes_dir, files["build.sh"])
        # The base images a recipe uses are in its rendered FROM lines; hashing the whole table
        # would rebuild images that do not use the one that changed.
        inputs = {k: v for k, v in args.items() if k != "images"}
        planned.append(PlannedImage(target, files, args, Fingerprint.of(files, inputs), contract, patch_files))
    return planned


def _checked_patches(target: Target, catalogue: Catalogue, recipes_dir: Path, build_script: str) -> Tuple[Path, ...]:
    """The version's patch files, checked against their pins and applied by the rendered build."""
    patches = target.spec.patches
    if not patches:
        return ()
    lines = catalogue.lines.get(target.family.family, {})
    found = patching.checked_patches(patches, recipes_dir, target.family.recipe_dir, target.catalogue_file,
                                     target.version, lines)
    unapplied = patching.unapplied(build_script, patches)
    if unapplied:
        line = lines.get(("versions", target.version, "patches"), 1)
        raise InputError(f"{target.catalogue_file}:{line}: versions[{target.version!r}].patches: "
                         f"recipes/{target.family.recipe_dir}/recipe.j2 does not apply {', '.join(unapplied)} "
                         "(patches are applied by m.unpack_source; a recipe that installs a prebuilt file takes none)")
    return found


def write_rendered(planned: List[PlannedImage], build_dir: Path) -> List[Path]:
    """Write each entry's files to BUILD_DIR/<family>/<version>/<variant>/ (only files whose text changed)."""
    written = []
    for image in planned:
        out = Path(build_dir, image.target.key)
        out.mkdir(parents=True, exist_ok=True)
        contents = dict(image.files)
        contents["target.json"] = json.dumps(image.summary(), indent=2, sort_keys=True) + "\n"
        for name, text in contents.items():
            path = out / name
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                write_text_atomically(path, text)
        written.append(out)
    return written
