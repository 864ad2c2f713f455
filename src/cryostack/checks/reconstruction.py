"""RELION: project a synthetic density at known angles, reconstruct it, compare with the truth by FSC.

The truth is a sum of Gaussian blobs of several widths placed without symmetry, so a wrong angle
convention, a handedness flip or a broken back-projection shows as a low FSC. The angles are
drawn here (seeded) and given to relion_project in a particle STAR file, so every run is the same.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import starfile

from .fsc import fsc
from .result import CheckResult, exit_status
from .spec import ReconstructionCheck
from ..errors import last_line

TRUTH, VIEWS, PROJECTIONS, RECONSTRUCTION = "truth.mrc", "views.star", "projections", "reconstruction.mrc"


def synthetic_density(box: int, blobs: int, seed: int) -> np.ndarray:
    """A BOX^3 float32 map of BLOBS Gaussian blobs (1 to 3 px wide, varied heights) inside a
    sphere of 0.3 x box, so no projection wraps around the box edge."""
    rng = np.random.default_rng(seed)
    centre = box / 2
    axis = np.arange(box) - centre
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    density = np.zeros((box, box, box))
    for _ in range(blobs):
        direction = rng.normal(size=3)
        position = direction / np.linalg.norm(direction) * rng.uniform(0.0, 0.3 * box)
        width = rng.uniform(1.0, 3.0)
        height = rng.uniform(0.5, 1.5)
        distance2 = (x - position[0]) ** 2 + (y - position[1]) ** 2 + (z - position[2]) ** 2
        density += height * np.exp(-distance2 / (2 * width * width))
    return density.astype(np.float32)


def uniform_views(count: int, seed: int) -> pd.DataFrame:
    """Euler angles (RELION's rot, tilt, psi in degrees) uniformly distributed over orientations."""
    rng = np.random.default_rng(seed + 1)
    return pd.DataFrame({
        "rlnAngleRot": rng.uniform(0.0, 360.0, count),
        "rlnAngleTilt": np.degrees(np.arccos(rng.uniform(-1.0, 1.0, count))),
        "rlnAnglePsi": rng.uniform(0.0, 360.0, count),
        "rlnOriginXAngst": np.zeros(count),
        "rlnOriginYAngst": np.zeros(count),
        "rlnOpticsGroup": np.ones(count, dtype=int),
    })


def write_truth_and_views(workdir: Path, box: int, pixel_size: float, blobs: int, views: int, seed: int) -> None:
    """WORKDIR/truth.mrc (a synthetic density) and WORKDIR/views.star (VIEWS uniform orientations),
    the input of relion_project --i truth.mrc --ang views.star."""
    with mrcfile.new(workdir / TRUTH, overwrite=True) as mrc:
        mrc.set_data(synthetic_density(box, blobs, seed))
        mrc.voxel_size = pixel_size
    # RELION 3.1+ particle STAR: an optics table (pixel size, voltage, Cs are required even
    # without CTF) and a particles table that refers to it.
    optics = pd.DataFrame({
        "rlnOpticsGroup": [1],
        "rlnOpticsGroupName": ["opticsGroup1"],
        "rlnImagePixelSize": [pixel_size],
        "rlnImageSize": [box],
        "rlnImageDimensionality": [2],
        "rlnVoltage": [300.0],
        "rlnSphericalAberration": [2.7],
        "rlnAmplitudeContrast": [0.1],
    })
    starfile.write({"optics": optics, "particles": uniform_views(views, seed)}, workdir / VIEWS, overwrite=True)


def prepare(spec: ReconstructionCheck, workdir: Path, version: str) -> str:
    """Write the truth map and the views STAR file; the script projects and reconstructs."""
    write_truth_and_views(workdir, spec.box, spec.pixel_size, spec.blobs, spec.views, spec.seed)
    angpix = shlex.quote(f"{spec.pixel_size:g}")
    return (
        "set -e\ncd /check\n"
        f"relion_project --i {TRUTH} --o {PROJECTIONS} --ang {VIEWS} --angpix {angpix}\n"
        f"relion_reconstruct --i {PROJECTIONS}.star --o {RECONSTRUCTION} --angpix {angpix}\n"
    )


def judge(spec: ReconstructionCheck, workdir: Path, exit_code: int, output: str) -> CheckResult:
    """FSC between reconstruction and truth: it must stay >= 0.5 out to spec.resolution."""
    if exit_code != 0:
        return CheckResult(spec.kind, False, f"RELION {exit_status(exit_code)}: {last_line(output)}")
    reconstruction = workdir / RECONSTRUCTION
    if not reconstruction.is_file():
        return CheckResult(spec.kind, False, f"relion_reconstruct wrote no {RECONSTRUCTION}: {last_line(output)}")
    with mrcfile.open(workdir / TRUTH, permissive=True) as mrc:
        truth = np.asarray(mrc.data)
    with mrcfile.open(reconstruction, permissive=True) as mrc:
        rebuilt = np.asarray(mrc.data)
    if rebuilt.shape != truth.shape:
        return CheckResult(spec.kind, False, f"the reconstruction is {rebuilt.shape}, the truth {truth.shape}")
    curve = fsc(truth, rebuilt, spec.pixel_size)
    crossing = curve.crossing(0.5)
    measured = curve.resolution(crossing)
    passed = curve.holds_to(spec.resolution, 0.5)
    at_nyquist = crossing >= spec.box // 2
    where = f"stays >= 0.5 to Nyquist ({curve.nyquist:.1f} Å)" if at_nyquist else f"0.5 at {measured:.1f} Å"
    summary = (f"FSC {where} (needs {spec.resolution:.1f} Å or better), {spec.views} views, "
               f"box {spec.box}, {spec.pixel_size:g} Å/px")
    return CheckResult(spec.kind, passed, summary, {
        "fsc_resolution": round(float(measured), 3),
        "required_resolution": spec.resolution,
        "fsc_at_required": round(float(np.interp(curve.shell(spec.resolution), np.arange(len(curve.values)),
                                                 curve.values)), 4),
        "views": float(spec.views),
    })
