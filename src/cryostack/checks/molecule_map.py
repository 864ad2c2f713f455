"""Chimera, headless: open a generated model, simulate its density map (molmap), measure the map, and
save an image of the scene without a display.

The model is a self-avoiding chain of carbon atoms 3.8 Å apart (a C-alpha trace), so the truth is
known exactly: the map of equal Gaussians has the atoms' centroid, and its radius of gyration is
sqrt(Rg_atoms^2 + 3 sigma^2) with molmap's sigma = resolution / (pi * sqrt(2)).
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from .result import CheckResult, exit_status
from .spec import MoleculeMapCheck
from ..errors import last_line

MODEL, IMAGE, SCRIPT = "model.pdb", "render.png", "molecule_map.py"
MARK = "cryostack-check"
# molmap's default sigmaFactor: the Gaussian width per Å of resolution.
SIGMA_FACTOR = 1.0 / (math.pi * math.sqrt(2.0))

# Chimera 1.x runs Python 2.7 scripts (this one is also valid Python 3, so tests can compile it);
# it prints what it measured on lines marked MARK.
CHIMERA_SCRIPT = '''\
# Run by Chimera (Python 2.7) for cryostack's functional check:
#   chimera --nogui --offscreen --silent --script "molecule_map.py MODEL IMAGE WIDTH HEIGHT RESOLUTION"
import sys
import numpy
import chimera
from chimera import runCommand

model, image, width, height, resolution = sys.argv[1:6]
molecule = chimera.openModels.open(model, type="PDB")[0]
print("MARK atoms %d" % len(molecule.atoms))
runCommand("molmap #%d %s gridSpacing 1" % (molecule.id, resolution))
from VolumeViewer import volume_list
volume = volume_list()[-1]
values = volume.full_matrix().astype(numpy.float64)
k, j, i = numpy.indices(values.shape)
origin, step = volume.data.origin, volume.data.step
x, y, z = origin[0] + step[0] * i, origin[1] + step[1] * j, origin[2] + step[2] * k
total = values.sum()
centre = [(values * axis).sum() / total for axis in (x, y, z)]
spread = (values * ((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2)).sum() / total
print("MARK centroid %.4f %.4f %.4f" % tuple(centre))
print("MARK gyration %.4f" % spread ** 0.5)
runCommand("copy file %s png width %s height %s supersample 1" % (image, width, height))
print("MARK image %s" % image)
'''.replace("MARK", MARK)


def carbon_chain(count: int, seed: int, bond: float = 3.8) -> np.ndarray:
    """COUNT x 3 coordinates (Å) of a self-avoiding random chain with steps of BOND Å."""
    rng = np.random.default_rng(seed)
    atoms = [np.zeros(3)]
    while len(atoms) < count:
        for _ in range(1000):
            step = rng.normal(size=3)
            candidate = atoms[-1] + bond * step / np.linalg.norm(step)
            if all(np.linalg.norm(candidate - other) >= bond * 0.99 for other in atoms[:-1]):
                break
        atoms.append(candidate)
    return np.array(atoms)


def pdb_text(coordinates: np.ndarray) -> str:
    """A PDB file of C-alpha atoms (fixed columns as the PDB format defines them)."""
    lines = []
    for serial, (x, y, z) in enumerate(coordinates, 1):
        lines.append(f"ATOM  {serial:5d}  CA  GLY A{serial:4d}    {x:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00           C")
    lines += ["TER", "END"]
    return "\n".join(lines) + "\n"


def read_pdb(path: Path) -> np.ndarray:
    """The coordinates of the ATOM/HETATM records of a PDB file."""
    rows = [[float(line[30:38]), float(line[38:46]), float(line[46:54])]
            for line in path.read_text().splitlines() if line.startswith(("ATOM  ", "HETATM"))]
    return np.array(rows)


def prepare(spec: MoleculeMapCheck, workdir: Path, version: str) -> str:
    """Write the model and Chimera's script; the shell script runs Chimera headless on them."""
    (workdir / MODEL).write_text(pdb_text(carbon_chain(spec.atoms, spec.seed)))
    (workdir / SCRIPT).write_text(CHIMERA_SCRIPT)
    arguments = f"/check/{SCRIPT} /check/{MODEL} /check/{IMAGE} {spec.width} {spec.height} {spec.resolution:g}"
    return f'cd /check && chimera --nogui --offscreen --silent --script "{arguments}"\n'


def reported(output: str) -> Dict[str, List[str]]:
    """The values the Chimera script printed on its marked lines."""
    found = {}
    for line in output.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == MARK:
            found[words[1]] = words[2:]
    return found


