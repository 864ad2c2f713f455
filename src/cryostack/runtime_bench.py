"""`bench --runtime`: the same small RELION 2D classification in every built CPU image, side by side.

This is how a site chooses the image for its CPU queue. The particles are made once, with
relion_project of a synthetic density in the baseline image plus white noise. Every image then
classifies that same stack with the same seed. The images take turns (A B A B), so a change in
the machine's load falls on all of them alike. Each image's median time is printed as a ratio to
the baseline's, and what it computed is compared with the baseline's: a faster image that
computes something else is no choice.
"""

from __future__ import annotations

import re
import shlex
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

from .checks.reconstruction import TRUTH, VIEWS, write_truth_and_views
from .errors import InputError, last_line
from .values import version_order

# Runs a shell script in an image with the work directory at /bench: (exit code, output).
RunIn = Callable[[str, str, Path], Tuple[int, str]]

PARTICLES = "particles"
# What every run must agree on with the baseline: the noise power it estimated in the shells the
# refinement used, where the signal is weak. That is the model of the data, whichever local
# optimum the classes settle in. The final log-likelihood is printed but not judged: it depends on
# the optimum, and summation order alone (vector width, threads) moved a classification of one
# RELION version into another one here (5.0.1 generic against an AVX-512 build: 10 % apart), as
# did another version's initialisation (4.0.1: 10 % apart on one stack, 0.4 % on another).
# The noise estimates of 4.0.1 and 3.1.3 agreed with 5.0.1's within 0.3 %.
NOISE = 0.02


@dataclass(frozen=True)
class Workload:
    """The 2D classification every image runs: RELION's `relion_refine --cpu` on synthetic particles."""

    particles: int = 600
    box: int = 64
    pixel_size: float = 2.0
    classes: int = 4
    iterations: int = 4
    threads: int = 2
    # Standard deviation of the white noise, against a signal whose standard deviation is about 7.
    noise: float = 8.0
    seed: int = 7

    def describe(self) -> str:
        return (f"{self.particles} particles, box {self.box}, K={self.classes}, {self.iterations} iterations, "
                f"--cpu --j {self.threads}")


@dataclass(frozen=True)
class Run:
    """One timed classification: its wall time and final log-likelihood, or what went wrong."""

    seconds: float = 0.0
    log_likelihood: float = 0.0
    noise: float = 0.0
    # How many orientations relion_refine said it searched first: the same work in every image.
    orientations: int = 0
    problem: Optional[str] = None


@dataclass
class Contender:
    """A built CPU image and its runs."""

    key: str
    ref: str
    runs: List[Run] = field(default_factory=list)

    @property
    def problem(self) -> Optional[str]:
        return next((run.problem for run in self.runs if run.problem), None)

    @property
    def median(self) -> float:
        return statistics.median(run.seconds for run in self.runs)

    @property
    def log_likelihood(self) -> float:
        return self.runs[-1].log_likelihood

    @property
    def noise(self) -> float:
        return self.runs[-1].noise

    @property
    def version(self) -> str:
        return self.key.split("/")[1]


def baseline_of(contenders: Sequence[Contender], generic: Sequence[str], chosen: Optional[str]) -> Contender:
    """CHOSEN (a key) if given, else the newest version's build among the GENERIC keys (those that need
    no CPU feature), else the newest build of all."""
    if chosen:
        for contender in contenders:
            if contender.key == chosen:
                return contender
        built = ", ".join(c.key for c in contenders) or "none"
        raise InputError(f"--baseline {chosen}: not a built RELION CPU image (built: {built})")
    pool = [c for c in contenders if c.key in generic] or list(contenders)
    return max(pool, key=lambda c: (version_order(c.version), c.key in generic))


def particles_script(workload: Workload) -> str:
    """relion_project the truth at the views in the STAR file, adding white noise."""
    return ("set -e\ncd /bench\n"
            f"relion_project --i {TRUTH} --o {PARTICLES} --ang {VIEWS} --angpix {workload.pixel_size:g} "
            f"--add_noise --white_noise {workload.noise:g} > project.log 2>&1 || {{ tail -n 3 project.log; exit 1; }}\n")


def classification_script(workload: Workload, run: str) -> str:
    """The timed relion_refine run; it prints `seconds <wall time>` when it finished. The in-plane
    step is 360/32 degrees: RELION 5 silently rounds other steps to such a fraction (10 becomes
    5.625, 64 angles against 4.0's 36), and the versions would not do the same work."""
    out = shlex.quote(f"/bench/{run}")
    options = (f"--i {PARTICLES}.star --o {out}/run --K {workload.classes} --iter {workload.iterations} "
               f"--tau2_fudge 2 --particle_diameter {int(workload.box * workload.pixel_size * 0.85)} "
               "--zero_mask --flatten_solvent --dont_check_norm --psi_step 11.25 --offset_range 4 --offset_step 2 "
               f"--pad 2 --pool 30 --random_seed {workload.seed} --cpu --j {workload.threads}")
    return (f"cd /bench && mkdir -p {out}\n"
            "start=$(date +%s.%N)\n"
            f"relion_refine {options} > {out}/log 2>&1 || {{ status=$?; tail -n 3 {out}/log; exit $status; }}\n"
            "end=$(date +%s.%N)\n"
            'echo "seconds $start $end"\n')


