"""The store tasks: publish to and prune the EFS tree, push to registries, pull from other sites."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Sequence

from ..errors import BuildError, CryostackError, InputError, run_hint
from ..plan import PlannedImage
from ..project import Project
from ..settings import BuildSettings
from .console import console
from .images import planned_images


def _mode(text: str, option: str) -> int:
    try:
        mode = int(str(text), 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777:
        raise InputError(f"{option} {text!r}: give an octal mode such as 0444")
    return mode


def publish(project: Project, settings: BuildSettings, efs_root: Optional[str], only: Optional[str] = None,
            group: Optional[str] = None, file_mode: str = "0444", dir_mode: str = "0755") -> None:
    """Copy verified SIF files into the EFS tree and switch current.sif and manifest.json to them."""
    from .. import record as records
    from ..publish import manifest as manifests
    from ..publish.efs import EfsTree

    if not efs_root:
        raise InputError("--efs-root: give the directory of the shared image store (e.g. /efs/cryostack)")
    tree = EfsTree(Path(efs_root), _mode(file_mode, "--file-mode"), _mode(dir_mode, "--dir-mode"), group)
    record = records.read(project.resolve(settings.build_dir))
    ready, not_ready = [], []
    for image in planned_images(project, settings, only):
        built = record.get(image.target.key, image.fingerprint.digest)
        if built is None or not built.verified:
            not_ready.append(f"{image.target.key} (not built: {run_hint('build')})")
        elif built.sif is None or not Path(built.sif.path).exists():
            not_ready.append(f"{image.target.key} (no SIF: {run_hint('sif')})")
        else:
            ready.append((image, built))
    if only and not_ready:  # an explicit selection is all or nothing
        raise InputError(f"--only {only!r}: cannot publish {', '.join(not_ready)}; nothing was published")
    if not ready:
        raise BuildError(f"nothing to publish: no image has a verified SIF ({run_hint('build-all')}, then {run_hint('sif')})")
    failures, entries, copied = [], {}, 0
    with _waiting_for_lock(tree):
        manifest = tree.read_manifest()
        for image, built in ready:
            key = image.target.key
            try:
                sif, size = tree.install_sif(Path(built.sif.path), manifests.sif_relpath(image), built.sif.sha256)
            except CryostackError as exc:
                failures.append(f"{key}: {exc}")
                continue
            copied += size
            entries[key] = manifests.entry_for(image, built.model_dump(), sif)
            state = f"copied {size / 1e6:.0f} MB" if size else "unchanged, 0 bytes copied"
            console.print(f"published {key:<30} {sif['path']} ({state})", markup=False)
        tree.switch_to(manifest, entries)
    console.print(f"{len(entries)} images in {tree.manifest_path} ({copied / 1e6:.0f} MB copied)", markup=False)
    if failures:
        raise BuildError(f"{len(failures)} image(s) not published: {'; '.join(failures)}")


def _waiting_for_lock(tree):
    """The tree's lock, saying so when another publisher holds it."""
    return tree.locked(on_wait=lambda: console.print(f"waiting for another publisher's lock on {tree.root} ...",
                                                     markup=False))


def prune(efs_root: Optional[str], keep: int) -> None:
    """Remove published SIFs beyond the newest KEEP per variant; current.sif's target always stays.
    Only files inside the tree that the local manifest owns (its history) are ever removed."""
    from ..publish.efs import EfsTree
    from ..publish.prune import plan_prune

    if not efs_root:
        raise InputError("--efs-root: give the directory of the shared image store")
    if keep < 1:
        raise InputError(f"--keep {keep}: keep at least 1 (the current image)")
    tree = EfsTree(Path(efs_root))
    if not tree.manifest_path.is_file():
        raise InputError(f"{tree.manifest_path}: no manifest here; nothing published to prune")
    skipped: List[str] = []
    with tree.locked():
        manifest, removals = plan_prune(tree.read_manifest(), keep)
        freed = 0
        for path in list(removals):
            try:
                freed += tree.remove(path)
            except BuildError as exc:  # something other than our file is there (a link, a folder): left alone
                skipped.append(str(exc))
                removals.remove(path)
        tree.write_manifest(manifest)
    for path in removals:
        console.print(f"removed {path}", markup=False)
    console.print(f"pruned {len(removals)} SIF file(s), {freed / 1e6:.0f} MB freed", markup=False)
    if skipped:
        raise BuildError(f"{len(skipped)} file(s) not removed: {'; '.join(skipped)}")


