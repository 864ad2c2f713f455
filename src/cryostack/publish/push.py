"""Push built images to a registry and confirm what the registry holds."""

from __future__ import annotations

from typing import Dict, List, Optional, TextIO, Tuple

from ..engine.base import Engine
from ..errors import BuildError, CryostackError, InputError
from ..plan import PlannedImage, fingerprint_ref
from .registry import Registry, remote_digest


def licence_refusals(images: List[PlannedImage], registry: Registry) -> List[str]:
    """Images whose licence forbids a public registry, each with the reason."""
    if not registry.public:
        return []
    return [f"{i.target.key}: {i.target.family.licence.name} does not allow redistribution "
            f"({i.target.family.licence.note or 'licence flag redistributable: false'})"
            for i in images if not i.target.family.licence.redistributable]


def push_image(engine: Engine, registry: Registry, image: PlannedImage, log: TextIO) -> Dict[str, object]:
    """Push one image's fingerprint tag (and moving tag, where tags are mutable); returns what
    goes into the manifest's `oci` field. A fingerprint tag already in the registry is not pushed again."""
    repository = image.target.repository
    auth = {"username": registry.username, "password": registry.password or ""} if registry.username else None
    fp_tag = f"{image.target.tag}-{image.fingerprint.short}"
    remote = f"{registry.host}/{repository}"
    digest = remote_digest(registry, repository, fp_tag)
    pushed = digest is None
    if pushed:
        digest = engine.push(fingerprint_ref(image), f"{remote}:{fp_tag}", auth, log, registry.scrub)
        confirmed = remote_digest(registry, repository, fp_tag)
        if confirmed != digest:
            raise BuildError(f"{remote}:{fp_tag}: the registry holds {confirmed}, the push reported {digest}")
    references = [f"{remote}:{fp_tag}"]
    if not registry.immutable_tags:
        moving = engine.push(fingerprint_ref(image), f"{remote}:{image.target.tag}", auth, log, registry.scrub)
        if moving != digest:
            raise BuildError(f"{remote}:{image.target.tag}: pushed as {moving}, expected {digest}")
        references.append(f"{remote}:{image.target.tag}")
    return {"registry": registry.host, "repository": repository, "digest": digest,
            "references": references, "pushed": pushed}


def push_all(engine: Engine, registry: Registry, images: List[PlannedImage], log: TextIO,
             before_each=lambda image: None) -> Tuple[Dict[str, dict], List[str]]:
    """Push each image; one image's failure does not stop the others. (results by key, failures)."""
    results, failures = {}, []
    for image in images:
        try:
            before_each(image)
            results[image.target.key] = push_image(engine, registry, image, log)
        except CryostackError as exc:
            failures.append(f"{image.target.key}: {registry.scrub(str(exc))}")
    return results, failures


def check_selection(only: Optional[str], refusals: List[str]) -> None:
    if only and refusals:
        raise InputError(f"refusing to push to a public registry: {'; '.join(refusals)}; nothing was pushed")
