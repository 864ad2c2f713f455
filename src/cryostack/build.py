"""Decide what to build, build it on the engine, verify it, and report: the `build` stage."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

from . import __version__
from .engine.base import Engine
from .engine.buildkit import BuildCache
from .errors import CryostackError, last_line, run_hint
from .plan import PlannedImage, fingerprint_ref, readable_ref, write_rendered
from .record import BUILT, FAILED, SKIPPED, UNAVAILABLE, UP_TO_DATE, BuildRecord, CheckOutcome, ImageRecord
from .sources import SourceMirror, SourceUnavailable
from .verify import verify

WOULD_BUILD = "would build"
WOULD_VERIFY = "would verify"  # built, but its functional check has not passed as declared now


@dataclass(frozen=True)
class Decision:
    """What `build` will do with one planned image, and why."""

    image: PlannedImage
    action: str  # WOULD_BUILD, WOULD_VERIFY, UP_TO_DATE or UNAVAILABLE
    reason: str
    base_ids: Dict[str, str] = field(default_factory=dict)


Outcome = ImageRecord  # what happened to one image: one row of the summary and of the build record


def build_stage_ref(image: PlannedImage) -> str:
    return f"{image.target.repository}:{image.target.tag}-build"


def check_digest(image: PlannedImage) -> str:
    """A digest of the functional check declared for the image ('' when none is)."""
    spec = image.target.family.check_of(image.target.version)
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:16] if spec is not None else ""


def decide(images: List[PlannedImage], engine: Engine, pull: bool = True,
           record: Optional[BuildRecord] = None) -> List[Decision]:
    """For each image: up to date (same fingerprint, same base images, its check passed as declared
    now), to verify again, to build, or not buildable here."""
    decisions = []
    known: Dict[str, Optional[str]] = {}
    missing: Dict[str, str] = {}
    for image in images:
        if image.target.blocked:
            decisions.append(Decision(image, UNAVAILABLE, image.target.blocked))
            continue
        base_ids, absent = {}, []
        for ref in image.contract.base_images:
            if ref not in known:
                known[ref], missing[ref] = _base_image_id(engine, ref, pull)
            if known[ref] is None:
                needs = image.contract.base_image_needs
                absent.append(f"{'needs ' + needs + ': ' if needs else ''}base image {ref} is not available here "
                              f"({missing[ref]})")
            else:
                base_ids[ref] = known[ref]
        if absent:
            decisions.append(Decision(image, UNAVAILABLE, "; ".join(absent)))
            continue
        existing = engine.image(fingerprint_ref(image))
        labels = existing.labels if existing else {}
        if existing is None:
            reason = "not built yet" if engine.image(readable_ref(image)) is None else "inputs changed (new fingerprint)"
            decisions.append(Decision(image, WOULD_BUILD, reason, base_ids))
        elif labels.get("io.cryostack.base-images") != _base_label(base_ids):
            decisions.append(Decision(image, WOULD_BUILD, "a base image changed", base_ids))
        elif record is not None and not _check_passed(record.get(image.target.key, image.fingerprint.digest), image):
            decisions.append(Decision(image, WOULD_VERIFY, "built, but its functional check has not passed as "
                                      "declared now", base_ids))
        else:
            decisions.append(Decision(image, UP_TO_DATE, "same fingerprint and base images", base_ids))
    return decisions


def _check_passed(entry: Optional[ImageRecord], image: PlannedImage) -> bool:
    digest = check_digest(image)
    if not digest:
        return True
    return entry is not None and entry.check is not None and entry.check.passed and entry.check.spec == digest


def _base_image_id(engine: Engine, ref: str, pull: bool):
    info = engine.image(ref)
    if info is not None:
        return info.id, ""
    if ref.startswith("local/"):
        return None, f"run {run_hint('base-image')} to make it"
    if pull:
        pulled, why = engine.pull(ref)
        info = engine.image(ref) if pulled else None
        if info is not None:
            return info.id, ""
        setting = _setting_of(ref)
        hint = f"; {setting} names another image" if setting else ""
        # The engine's message ends with the cause ("no such host", "not found"); the rest repeats addresses.
        return None, f"pull failed: {last_line(why).rsplit(': ', 1)[-1]}{hint}"
    return None, "not present and pulling is off"


def _setting_of(ref: str) -> Optional[str]:
    """The environment variable that sets base image REF, if it is one of the settings."""
    from .settings import BuildSettings

    for name, value in BuildSettings.from_env().images().items():
        if value == ref:
            return f"CRYOSTACK_{name.upper()}_IMAGE"  # the setting's field is <name>_image
    return None


def _base_label(base_ids: Dict[str, str]) -> str:
    return ",".join(f"{ref}@{image_id}" for ref, image_id in sorted(base_ids.items()))


@dataclass
class BuildRun:
    """Everything one `build` invocation needs besides the decisions."""

    engine: Engine
    mirror: SourceMirror
    build_dir: Path
    log_dir: Path
    network: str = "host"
    cache_registry: Optional[str] = None  # import layers from <registry>/<repository>:<tag> (pushed earlier)
    inline_cache: bool = False  # images carry their cache, so a push makes it importable elsewhere
    revision: str = "unknown"
    on_event: Callable[[str, str], None] = lambda key, text: None
    on_outcome: Callable[[ImageRecord], None] = lambda outcome: None

    def cache_for(self, image: PlannedImage) -> BuildCache:
        """BuildKit cache options for one image: its tag in the cache registry, and inline export."""
        imports = (f"type=registry,ref={self.cache_registry}/{readable_ref(image)}",) if self.cache_registry else ()
        return BuildCache(imports=imports, export="type=inline" if self.inline_cache else None)


def run_builds(decisions: List[Decision], run: BuildRun, jobs: int = 1, keep_going: bool = False) -> List[Outcome]:
    """Build what needs building, `jobs` at a time. Without keep_going, no new build starts after a failure."""
    stop = threading.Event()
    run.log_dir.mkdir(parents=True, exist_ok=True)

    def one(decision: Decision) -> Outcome:
        outcome = decide_and_build(decision)
        run.on_outcome(outcome)
        return outcome

    def decide_and_build(decision: Decision) -> Outcome:
        image = decision.image
        if decision.action == WOULD_VERIFY:
            return _verify_again(decision, run)
        if decision.action != WOULD_BUILD:
            outcome = Outcome(key=image.target.key, status=decision.action, reason=decision.reason,
                              image=fingerprint_ref(image), fingerprint=image.fingerprint.digest)
            if decision.action == UP_TO_DATE:
                _record_image(run.engine, image, outcome)
            return outcome
        if stop.is_set():
            return Outcome(key=image.target.key, status=SKIPPED, reason="an earlier build failed (use --keep-going to build the rest)")
        outcome = _build_one(decision, run)
        if outcome.status == FAILED and not keep_going:
            stop.set()
        return outcome

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, decisions))


def _build_one(decision: Decision, run: BuildRun) -> Outcome:
    image, target = decision.image, decision.image.target
    started = time.monotonic()
    log_path = run.log_dir / f"{target.key.replace('/', '_')}.log"
    outcome = Outcome(key=target.key, status=FAILED, image=fingerprint_ref(image), fingerprint=image.fingerprint.digest,
                      log=str(log_path))
    try:
        run.on_event(target.key, "fetching source")
        context = prepare_context(image, run.mirror, run.build_dir)
        run.on_event(target.key, f"building (log: {log_path})")
        labels = build_labels(decision, run.revision)
        with open(log_path, "w", encoding="utf-8") as log:
            run.engine.build(context, fingerprint_ref(image), labels, log, run.network, cache=run.cache_for(image))
            stage_ref = None
            if image.build_args["cuda_arch"] is not None:
                # Cached: this re-tags the build stage so cuobjdump (not in the runtime) can read it.
                stage_ref = build_stage_ref(image)
                run.engine.build(context, stage_ref, {}, log, run.network, target="build")
        run.on_event(target.key, "verifying")
        _judge(run, image, verify(run.engine, fingerprint_ref(image), image, stage_ref), outcome, BUILT)
    except SourceUnavailable as exc:
        outcome.status, outcome.reason = UNAVAILABLE, str(exc)
    except CryostackError as exc:
        outcome.reason = str(exc)
    except Exception as exc:  # one image's unexpected failure must not lose the others' work
        outcome.reason = f"{type(exc).__name__}: {exc}"
    outcome.seconds = round(time.monotonic() - started, 1)
    run.on_event(target.key, outcome.status)
    return outcome


def _judge(run: BuildRun, image: PlannedImage, verification, outcome: Outcome, passed_status: str) -> None:
    """Record what verification found: a passing image is tagged as the newest verified build; a
    failing one never counts as built and stays inspectable under a -failed tag."""
    if verification.check is not None:
        outcome.check = CheckOutcome.of(verification.check, check_digest(image))
    if verification.problems:
        failed_ref = f"{readable_ref(image)}-failed"
        run.engine.tag(fingerprint_ref(image), failed_ref)
        run.engine.untag(fingerprint_ref(image))
        outcome.status = FAILED
        outcome.reason = "; ".join(verification.problems) + f" (inspect it: docker run --rm -it {failed_ref} bash)"
        return
    run.engine.tag(fingerprint_ref(image), readable_ref(image))
    outcome.status = passed_status
    outcome.reason = outcome.check.summary if outcome.check else ""
    _record_image(run.engine, image, outcome)


def _verify_again(decision: Decision, run: BuildRun) -> Outcome:
    """An image built earlier whose functional check has not passed as declared now: verify it again."""
    image = decision.image
    started = time.monotonic()
    outcome = Outcome(key=image.target.key, status=FAILED, image=fingerprint_ref(image),
                      fingerprint=image.fingerprint.digest)
    run.on_event(image.target.key, "verifying")
    try:
        stage_ref = build_stage_ref(image) if image.build_args["cuda_arch"] is not None else None
        if stage_ref is not None and run.engine.image(stage_ref) is None:
            stage_ref = None  # the SM check ran when it was built; the build stage is gone since
        _judge(run, image, verify(run.engine, fingerprint_ref(image), image, stage_ref), outcome, UP_TO_DATE)
    except CryostackError as exc:
        outcome.reason = str(exc)
    outcome.seconds = round(time.monotonic() - started, 1)
    run.on_event(image.target.key, outcome.status)
    return outcome


def prepare_context(image: PlannedImage, mirror: SourceMirror, build_dir: Path) -> Path:
    """The build context of one image: its rendered files and its verified source."""
    target = image.target
    source = mirror.ensure(target.spec.source, f"{target.catalogue_file}: versions[{target.version!r}].source")
    toolkit = target.variant.toolkit
    installers = [
        mirror.ensure(installer, f"{target.catalogue_file}: variants[{target.variant_name!r}].toolkit.installers[{index}]")
        for index, installer in enumerate(toolkit.installers if toolkit else ())
    ]
    context = write_rendered([image], build_dir)[0]
    _stage_source(source, context / "sources", image.patches, installers)
    return context


def _stage_source(source: Path, dest: Path, patches=(), installers=()) -> None:
    """Put the verified source (and the toolkit's installers) into the build context, and its patches
    (checked by plan) in patches/ beside it: a hard link where the file system allows, else a copy."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    staged = [(source, dest)] + [(installer, dest) for installer in installers]
    for path, into in staged + [(patch, dest / "patches") for patch in patches]:
        into.mkdir(exist_ok=True)
        try:
            os.link(path, into / path.name)
        except OSError:
            shutil.copy2(path, into / path.name)


def _record_image(engine: Engine, image: PlannedImage, outcome: Outcome) -> None:
    """Size, ID and labels of the built image: what publish puts in the manifest."""
    info = engine.image(fingerprint_ref(image))
    if info is not None:
        outcome.size, outcome.image_id, outcome.labels = info.size, info.id, info.labels


def build_labels(decision: Decision, revision: str) -> Dict[str, str]:
    """Labels only known at build time (the static ones are in the rendered Dockerfile)."""
    image = decision.image
    return {
        "io.cryostack.fingerprint": image.fingerprint.digest,
        "io.cryostack.base-images": _base_label(decision.base_ids),
        "io.cryostack.cryostack-version": __version__,
        "org.opencontainers.image.revision": revision,
        "org.opencontainers.image.created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def git_revision(root: Path) -> str:
    """The checkout's commit, with '-dirty' when it has uncommitted changes; 'unknown' outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "images", "recipes"], cwd=root,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
