"""The image tasks: render, matrix, lint, base-image, build, sif and bench."""

from __future__ import annotations

import json
import tempfile
import threading
import time
from pathlib import Path
from typing import List, Optional

from rich.console import Console
from rich.table import Table

from .. import lint as linting
from ..catalogue import load_catalogue
from ..errors import BuildError, CryostackError, InputError, run_hint
from ..plan import PlannedImage, plan, write_rendered
from ..project import Project
from ..settings import BuildSettings
from .console import Progress, console, relative


def planned_images(project: Project, settings: BuildSettings, only: Optional[str]) -> List[PlannedImage]:
    return plan(load_catalogue(project.images_dir), project.recipes_dir, settings, only)


def render(project: Project, settings: BuildSettings, only: Optional[str] = None) -> List[Path]:
    """Write every selected entry's Dockerfile, apptainer.def and build.sh under the build directory."""
    images = planned_images(project, settings, only)
    build_dir = project.resolve(settings.build_dir)
    written = write_rendered(images, build_dir)
    for image, out in zip(images, written):
        console.print(f"rendered {image.target.key:<36} {image.fingerprint.short}  {relative(out)}", markup=False)
    console.print(f"{len(written)} entries rendered into {relative(build_dir)}", markup=False)
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
        table.add_row(t.family.family, t.version, t.variant_name, ",".join(t.targets),
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


def base_image(project: Project, settings: BuildSettings, suite: str = "bookworm", force: bool = False) -> None:
    """Make the local Debian base image (debootstrap + docker import) unless it exists."""
    from ..baseimage import make_base_image
    from ..engine.base import connect

    ref = settings.base_image if suite == "bookworm" else f"local/debian:{suite}"
    build_dir = project.resolve(settings.build_dir)
    log = build_dir / "logs" / f"base-image-{suite}.log"
    console.print(f"base image {ref}: debootstrap {suite} (log: {relative(log)}) ...", markup=False)
    image_id = make_base_image(connect(), ref, suite, build_dir, log, force=force)
    if image_id is None:
        console.print(f"base image {ref}: already present (use --force to make it again)", markup=False)
    else:
        console.print(f"base image {ref}: {image_id[:19]}", markup=False)


def build(project: Project, settings: BuildSettings, only: Optional[str] = None, jobs: int = 1,
          keep_going: bool = False, dry_run: bool = False, everything: bool = False,
          cache_from: Optional[str] = None, inline_cache: bool = False) -> None:
    """Build (and verify) what is out of date. `everything`: build-all, where entries that cannot
    be built here are reported but are not failures; with a selection they are failures."""
    from .. import record as records
    from ..build import FAILED, UNAVAILABLE, BuildRun, Outcome, decide, git_revision, run_builds
    from ..engine.base import connect
    from ..sources import SourceMirror

    if jobs < 1:
        raise InputError(f"--jobs {jobs}: give a number of parallel builds of at least 1")
    images = planned_images(project, settings, only)
    engine = connect()
    if not dry_run:
        _make_local_bases(project, settings, engine, images)
    build_dir = project.resolve(settings.build_dir)
    record, lock = records.read(build_dir), threading.Lock()
    decisions = decide(images, engine, record=record)
    if dry_run:
        width = max([len(d.image.target.key) for d in decisions] + [5])
        console.print(f"{'image':<{width}}  {'action':<12}  why", markup=False)
        for d in decisions:  # one line each, however long the reason: logs and grep keep it whole
            console.print(f"{d.image.target.key:<{width}}  {d.action:<12}  {' '.join(d.reason.split())}",
                          markup=False, overflow="ignore", crop=False)
        return
    progress = Progress([d.image.target.key for d in decisions])

    def keep(outcome: Outcome) -> None:  # each image's result is on disk as soon as it is known
        with lock:
            record.merge(outcome)
            records.write(build_dir, record)

    run = BuildRun(engine, SourceMirror(project.resolve(settings.source_mirror), settings.source_path), build_dir,
                   build_dir / "logs", revision=git_revision(project.root), on_event=progress.update, on_outcome=keep,
                   cache_registry=cache_from, inline_cache=inline_cache)
    with progress:
        outcomes: List[Outcome] = run_builds(decisions, run, jobs=jobs, keep_going=keep_going)
    _summary(outcomes)
    failed = [o for o in outcomes if o.status == FAILED or (o.status == UNAVAILABLE and not everything)]
    if failed:
        raise BuildError(f"{len(failed)} of {len(outcomes)} images failed or could not be built: "
                         + ", ".join(o.key for o in failed))


def _make_local_bases(project: Project, settings: BuildSettings, engine, images: List[PlannedImage]) -> None:
    """The local Debian base images are ours to make: debootstrap any the selected images need."""
    from ..baseimage import make_base_image
    build_dir = project.resolve(settings.build_dir)
    needed = {ref for image in images if not image.target.blocked for ref in image.contract.base_images}
    for ref in sorted(needed):
        if ref.startswith("local/debian:") and engine.image(ref) is None:
            suite = ref.split(":", 1)[1]
            console.print(f"base image {ref} is missing: making it with debootstrap {suite} ...", markup=False)
            make_base_image(engine, ref, suite, build_dir, build_dir / "logs" / f"base-image-{suite}.log")


def _summary(outcomes) -> None:
    """One line per image: key, status, duration, size and the reason (on one line; the log has the rest)."""
    width = max([len(o.key) for o in outcomes] + [5])
    console.print(f"{'image':<{width}}  {'status':<11}  {'time':>6}  {'size':>8}  reason", markup=False)
    for o in outcomes:
        seconds = f"{o.seconds:.0f}s" if o.seconds else ""
        size = f"{o.size / 1e6:.0f} MB" if o.size else ""
        console.print(f"{o.key:<{width}}  {o.status:<11}  {seconds:>6}  {size:>8}  {' '.join(o.reason.split())}",
                      markup=False, overflow="ignore", crop=False)


def sif(project: Project, settings: BuildSettings, only: Optional[str] = None) -> None:
    """Convert built, verified images to SIF files under BUILD_DIR/sif/ and smoke-test each SIF."""
    from .. import record as records
    from ..plan import fingerprint_ref
    from ..engine.apptainer import Apptainer
    from ..engine.base import connect
    from ..sources import sha256_of
    from ..verify import functional_check, smoke_problem

    images = planned_images(project, settings, only)
    engine = connect()
    build_dir = project.resolve(settings.build_dir)
    apptainer = Apptainer(engine, project.recipes_dir / "tools" / "apptainer.Dockerfile",
                          build_dir / "logs" / "apptainer.log")
    record = records.read(build_dir)

    def verified(image: PlannedImage) -> bool:  # only what passed verification, its check included
        entry = record.get(image.target.key, image.fingerprint.digest)
        declared = image.target.family.check_of(image.target.version) is not None
        return (engine.image(fingerprint_ref(image)) is not None and entry is not None and entry.verified
                and (not declared or (entry.check is not None and entry.check.passed)))

    ready = [image for image in images if verified(image)]
    for image in images:
        if image not in ready and not image.target.blocked:
            console.print(f"sif {image.target.key}: not built and verified (run "
                          f"{run_hint('build --only ' + image.target.key)})", markup=False)
    if not ready:
        raise BuildError("no built image to convert" + (f" in --only {only!r}" if only else ""))
    apptainer.ensure()
    failures = []
    for image in ready:
        key, fingerprint = image.target.key, image.fingerprint
        dest = build_dir / "sif" / image.target.family.family / image.target.version / image.target.variant_name / f"{fingerprint.short}.sif"
        started = time.monotonic()
        try:
            if dest.exists():
                console.print(f"sif {key}: up to date ({relative(dest)})", markup=False)
            else:
                console.print(f"sif {key}: building with apptainer in {apptainer.where} ...", markup=False)
                apptainer.build_sif(fingerprint_ref(image), dest)
            problem = smoke_problem(image.build_args["smoke"], *apptainer.exec(dest, image.build_args["smoke"]["command"]))
            if problem:
                raise BuildError(f"in the SIF: {problem}")
            checked = functional_check(image, lambda script, workdir, timeout: apptainer.exec(
                dest, script, binds={workdir: "/check"}))
            if checked is not None and not checked.passed:
                raise BuildError(f"in the SIF: {checked.describe()}")
        except CryostackError as exc:
            failures.append(f"{key}: {exc}")
            console.print(f"sif {key}: failed: {exc}", markup=False)
            continue
        seconds = round(time.monotonic() - started, 1)
        entry = record.get(key, fingerprint.digest)
        if entry is not None:
            entry.sif = records.SifRecord(path=str(dest), sha256=sha256_of(dest), size=dest.stat().st_size,
                                          seconds=seconds, check=checked and records.CheckOutcome.of(checked, entry.check.spec))
            records.write(build_dir, record)
        passed = f"; {checked.describe()}" if checked else ""
        console.print(f"sif {key}: {relative(dest)} ({dest.stat().st_size / 1e6:.0f} MB, {seconds:.0f}s, smoke test passed"
                      f"{passed})", markup=False)
    if failures:
        raise BuildError(f"{len(failures)} SIF conversion(s) failed: {'; '.join(failures)}")


def bench(project: Project, settings: BuildSettings, matrix: Optional[str] = None,
          wrappers: Optional[str] = None, command: str = "relion_refine", partition: Optional[str] = None,
          runtime: bool = False, baseline: Optional[str] = None, rounds: int = 2) -> None:
    """Measure the speed and size targets on this machine; print values and ratios. A runtime race
    whose runs fail or disagree is printed, then reported as a failure."""
    from .. import bench as measures
    from .. import record as records
    from ..engine.base import connect
    from ..sources import SourceMirror

    if int(rounds) < 1:
        raise InputError(f"--rounds {rounds}: give at least 1 (each image runs once per round, in turns)")
    engine = connect()
    build_dir = project.resolve(settings.build_dir)
    images = planned_images(project, settings, None)
    rows = [measures.noop_build(project.root, settings, engine), measures.rebuilds_after_touch(project.root, settings)]
    mirror = SourceMirror(project.resolve(settings.source_mirror), settings.source_path)
    if matrix:
        with tempfile.TemporaryDirectory(prefix="cryostack-bench-") as work:
            rows += measures.matrix_cost(project.root, settings, engine, mirror, matrix, Path(work))
    else:
        rows.append(measures.missing("matrix cost", "give --matrix FAMILY[/VERSION] (builds two variants and an edit)"))
    if wrappers:
        rows.append(measures.wrapper_cost(Path(wrappers), command, partition))
    else:
        rows.append(measures.missing("wrapper overhead", "give --wrappers PREFIX (a tree from cluster.wrappers)"))
    rows += measures.stage_sizes(images, engine, mirror, build_dir) or [
        measures.missing("RELION runtime / build stage", f"no RELION image built yet: {run_hint('build --only relion')}")]
    rows += measures.sif_conversion(records.read(build_dir)) or [
        measures.missing("SIF conversion", f"no SIF yet: {run_hint('sif')}")]
    agreed = True
    if runtime:
        with tempfile.TemporaryDirectory(prefix="cryostack-race-") as work:
            race, agreed = measures.runtime_race(images, engine, baseline, int(rounds), Path(work))
        rows += race
    else:
        rows.append(measures.missing("2D classification", "give --runtime (every built RELION CPU image, in turns)"))
    for row in rows:  # one line each: logs and terminals alike keep a measure whole
        console.print(f"{row.name}: {row.value}; {row.ratio} ({row.meaning})", markup=False, crop=False)
    if not agreed:
        raise BuildError("bench --runtime: a run failed or computed another result than the baseline (lines above)")
