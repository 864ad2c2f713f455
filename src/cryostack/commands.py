"""What each user-facing command does; tasks.py and the `cryostack` console script call these."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional

from rich.console import Console
from rich.table import Table

from . import lint as linting
from .catalogue import load_catalogue
from .errors import BuildError, CryostackError, InputError
from .files import write_text_atomically
from .plan import PlannedImage, plan, write_rendered
from .settings import BuildSettings

console = Console(highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, soft_wrap=True)


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


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn a CryostackError into one line on stderr and its exit code: never a traceback."""
    try:
        yield
    except CryostackError as exc:
        errors.print(f"cryostack: error: {exc}", markup=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        errors.print("cryostack: interrupted", markup=False)
        sys.exit(130)
    except BrokenPipeError:  # the reader went away (`| head`): nothing to report, nothing more to write
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
    except Exception as exc:  # a bug of ours: still one line, the traceback only on request
        if os.environ.get("CRYOSTACK_DEBUG"):
            raise
        errors.print(f"cryostack: internal error: {type(exc).__name__}: {exc} "
                     "(rerun with CRYOSTACK_DEBUG=1 for the traceback, and please report it)", markup=False)
        sys.exit(1)


def planned_images(project: Project, settings: BuildSettings, only: Optional[str]) -> List[PlannedImage]:
    return plan(load_catalogue(project.images_dir), project.recipes_dir, settings, only)


def render(project: Project, settings: BuildSettings, only: Optional[str] = None) -> List[Path]:
    """Write every selected entry's Dockerfile, apptainer.def and build.sh under the build directory."""
    images = planned_images(project, settings, only)
    build_dir = project.resolve(settings.build_dir)
    written = write_rendered(images, build_dir)
    for image, out in zip(images, written):
        console.print(f"rendered {image.target.key:<36} {image.fingerprint.short}  {_relative(out)}", markup=False)
    console.print(f"{len(written)} entries rendered into {_relative(build_dir)}", markup=False)
    return written


def matrix(project: Project, settings: BuildSettings, only: Optional[str] = None, as_json: bool = False) -> None:
    """Print the build matrix: a table, or JSON for CI sharding."""
    images = planned_images(project, settings, only)
    if as_json:
        print(json.dumps([image.summary() for image in images], indent=2))
        return
    table = Table("family", "version", "variant", "targets", "fingerprint", "status", box=None)
    reasons: List[str] = []
    for image in images:
        t = image.target
        status = "buildable"
        if t.blocked:
            if t.blocked not in reasons:
                reasons.append(t.blocked)
            status = f"blocked [{reasons.index(t.blocked) + 1}]"
        table.add_row(t.family.family, t.version, t.variant_name, ",".join(t.variant.targets),
                      image.fingerprint.short, status)
    wide = Console(highlight=False, width=max(console.width, 110))
    wide.print(table)
    for number, reason in enumerate(reasons, 1):
        wide.print(f"[{number}] {reason}", markup=False)


def lint(project: Project, settings: BuildSettings, only: Optional[str] = None) -> None:
    """Render, then hadolint every Dockerfile and check every definition file and build script."""
    findings: List[linting.Finding] = []
    outs = render(project, settings, only)
    for out in outs:
        findings += linting.lint_dockerfile(out / "Dockerfile", project.hadolint_config)
        findings += linting.lint_definition(out / "apptainer.def")
        findings += linting.lint_script(out / "build.sh")
    for finding in findings:
        console.print(str(finding), markup=False)
    if findings:
        raise BuildError(f"lint: {len(findings)} finding(s) in {len(outs)} rendered entries")
    console.print(f"lint: {len(outs)} entries clean (hadolint, definition files, build scripts)", markup=False)


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def base_image(project: Project, settings: BuildSettings, suite: str = "bookworm", force: bool = False) -> None:
    """Make the local Debian base image (debootstrap + docker import) unless it exists."""
    from .baseimage import make_base_image
    from .engine.docker import DockerEngine

    ref = settings.base_image if suite == "bookworm" else f"local/debian:{suite}"
    build_dir = project.resolve(settings.build_dir)
    log = build_dir / "logs" / f"base-image-{suite}.log"
    console.print(f"base image {ref}: debootstrap {suite} (log: {_relative(log)}) ...", markup=False)
    image_id = make_base_image(DockerEngine.connect(), ref, suite, build_dir, log, force=force)
    if image_id is None:
        console.print(f"base image {ref}: already present (use --force to make it again)", markup=False)
    else:
        console.print(f"base image {ref}: {image_id[:19]}", markup=False)


def build(project: Project, settings: BuildSettings, only: Optional[str] = None, jobs: int = 1,
          keep_going: bool = False, dry_run: bool = False, everything: bool = False) -> None:
    """Build (and verify) what is out of date. `everything`: build-all, where entries that cannot
    be built here are reported but are not failures; with a selection they are failures."""
    from .build import (FAILED, UNAVAILABLE, BuildRun, Outcome, decide, git_revision, run_builds,
                        write_report)
    from .engine.docker import DockerEngine
    from .sources import SourceMirror

    if jobs < 1:
        raise InputError(f"--jobs {jobs}: give a number of parallel builds of at least 1")
    images = planned_images(project, settings, only)
    engine = DockerEngine.connect()
    if not dry_run:
        _make_local_bases(project, settings, engine, images)
    decisions = decide(images, engine)
    if dry_run:
        table = Table("image", "action", "why", box=None)
        for d in decisions:
            table.add_row(d.image.target.key, d.action, d.reason)
        Console(highlight=False, width=max(console.width, 140)).print(table)
        return
    build_dir = project.resolve(settings.build_dir)
    progress = _Progress([d.image.target.key for d in decisions])
    run = BuildRun(engine, SourceMirror(project.resolve(settings.source_mirror)), build_dir, build_dir / "logs",
                   revision=git_revision(project.root), on_event=progress.update)
    with progress:
        outcomes: List[Outcome] = run_builds(decisions, run, jobs=jobs, keep_going=keep_going)
    write_report(build_dir / "report.json", outcomes)
    _summary(outcomes)
    failed = [o for o in outcomes if o.status == FAILED or (o.status == UNAVAILABLE and not everything)]
    if failed:
        raise BuildError(f"{len(failed)} of {len(outcomes)} images failed or could not be built: "
                         + ", ".join(o.key for o in failed))


def _make_local_bases(project: Project, settings: BuildSettings, engine, images: List[PlannedImage]) -> None:
    """The local Debian base images are ours to make: debootstrap any the selected images need."""
    from .baseimage import make_base_image
    from .build import base_refs

    build_dir = project.resolve(settings.build_dir)
    needed = {ref for image in images if not image.target.blocked for ref in base_refs(image.files["Dockerfile"])}
    for ref in sorted(needed):
        if ref.startswith("local/debian:") and engine.image(ref) is None:
            suite = ref.split(":", 1)[1]
            console.print(f"base image {ref} is missing: making it with debootstrap {suite} ...", markup=False)
            make_base_image(engine, ref, suite, build_dir, build_dir / "logs" / f"base-image-{suite}.log")


class _Progress:
    """Live status while building: a table on a terminal, one line per change elsewhere (CI logs)."""

    def __init__(self, keys: List[str]):
        self.state = {key: "waiting" for key in keys}
        self.started: dict = {}
        self.live = None
        self.lock = threading.Lock()

    def __enter__(self):
        if console.is_terminal:
            from rich.live import Live
            self.live = Live(self._table(), console=console, refresh_per_second=2)
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live is not None:
            self.live.update(self._table())
            self.live.__exit__(*exc)

    def update(self, key: str, text: str) -> None:
        with self.lock:
            self.started.setdefault(key, time.monotonic())
            self.state[key] = text
            if self.live is not None:
                self.live.update(self._table())
            else:
                console.print(f"{time.strftime('%H:%M:%S')} {key}: {text}", markup=False)

    def _table(self) -> Table:
        table = Table("image", "status", "elapsed", box=None)
        for key, text in self.state.items():
            since = self.started.get(key)
            table.add_row(key, text, f"{time.monotonic() - since:.0f}s" if since else "")
        return table


def _summary(outcomes) -> None:
    table = Table("image", "status", "duration", "size", "reason", box=None)
    for o in outcomes:
        table.add_row(o.key, o.status, f"{o.seconds:.0f}s" if o.seconds else "",
                      f"{o.size / 1e6:.0f} MB" if o.size else "", o.reason)
    Console(highlight=False, width=max(console.width, 160)).print(table)


def sif(project: Project, settings: BuildSettings, only: Optional[str] = None) -> None:
    """Convert built, verified images to SIF files under BUILD_DIR/sif/ and smoke-test each SIF."""
    from .build import fingerprint_ref, update_report
    from .engine.apptainer import Apptainer
    from .engine.docker import DockerEngine
    from .sources import sha256_of
    from .verify import smoke_problem

    images = planned_images(project, settings, only)
    engine = DockerEngine.connect()
    build_dir = project.resolve(settings.build_dir)
    apptainer = Apptainer(engine, project.recipes_dir / "tools" / "apptainer.Dockerfile",
                          build_dir / "logs" / "apptainer.log")
    ready = [image for image in images if engine.image(fingerprint_ref(image)) is not None]
    for image in images:
        if image not in ready and not image.target.blocked:
            console.print(f"sif {image.target.key}: not built (run `invoke build --only {image.target.key}`)", markup=False)
    if not ready:
        raise BuildError("no built image to convert" + (f" in --only {only!r}" if only else ""))
    apptainer.ensure()
    failures, updates = [], {}
    for image in ready:
        key, fingerprint = image.target.key, image.fingerprint
        dest = build_dir / "sif" / image.target.family.family / image.target.version / image.target.variant_name / f"{fingerprint.short}.sif"
        started = time.monotonic()
        try:
            if dest.exists():
                console.print(f"sif {key}: up to date ({_relative(dest)})", markup=False)
            else:
                console.print(f"sif {key}: building with apptainer in {apptainer.where} ...", markup=False)
                apptainer.build_sif(fingerprint_ref(image), dest)
            problem = smoke_problem(image.build_args["smoke"], *apptainer.exec(dest, image.build_args["smoke"]["command"]))
            if problem:
                raise BuildError(f"in the SIF: {problem}")
        except CryostackError as exc:
            failures.append(f"{key}: {exc}")
            console.print(f"sif {key}: failed: {exc}", markup=False)
            continue
        seconds = round(time.monotonic() - started, 1)
        updates[key] = {"sif": str(dest), "sif_sha256": sha256_of(dest), "sif_size": dest.stat().st_size,
                        "sif_seconds": seconds}
        console.print(f"sif {key}: {_relative(dest)} ({dest.stat().st_size / 1e6:.0f} MB, {seconds:.0f}s, smoke test passed)",
                      markup=False)
    update_report(build_dir / "report.json", updates)
    if failures:
        raise BuildError(f"{len(failures)} SIF conversion(s) failed: {'; '.join(failures)}")


def bench(project: Project, settings: BuildSettings) -> None:
    """Measure the speed and size targets on this machine; print values and ratios."""
    from . import bench as measures
    from .build import read_report
    from .engine.docker import DockerEngine

    engine = DockerEngine.connect()
    build_dir = project.resolve(settings.build_dir)
    images = planned_images(project, settings, None)
    rows = [measures.noop_build(project.root, settings, engine), measures.rebuilds_after_touch(project.root, settings)]
    rows += measures.stage_sizes(images, engine, build_dir) or [
        measures.missing("RELION runtime / build stage", "no RELION image built yet: invoke build --only relion/3.1.3/gcc-cpu")]
    rows += measures.sif_conversion(read_report(build_dir / "report.json")) or [
        measures.missing("SIF conversion", "no SIF yet: invoke sif")]
    table = Table("measure", "value", "ratio", "what the ratio means", box=None)
    for row in rows:
        table.add_row(row.name, row.value, row.ratio, row.meaning)
    Console(highlight=False, width=max(console.width, 150)).print(table)


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
    from .build import BUILT, UP_TO_DATE, read_report
    from .publish import manifest as manifests
    from .publish.efs import EfsTree

    if not efs_root:
        raise InputError("--efs-root: give the directory of the shared image store (e.g. /efs/cryostack)")
    tree = EfsTree(Path(efs_root), _mode(file_mode, "--file-mode"), _mode(dir_mode, "--dir-mode"), group)
    report = read_report(project.resolve(settings.build_dir) / "report.json")
    ready, not_ready = [], []
    for image in planned_images(project, settings, only):
        built = report.get(image.target.key, {})
        if built.get("fingerprint") != image.fingerprint.digest or built.get("status") not in (BUILT, UP_TO_DATE):
            not_ready.append(f"{image.target.key} (not built: invoke build)")
        elif not built.get("sif") or not Path(built["sif"]).exists():
            not_ready.append(f"{image.target.key} (no SIF: invoke sif)")
        else:
            ready.append((image, built))
    if only and not_ready:  # an explicit selection is all or nothing
        raise InputError(f"--only {only!r}: cannot publish {', '.join(not_ready)}; nothing was published")
    if not ready:
        raise BuildError("nothing to publish: no image has a verified SIF (invoke build-all, then invoke sif)")
    failures, entries, copied = [], {}, 0
    with _waiting_for_lock(tree):
        manifest = tree.read_manifest()
        for image, built in ready:
            key = image.target.key
            try:
                sif, size = tree.install_sif(Path(built["sif"]), manifests.sif_relpath(image), built.get("sif_sha256"))
            except CryostackError as exc:
                failures.append(f"{key}: {exc}")
                continue
            copied += size
            entries[key] = manifests.entry_for(image, built, sif)
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
    """Remove published SIFs beyond the newest KEEP per variant; current.sif's target always stays."""
    from .publish.efs import EfsTree
    from .publish.prune import plan_prune

    if not efs_root:
        raise InputError("--efs-root: give the directory of the shared image store")
    if keep < 1:
        raise InputError(f"--keep {keep}: keep at least 1 (the current image)")
    tree = EfsTree(Path(efs_root))
    if not tree.manifest_path.exists():
        raise InputError(f"{tree.manifest_path}: no manifest here; nothing published to prune")
    with tree.locked():
        manifest, removals = plan_prune(tree.read_manifest(), keep)
        freed = sum(tree.remove(path) for path in removals)
        tree.write_manifest(manifest)
    for path in removals:
        console.print(f"removed {path}", markup=False)
    console.print(f"pruned {len(removals)} SIF file(s), {freed / 1e6:.0f} MB freed", markup=False)


def push(project: Project, settings: BuildSettings, registry_url: Optional[str] = None, only: Optional[str] = None,
         public: bool = False, username: Optional[str] = None, password_env: str = "CRYOSTACK_REGISTRY_PASSWORD",
         ecr: bool = False, region: Optional[str] = None, profile: Optional[str] = None) -> None:
    """Push built, verified images to ECR or any OCI registry and record their digests."""
    from .build import fingerprint_ref, update_report
    from .engine.docker import DockerEngine
    from .publish.push import check_selection, licence_refusals, push_all
    from .publish.registry import Registry

    if not ecr and not registry_url:
        raise InputError("--registry: give host[:port] of an OCI registry, or --ecr for Amazon ECR")
    build_dir = project.resolve(settings.build_dir)
    images = planned_images(project, settings, only)
    engine = DockerEngine.connect()
    # Only verified images carry their fingerprint tag (a failed one is re-tagged -failed).
    ready = [i for i in images if engine.image(fingerprint_ref(i))]
    if only and len(ready) < len(images):
        missing = ", ".join(i.target.key for i in images if i not in ready)
        raise InputError(f"--only {only!r}: not built: {missing} (invoke build); nothing was pushed")
    if not ready:
        raise BuildError("nothing to push: no built image (invoke build-all)")
    ecr_api = None
    if ecr:
        from .publish.ecr import Ecr
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

    with open(build_dir / "logs" / "push.log", "a") as log:
        results, failures = push_all(engine, registry, allowed, log, before_each=prepare)
    for key, oci in results.items():
        state = "pushed" if oci["pushed"] else "already in the registry"
        console.print(f"{key:<32} {oci['references'][0]} {oci['digest']} ({state})", markup=False)
    update_report(build_dir / "report.json", {key: {"oci": oci} for key, oci in results.items()})
    if failures:
        raise BuildError(f"{len(failures)} push(es) failed: {'; '.join(failures)}")


def pull(efs_root: Optional[str], manifest_source: Optional[str], only: Optional[str] = None,
         registry_url: Optional[str] = None, username: Optional[str] = None,
         password_env: str = "CRYOSTACK_REGISTRY_PASSWORD", group: Optional[str] = None,
         file_mode: str = "0444", dir_mode: str = "0755", root: Optional[Path] = None) -> None:
    """Fill a local EFS tree from another site's published manifest (SIFs beside it, or OCI images
    from a registry by digest), verifying every image; the local manifest lists what arrived."""
    from .publish.efs import EfsTree
    from .publish.pull import fetch_sif, pull_entries, read_source_manifest, select_entries

    if not efs_root or not manifest_source:
        raise InputError("pull needs --efs-root (the local tree) and --manifest (a path or URL of a published manifest.json)")
    tree = EfsTree(Path(efs_root), _mode(file_mode, "--file-mode"), _mode(dir_mode, "--dir-mode"), group)
    entries = select_entries(read_source_manifest(manifest_source), only, manifest_source)
    if registry_url:
        obtain = _registry_obtainer(registry_url, username, password_env, root, tree.root)
    else:
        def obtain(key, entry, dest):
            return fetch_sif(manifest_source, entry["sif"]["path"], dest), entry["sif"]["sha256"]
    with _waiting_for_lock(tree):
        local = tree.read_manifest()
        installed, failures = pull_entries(entries, tree, obtain, report=lambda text: console.print(text, markup=False))
        tree.switch_to(local, installed)
    console.print(f"{len(installed)} of {len(entries)} images in {tree.manifest_path}", markup=False)
    if failures:
        raise BuildError(f"{len(failures)} image(s) not pulled: {'; '.join(failures)}")


def _registry_obtainer(registry_url: str, username: Optional[str], password_env: str, root: Optional[Path], scratch: Path):
    """obtain() for registry pulls: the image by digest, converted to a SIF on this machine."""
    from .engine.apptainer import Apptainer
    from .engine.docker import DockerEngine
    from .publish.registry import Registry

    registry = Registry(registry_url, username, os.environ.get(password_env) if username else None)
    auth = {"username": registry.username, "password": registry.password or ""} if registry.username else None
    engine = DockerEngine.connect()
    tool = (Path(root) if root else Path(os.environ.get("CRYOSTACK_ROOT") or Path.cwd())) / "recipes" / "tools" / "apptainer.Dockerfile"
    scratch.mkdir(parents=True, exist_ok=True)
    apptainer = Apptainer(engine, tool, scratch / ".apptainer.log")
    apptainer.ensure()

    def obtain(key, entry, dest):
        oci = entry.get("oci") or {}
        if not oci.get("digest") or not oci.get("repository"):
            raise BuildError("the manifest has no OCI digest for it (was it pushed?)")
        repository = f"{registry.host}/{oci['repository']}"
        engine.pull_by_digest(repository, oci["digest"], auth, registry.scrub)
        apptainer.build_sif(f"{repository}@{oci['digest']}", dest)
        return dest, None  # a SIF made here: the local manifest records its own sha256

    return obtain


def cluster_config(project: Project, site_file: Optional[str], output: Optional[str] = None) -> None:
    """Render the ParallelCluster v3 configuration for a site and validate it with ParallelCluster's schema."""
    import yaml
    from .cluster.pcluster import cluster_config as make_config, validate
    from .cluster.site import load_site

    site_path = Path(site_file or project.root / "cluster-configs" / "site.example.yaml")
    site = load_site(site_path)
    config = make_config(site)
    validate(config, site)
    text = f"# ParallelCluster v3 configuration for site {site.site}, generated by cryostack from {site_path}.\n"
    text += yaml.safe_dump(config, sort_keys=False)
    if output:
        out = Path(output)
        write_text_atomically(out, text)
        console.print(f"{out}: valid ParallelCluster configuration ({len(config['Scheduling']['SlurmQueues'])} queues)",
                      markup=False)
    else:
        print(text, end="")


def cluster_wrappers(project: Project, site_file: Optional[str], manifest: Optional[str] = None,
                     prefix: Optional[str] = None) -> None:
    """Generate wrappers, dispatchers, RELION qsub templates, module files and the node set-up script."""
    import json
    from .cluster.presets import load_presets
    from .cluster.site import load_site
    from .cluster.wrappers import render, write
    from .publish.manifest import check

    site_path = Path(site_file or project.root / "cluster-configs" / "site.example.yaml")
    site = load_site(site_path)
    manifest_path = Path(manifest or Path(site.image_store.root) / "manifest.json")
    try:
        data = check(json.loads(manifest_path.read_text()), str(manifest_path))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{manifest_path}: cannot read the published manifest ({exc}); publish first or give --manifest") from None
    out = Path(prefix or site.cluster_prefix)
    presets = load_presets(project.root / "cluster-configs" / "presets.yaml", site)
    files = render(data, site, str(site_path), manifest_path.resolve(), out.resolve(),
                   project.root / "cluster-configs" / "templates", presets,
                   warn=lambda text: errors.print(f"cryostack: warning: {text}", markup=False))
    write(files, out)
    wrappers = sorted(p.split("/", 1)[1] for p in files if p.startswith("bin/"))
    console.print(f"{len(wrappers)} commands in {out / 'bin'}: {', '.join(wrappers)}", markup=False)
    console.print(f"qsub template {out / 'qsub' / 'relion.sh'}; modules: module use {out / 'modules' / site.module_system}",
                  markup=False)