def png_pixels(path: Path) -> np.ndarray:
    """The pixels (height x width x channels, uint8) of an 8-bit, non-interlaced PNG."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path.name} is not a PNG file")
    position, header, compressed = 8, None, b""
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            compressed += body
        position += 12 + length
    if header is None:
        raise ValueError(f"{path.name} has no IHDR chunk")
    width, height, depth, colour, _, _, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace:
        raise ValueError(f"{path.name}: only 8-bit, non-interlaced grey/RGB(A) PNGs are read here")
    raw = np.frombuffer(zlib.decompress(compressed), dtype=np.uint8).reshape(height, 1 + width * channels)
    return _unfilter(raw, channels).reshape(height, width, channels)


def _unfilter(raw: np.ndarray, bpp: int) -> np.ndarray:
    """Undo PNG's per-row filters (none, sub, up, average, Paeth)."""
    rows = np.zeros((raw.shape[0], raw.shape[1] - 1), dtype=np.int64)
    for r, (kind, line) in enumerate(zip(raw[:, 0], raw[:, 1:].astype(np.int64))):
        previous = rows[r - 1] if r else np.zeros_like(line)
        if kind in (0, 2):
            rows[r] = (line + (previous if kind == 2 else 0)) % 256
            continue
        out = np.zeros_like(line)
        for i in range(len(line)):
            left = out[i - bpp] if i >= bpp else 0
            up, corner = previous[i], previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                predictor = left
            elif kind == 3:
                predictor = (left + up) // 2
            else:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                predictor = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
            out[i] = (line[i] + predictor) % 256
        rows[r] = out
    return rows.astype(np.uint8)


def expected_map(atoms: np.ndarray, resolution: float) -> Tuple[np.ndarray, float]:
    """Centroid and radius of gyration of molmap's map of equal atoms: each atom a Gaussian of
    sigma = SIGMA_FACTOR x resolution, so the variances add (3 sigma^2 over three axes)."""
    centroid = atoms.mean(axis=0)
    sigma = SIGMA_FACTOR * resolution
    return centroid, math.sqrt(((atoms - centroid) ** 2).sum(axis=1).mean() + 3 * sigma * sigma)


def judge(spec: MoleculeMapCheck, workdir: Path, exit_code: int, output: str) -> CheckResult:
    """Atom count exact, map centroid and radius of gyration within tolerance, and an image of the
    requested size in which the molecule covers part of the background."""
    if exit_code != 0:
        return CheckResult(spec.kind, False, f"chimera {exit_status(exit_code)}: {last_line(output)}")
    values = reported(output)
    missing = [name for name in ("atoms", "centroid", "gyration") if name not in values]
    if missing:
        return CheckResult(spec.kind, False, f"chimera reported no {', '.join(missing)}: {last_line(output)}")
    atoms = read_pdb(workdir / MODEL)
    centroid, gyration = expected_map(atoms, spec.resolution)
    read_atoms = int(values["atoms"][0])
    position_error = float(np.linalg.norm(np.array([float(v) for v in values["centroid"][:3]]) - centroid))
    size_error = abs(float(values["gyration"][0]) - gyration)
    problems = []
    if read_atoms != len(atoms):
        problems.append(f"read {read_atoms} of {len(atoms)} atoms")
    image, coverage = workdir / IMAGE, 0.0
    try:
        pixels = png_pixels(image)
        height, width = pixels.shape[:2]
        background = pixels[0, 0]
        coverage = float(np.any(pixels != background, axis=2).mean())
        if (width, height) != (spec.width, spec.height):
            problems.append(f"image is {width}x{height}, not {spec.width}x{spec.height}")
        if not 0.005 <= coverage <= 0.99:
            problems.append(f"image shows no molecule ({coverage:.1%} of pixels differ from the background)")
    except (OSError, ValueError, zlib.error) as exc:
        problems.append(f"no image: {exc}")
    passed = not problems and position_error <= spec.position_tolerance and size_error <= spec.size_tolerance
    summary = (f"molmap of {read_atoms} atoms at {spec.resolution:g} Å: centroid off by {position_error:.2f} Å "
               f"(allowed {spec.position_tolerance:g}), radius of gyration off by {size_error:.2f} Å "
               f"(allowed {spec.size_tolerance:g}); image {spec.width}x{spec.height}, {coverage:.0%} molecule"
               + (f"; {'; '.join(problems)}" if problems else ""))
    return CheckResult(spec.kind, passed, summary, {
        "atoms": float(read_atoms),
        "centroid_error": round(position_error, 3),
        "gyration_error": round(size_error, 3),
        "image_coverage": round(coverage, 4),
    })

