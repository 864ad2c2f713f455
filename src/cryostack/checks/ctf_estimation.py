"""CTFFIND: recover the known defocus and astigmatism of a simulated micrograph.

CTFFIND 4.1 asks its questions on stdin; the script answers them in the order of its interactive
mode for a single (non-movie) image without expert options.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import mrcfile

from .ctf import Astigmatism, Optics, simulate_micrograph
from .result import CheckResult, exit_status
from .spec import CtfEstimationCheck
from ..errors import last_line

MICROGRAPH, DIAGNOSTIC, ANSWERS = "micrograph.mrc", "diagnostic.mrc", "answers.txt"
RESULTS = "diagnostic.txt"  # CTFFIND names its summary after the diagnostic image


def answers(spec: CtfEstimationCheck) -> List[str]:
    """CTFFIND 4.1's prompts, answered in order (src/programs/ctffind/ctffind.cpp, interactive mode)."""
    return [
        MICROGRAPH,                          # Input image file name
        DIAGNOSTIC,                          # Output diagnostic image file name
        f"{spec.pixel_size:g}",              # Pixel size
        f"{spec.voltage:g}",                 # Acceleration voltage
        f"{spec.spherical_aberration:g}",    # Spherical aberration
        f"{spec.amplitude_contrast:g}",      # Amplitude contrast
        str(spec.spectrum_box),              # Size of amplitude spectrum to compute
        f"{spec.min_resolution:g}",          # Minimum resolution
        f"{spec.max_resolution:g}",          # Maximum resolution
        f"{spec.min_defocus:g}",             # Minimum defocus
        f"{spec.max_defocus:g}",             # Maximum defocus
        f"{spec.defocus_step:g}",            # Defocus search step
        "no",                                # Do you know what astigmatism is present?
        "no",                                # Slower, more exhaustive search?
        "no",                                # Use a restraint on astigmatism?
        "no",                                # Find additional phase shift?
        "no",                                # Do you want to set expert options?
    ]


def prepare(spec: CtfEstimationCheck, workdir: Path, version: str) -> str:
    """Write the simulated micrograph and CTFFIND's answers; the script runs ctffind on them."""
    optics = Optics(spec.pixel_size, spec.voltage, spec.spherical_aberration, spec.amplitude_contrast)
    truth = Astigmatism(spec.defocus_1, spec.defocus_2, spec.angle)
    with mrcfile.new(workdir / MICROGRAPH, overwrite=True) as mrc:
        mrc.set_data(simulate_micrograph(spec.size, optics, truth, spec.seed))
        mrc.voxel_size = spec.pixel_size
    (workdir / ANSWERS).write_text("\n".join(answers(spec)) + "\n")
    return f"cd /check && ctffind < {ANSWERS}\n"


def read_results(path: Path) -> Tuple[float, float, float]:
    """Defocus 1, defocus 2 (Å) and astigmatism azimuth (degrees) of the first micrograph in a
    CTFFIND 4 summary file (comment lines start with '#')."""
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            columns = [float(word) for word in line.split()]
            if len(columns) < 4:
                raise ValueError(f"{path.name}: expected at least 4 columns, got {line.strip()!r}")
            return columns[1], columns[2], columns[3]
    raise ValueError(f"{path.name} holds no result line")


def angle_difference(first: float, second: float) -> float:
    """The difference of two astigmatism azimuths, in degrees, modulo 180 (an axis has no sign)."""
    return abs((first - second + 90.0) % 180.0 - 90.0)


def match(truth: Astigmatism, found: Astigmatism) -> Tuple[float, float, float]:
    """Errors (defocus 1, defocus 2, angle) of FOUND against TRUTH, taking the reading that fits
    best: CTFFIND may report the two axes in either order, the second one 90 degrees on."""
    readings = [found, Astigmatism(found.defocus_2, found.defocus_1, found.angle + 90.0)]
    errors = [(abs(r.defocus_1 - truth.defocus_1), abs(r.defocus_2 - truth.defocus_2),
               angle_difference(r.angle, truth.angle)) for r in readings]
    return min(errors, key=lambda e: (max(e[0], e[1]), e[2]))


def judge(spec: CtfEstimationCheck, workdir: Path, exit_code: int, output: str) -> CheckResult:
    """Defocus 1 and 2 within spec.defocus_tolerance and the angle within spec.angle_tolerance."""
    if exit_code != 0:
        return CheckResult(spec.kind, False, f"ctffind {exit_status(exit_code)}: {last_line(output)}",
                           {"exit_code": float(exit_code)})
    results = workdir / RESULTS
    try:
        found = Astigmatism(*read_results(results))
    except (OSError, ValueError) as exc:
        return CheckResult(spec.kind, False, f"no CTFFIND result to judge ({exc}): {last_line(output)}")
    truth = Astigmatism(spec.defocus_1, spec.defocus_2, spec.angle)
    error_1, error_2, error_angle = match(truth, found)
    passed = max(error_1, error_2) <= spec.defocus_tolerance and error_angle <= spec.angle_tolerance
    summary = (f"defocus {found.defocus_1:.0f}/{found.defocus_2:.0f} Å at {found.angle:.1f}° "
               f"(truth {truth.defocus_1:.0f}/{truth.defocus_2:.0f} Å at {truth.angle:.1f}°): errors "
               f"{error_1:.0f} and {error_2:.0f} Å (allowed {spec.defocus_tolerance:g}), "
               f"{error_angle:.1f}° (allowed {spec.angle_tolerance:g})")
    return CheckResult(spec.kind, passed, summary, {
        "defocus_1": round(found.defocus_1, 1),
        "defocus_2": round(found.defocus_2, 1),
        "angle": round(found.angle, 2),
        "defocus_1_error": round(error_1, 1),
        "defocus_2_error": round(error_2, 1),
        "angle_error": round(error_angle, 2),
    })