def prepare(workload: Workload, workdir: Path) -> None:
    """Write the truth map and the views STAR file the particles are projected from."""
    write_truth_and_views(workdir, workload.box, workload.pixel_size, 40, workload.particles, workload.seed)


def read_run(workload: Workload, workdir: Path, run: str, code: int, output: str) -> Run:
    """The wall time the script printed, the final iteration's log-likelihood and the mean noise
    power it estimated from an eighth of the box out to the last shell it refined."""
    import starfile

    if code != 0:
        return Run(problem=f"exit {code}: {last_line(output)}")
    times = [line.split()[1:] for line in output.splitlines() if line.startswith("seconds ")]
    model = workdir / run / f"run_it{workload.iterations:03d}_model.star"
    if not times or not model.is_file():
        return Run(problem=f"no iteration {workload.iterations} model: {last_line(output)}")
    blocks = starfile.read(model, always_dict=True)
    general = blocks["model_general"]
    # RELION 3.1 writes the noise spectrum per group, 4.0 and later per optics group.
    spectrum = next(blocks[name] for name in ("model_optics_group_1", "model_group_1") if name in blocks)
    shells = spectrum["rlnSigma2Noise"].iloc[workload.box // 8:int(general["rlnCurrentImageSize"]) // 2]
    start, end = (float(t) for t in times[-1])
    sampled = re.search(r"NrOrientations= *(\d+)", (workdir / run / "log").read_text(errors="replace"))
    return Run(seconds=end - start, log_likelihood=float(general["rlnLogLikelihood"]), noise=float(shells.mean()),
               orientations=int(sampled.group(1)) if sampled else 0)


def race(contenders: Sequence[Contender], baseline: Contender, workload: Workload, rounds: int, workdir: Path,
         run_in: RunIn) -> None:
    """Make the particles in the baseline image, then run every contender once per round, in turn."""
    prepare(workload, workdir)
    code, output = run_in(baseline.ref, particles_script(workload), workdir)
    if code != 0:
        for contender in contenders:
            contender.runs.append(Run(problem=f"relion_project in {baseline.key} failed: {last_line(output)}"))
        return
    for round_ in range(rounds):
        for number, contender in enumerate(contenders):
            if contender.problem:
                continue
            run = f"run-{number}-{round_}"
            code, output = run_in(contender.ref, classification_script(workload, run), workdir)
            contender.runs.append(read_run(workload, workdir, run, code, output))


def verdict(contender: Contender, baseline: Contender) -> Tuple[str, str, bool]:
    """(times, ratio and comparison, whether the result agrees with the baseline's) for one contender."""
    if contender.problem:
        return f"did not finish: {contender.problem}", "n/a", False
    times = ", ".join(f"{run.seconds:.1f}" for run in contender.runs)
    value = f"median {contender.median:.1f} s ({times} s)"
    if baseline.problem:
        return value, f"no ratio: the baseline {baseline.key} did not finish", False
    ratio = f"{contender.median / baseline.median:.2f}x {baseline.key}"
    if contender.runs[-1].orientations != baseline.runs[-1].orientations:
        return value, (f"no ratio: it searched {contender.runs[-1].orientations} orientations, the baseline "
                       f"{baseline.runs[-1].orientations} (not the same work)"), False
    if contender is baseline:
        return value, f"{ratio} (baseline); log-likelihood {baseline.log_likelihood:.6g}", True
    noise = _apart(contender.noise, baseline.noise)
    agrees = noise <= NOISE
    said = "agrees" if agrees else "DIFFERS"
    return value, (f"{ratio}; estimated noise power {said} with the baseline's ({noise * 100:.2f} %, allowed "
                   f"{NOISE * 100:g} %); log-likelihood "
                   f"{_apart(contender.log_likelihood, baseline.log_likelihood) * 100:.2f} % apart"), agrees


def _apart(value: float, reference: float) -> float:
    return abs(value - reference) / abs(reference)


def ordered(contenders: Sequence[Contender]) -> List[Contender]:
    """Newest version first, then by key: the order of the lines and of the turns."""
    by_key = sorted(contenders, key=lambda c: c.key)
    return sorted(by_key, key=lambda c: version_order(c.version), reverse=True)