def push(project: Project, settings: BuildSettings, registry_url: Optional[str] = None, only: Optional[str] = None,
         public: bool = False, username: Optional[str] = None, password_env: str = "CRYOSTACK_REGISTRY_PASSWORD",
         ecr: bool = False, region: Optional[str] = None, profile: Optional[str] = None) -> None:
    """Push built, verified images to ECR or any OCI registry and record their digests."""
    from .. import record as records
    from ..plan import fingerprint_ref
    from ..engine.base import connect
    from ..publish.push import check_selection, licence_refusals, push_all
    from ..publish.registry import Registry

    if not ecr and not registry_url:
        raise InputError("--registry: give host[:port] of an OCI registry, or --ecr for Amazon ECR")
    build_dir = project.resolve(settings.build_dir)
    images = planned_images(project, settings, only)
    engine = connect()
    # Only verified images carry their fingerprint tag (a failed one is re-tagged -failed).
    ready = [i for i in images if engine.image(fingerprint_ref(i))]
    if only and len(ready) < len(images):
        missing = ", ".join(i.target.key for i in images if i not in ready)
        raise InputError(f"--only {only!r}: not built: {missing} ({run_hint('build')}); nothing was pushed")
    if not ready:
        raise BuildError(f"nothing to push: no built image ({run_hint('build-all')})")
    ecr_api = None
    if ecr:
        from ..publish.ecr import Ecr
        ecr_api = Ecr(region, profile)
        registry = ecr_api.registry(endpoint=registry_url, public=public)
    else:
        registry = Registry(registry_url, username, os.environ.get(password_env) if username else None, public=public)
    refusals = licence_refusals(ready, registry)
    check_selection(only, refusals)
    for refusal in refusals:
        console.print(f"not pushed (public registry): {refusal}", markup=False)
    allowed = [i for i in ready if i.target.family.licence.redistributable or not registry.public]

    def prepare(image: PlannedImage) -> None:
        if ecr_api is not None and ecr_api.ensure_repository(image.target.repository):
            console.print(f"ECR repository {image.target.repository} created (immutable tags, scan on push, lifecycle)",
                          markup=False)

    (build_dir / "logs").mkdir(parents=True, exist_ok=True)  # a push needs no earlier build run's folders
    with open(build_dir / "logs" / "push.log", "a") as log:
        results, failures = push_all(engine, registry, allowed, log, before_each=prepare)
    for key, oci in results.items():
        state = "pushed" if oci["pushed"] else "already in the registry"
        console.print(f"{key:<32} {oci['references'][0]} {oci['digest']} ({state})", markup=False)
    record = records.read(build_dir)
    for image in allowed:
        if image.target.key not in results:
            continue
        # The engine holds this image's fingerprint tag, so it was verified, even if the record has
        # since moved on to another build of the same entry: what was pushed is recorded for it.
        entry = record.get(image.target.key, image.fingerprint.digest) or records.ImageRecord(
            key=image.target.key, status=records.UP_TO_DATE, fingerprint=image.fingerprint.digest,
            image=fingerprint_ref(image))
        entry.oci = records.OciRecord.model_validate(results[image.target.key])
        record.images[image.target.key] = entry
    records.write(build_dir, record)
    if failures:
        raise BuildError(f"{len(failures)} push(es) failed: {'; '.join(failures)}")


def pull(efs_root: Optional[str], manifest_source: Optional[str], only: Optional[str] = None,
         registry_url: Optional[str] = None, username: Optional[str] = None,
         password_env: str = "CRYOSTACK_REGISTRY_PASSWORD", group: Optional[str] = None,
         file_mode: str = "0444", dir_mode: str = "0755", root: Optional[Path] = None,
         allow_origins: Sequence[str] = (), timeout: object = None) -> None:
    """Fill a local EFS tree from another site's published manifest (SIFs beside it, or OCI images
    from a registry by digest), verifying every image; the local manifest lists what arrived.
    Downloads go to a staging folder of the tree; the tree is locked only for the switch."""
    from ..publish.efs import EfsTree
    from ..publish.pull import (Remote, fetch_sif, install_staged, read_source_manifest, registry_obtainer,
                               select_entries, stage_entries)
    from ..publish.registry import Registry

    if not efs_root or not manifest_source:
        raise InputError("pull needs --efs-root (the local tree) and --manifest (a path or URL of a published manifest.json)")
    tree = EfsTree(Path(efs_root), _mode(file_mode, "--file-mode"), _mode(dir_mode, "--dir-mode"), group)
    remote = Remote.of(manifest_source, allow_origins, timeout)
    entries = select_entries(read_source_manifest(remote), only, manifest_source)
    tree.read_manifest()  # a local manifest we could not update is refused before any download
    if registry_url:
        registry = Registry(registry_url, username, os.environ.get(password_env) if username else None)
        home = Path(root) if root else Path(os.environ.get("CRYOSTACK_ROOT") or Path.cwd())
        obtain = registry_obtainer(registry, home)
    else:
        def obtain(key, entry, dest):
            return fetch_sif(remote, entry["sif"], dest)
    with tree.staging() as staging:
        ready, failures = stage_entries(entries, tree, obtain, staging)
        with _waiting_for_lock(tree):
            local = tree.read_manifest()
            installed, refused = install_staged(ready, tree, report=lambda text: console.print(text, markup=False))
            tree.switch_to(local, installed)
    failures += refused
    console.print(f"{len(installed)} of {len(entries)} images in {tree.manifest_path}", markup=False)
    if failures:
        raise BuildError(f"{len(failures)} image(s) not pulled: {'; '.join(failures)}")
