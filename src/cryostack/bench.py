"""`invoke bench`: the speed and size targets, measured on this machine and printed as ratios."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import List, Optional, Tuple

from . import hardware
from .build import WOULD_BUILD, build_stage_ref, decide, prepare_context
from .catalogue import load_catalogue
from .engine.base import Engine
from .errors import CryostackError, run_hint
from .plan import PlannedImage, fingerprint_ref, plan, readable_ref
from .settings import BuildSettings
from .sources import SourceMirror


@dataclass(frozen=True)
class Measure:
    name: str
    value: str
    ratio: str
    meaning: str


def _timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def noop_build(root: Path, settings: BuildSettings, engine: Engine) -> Measure:
    """A build-all that finds nothing to do: planning plus engine look-ups, against rendering alone."""
    catalogue = load_catalogue(root / "images")
    render = min(_timed(lambda: plan(catalogue, root / "recipes", settings)) for _ in range(3))
    decisions = []
    noop = min(_timed(lambda: decisions.append(decide(plan(catalogue, root / "recipes", settings), engine, pull=False)))
               for _ in range(3))
    to_build = sum(d.action == WOULD_BUILD for d in decisions[-1])
    return Measure("no-op build-all (plan + engine look-ups)",
                   f"{noop:.2f} s for {len(decisions[-1])} entries ({to_build} out of date)",
                   f"{noop / render:.2f}x rendering alone", "near 1: asking the engine costs little beside rendering")


def rebuilds_after_touch(root: Path, settings: BuildSettings) -> Measure:
    """Edit one family's recipe (the catalogue's first) in a copy of the project and count the
    fingerprints that change."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp)
        for name in ("images", "recipes"):
            shutil.copytree(root / name, copy / name)
        planned = plan(load_catalogue(copy / "images"), copy / "recipes", settings)
        before = {i.target.key: i.fingerprint for i in planned}
        family = planned[0].target.family.family
        recipe = copy / "recipes" / planned[0].target.family.recipe_dir / "recipe.j2"
        # A shell no-op inside the build script: the rendered text changes, as with any real edit.
        recipe.write_text(recipe.read_text().replace("{% endmacro %}", ": touched by invoke bench\n{% endmacro %}", 1))
        after = {i.target.key: i.fingerprint for i in plan(load_catalogue(copy / "images"), copy / "recipes", settings)}
    changed = [k for k in before if before[k] != after[k]]
    own = [k for k in before if k.startswith(f"{family}/")]
    return Measure(f"rebuilds after touching recipes/{family}", f"{len(changed)} of {len(before)} entries",
                   f"{len(changed) / len(own):.2f}x the {family} entries", "1.00x: exactly the images that use it")


def stage_sizes(images: List[PlannedImage], engine: Engine, mirror: SourceMirror, build_dir: Path) -> List[Measure]:
    """Runtime image size against its build stage, for each built RELION image."""
    measures = []
    (build_dir / "logs").mkdir(parents=True, exist_ok=True)
    for image in images:
        runtime = engine.image(fingerprint_ref(image))
        if image.target.family.family != "relion" or runtime is None:
            continue
        try:
            context = prepare_context(image, mirror, build_dir)  # the build stage is cached: this re-tags it
            with open(build_dir / "logs" / "bench.log", "a") as log:
                engine.build(context, build_stage_ref(image), {}, log, target="build")  # cached: a re-tag
        except CryostackError as exc:  # e.g. the source is not staged here: this measure only is missing
            measures.append(missing(f"{image.target.key} runtime / build stage", str(exc)))
            continue
        stage = engine.image(build_stage_ref(image))
        measures.append(Measure(f"{image.target.key} runtime / build stage",
                                f"{runtime.size / 1e6:.0f} MB / {stage.size / 1e6:.0f} MB",
                                f"{runtime.size / stage.size:.2f}", "below 1: the runtime stage leaves the compilers behind"))
    return measures


def sif_conversion(record) -> List[Measure]:
    """SIF conversion time and size against the image build, from the build record."""
    measures = []
    for key, entry in sorted(record.images.items()):
        if entry.sif is None or not entry.sif.seconds or not entry.seconds:
            continue
        measures.append(Measure(f"{key} SIF conversion", f"{entry.sif.seconds:.0f} s, {entry.sif.size / 1e6:.0f} MB",
                                f"{entry.sif.seconds / entry.seconds:.2f}x build time; "
                                f"{entry.sif.size / max(entry.size, 1):.2f}x image size", "SIF is squashfs-compressed"))
    return measures


