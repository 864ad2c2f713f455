"""`invoke bench`: the speed and size targets, measured on this machine and printed as ratios."""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List

from .build import WOULD_BUILD, build_stage_ref, decide, fingerprint_ref
from .catalogue import load_catalogue
from .engine.base import Engine
from .plan import PlannedImage, plan
from .settings import BuildSettings


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


def rebuilds_after_touch(root: Path, settings: BuildSettings, family: str = "ctffind") -> Measure:
    """Edit one family's recipe in a copy of the project and count the fingerprints that change."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp)
        for name in ("images", "recipes"):
            shutil.copytree(root / name, copy / name)
        before = {i.target.key: i.fingerprint for i in plan(load_catalogue(copy / "images"), copy / "recipes", settings)}
        recipe = copy / "recipes" / family / "recipe.j2"
        # A shell no-op inside the build script: the rendered text changes, as with any real edit.
        recipe.write_text(recipe.read_text().replace("{% endmacro %}", ": touched by invoke bench\n{% endmacro %}", 1))
        after = {i.target.key: i.fingerprint for i in plan(load_catalogue(copy / "images"), copy / "recipes", settings)}
    changed = [k for k in before if before[k] != after[k]]
    own = [k for k in before if k.startswith(f"{family}/")]
    return Measure(f"rebuilds after touching recipes/{family}", f"{len(changed)} of {len(before)} entries",
                   f"{len(changed) / len(own):.2f}x the {family} entries", "1.00x: exactly the images that use it")


def stage_sizes(images: List[PlannedImage], engine: Engine, build_dir: Path) -> List[Measure]:
    """Runtime image size against its build stage, for each built RELION image."""
    measures = []
    for image in images:
        runtime = engine.image(fingerprint_ref(image))
        if image.target.family.family != "relion" or runtime is None:
            continue
        context = build_dir / image.target.key
        with open(build_dir / "logs" / "bench.log", "a") as log:
            engine.build(context, build_stage_ref(image), {}, log, target="build")  # cached: a re-tag
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


def missing(name: str, why: str) -> Measure:
    return Measure(name, "n/a", "n/a", why)