def matrix_cost(root: Path, settings: BuildSettings, engine: Engine, mirror: SourceMirror, selector: str,
                work: Path) -> List[Measure]:
    """What the matrix costs with BuildKit's caches, side by side in one run: the first two buildable
    variants SELECTOR names are built, the first cold, the second after it (sharing apt and compiler
    caches), then the first again after a one-line edit of its build script. All caches are in a
    namespace of their own, so the cold build is cold and the user's caches are untouched."""
    bench_settings = replace(settings, cache_namespace=f"cryostack-bench-{os.getpid()}-{int(time.time())}")
    images = [i for i in plan(load_catalogue(root / "images"), root / "recipes", bench_settings, selector)
              if not i.target.blocked]
    if len(images) < 2:
        return [missing("matrix cost", f"--matrix {selector!r}: needs two buildable variants, found {len(images)}")]
    first, second = images[:2]
    tags = []

    def timed_build(image: PlannedImage, build_dir: Path, no_cache: bool = False) -> float:
        context = prepare_context(image, mirror, build_dir)
        tag = f"cryostack-bench/{image.target.family.family}:{image.target.tag}-{len(tags)}"
        tags.append(tag)
        with open(work / "bench-builds.log", "a") as log:
            return _timed(lambda: engine.build(context, tag, {}, log, no_cache=no_cache))

    try:
        cold = timed_build(first, work / "a", no_cache=True)
        after = timed_build(second, work / "b")
        edited = replace(first, files=dict(first.files, **{"build.sh": first.files["build.sh"] + ": edited by invoke bench\n"}))
        edit = timed_build(edited, work / "a")
    finally:
        for tag in tags:
            engine.untag(tag)
    return [
        Measure(f"second variant: {second.target.key} after {first.target.key}",
                f"{after:.0f} s vs {cold:.0f} s cold", f"{after / cold:.2f}x the cold build",
                "below 1: apt layers and compiled host code come from the cache"),
        Measure(f"one-line recipe edit of {first.target.key}", f"{edit:.0f} s vs {cold:.0f} s cold",
                f"{edit / cold:.2f}x the cold build", "below 1: the compiler cache serves the unchanged sources"),
    ]


def wrapper_cost(prefix: Path, command: str, partition: Optional[str]) -> Measure:
    """The generated dispatcher and wrapper against a direct `apptainer exec` of the same SIF."""
    from .cluster.overhead import wrapper_overhead

    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    if partition:
        env["SLURM_JOB_PARTITION"] = partition
    result = wrapper_overhead(prefix, command, env=env)
    return Measure(f"wrapper overhead: {command}", f"+{result.overhead_ms:.1f} ms ({result.wrapped_ms:.1f} ms vs "
                   f"{result.direct_ms:.1f} ms direct, median of {result.runs})", f"{result.ratio:.3f}x a direct exec",
                   "target: within 20 ms of `apptainer exec` of the same SIF")


def missing(name: str, why: str) -> Measure:
    return Measure(name, "n/a", "n/a", why)



def runtime_race(images: List[PlannedImage], engine: Engine, baseline: Optional[str], rounds: int,
                 work: Path) -> Tuple[List[Measure], bool]:
    """The same RELION 2D classification in every built RELION CPU image, in turns; each one's
    median time as a ratio to the baseline's. False when a run failed or computed another result."""
    from . import runtime_bench as race

    cpu = [i for i in images if i.target.family.family == "relion" and i.target.variant.accel == "cpu"]
    built = [i for i in cpu if engine.image(readable_ref(i))]
    if not built:
        return [missing("2D classification", f"no RELION CPU image built yet: {run_hint('build --only relion')}")], True
    # An image for CPU features this machine lacks cannot run here: said, not counted as a failure.
    present = set(Path("/proc/cpuinfo").read_text(errors="replace").split())

    def runs_here(image: PlannedImage) -> bool:
        return set(hardware.cpu_flags(image.target.variant.cpu_features)[1]) <= present

    skipped = [missing(f"2D classification in {i.target.key}", "not run: it needs "
                       f"{', '.join(hardware.cpu_flags(i.target.variant.cpu_features)[0])}, which this CPU lacks")
               for i in built if not runs_here(i)]
    contenders = [race.Contender(i.target.key, readable_ref(i)) for i in built if runs_here(i)]
    if not contenders:
        return skipped, True
    generic = [i.target.key for i in cpu if not i.target.variant.cpu_features]
    chosen = race.baseline_of(contenders, generic, baseline)
    contenders = race.ordered(contenders)
    workload = race.Workload()
    race.race(contenders, chosen, workload, rounds, work, lambda ref, script, workdir: engine.run(
        ref, script, timeout=3600, volumes={str(workdir): {"bind": "/bench", "mode": "rw"}}))
    rows, agreed = [], True
    for contender in contenders:
        value, ratio, agrees = race.verdict(contender, chosen)
        agreed = agreed and agrees
        rows.append(Measure(f"2D classification in {contender.key}", value, ratio,
                            f"{workload.describe()}, {rounds} turns each; below 1: faster than the baseline"))
    return rows + skipped, agreed
