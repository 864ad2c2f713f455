"""Functional checks: declarations validate with file:line errors, and each judge computes the right
verdict on inputs whose answer is known (no image needed; the real images are tested in
tests/integration/test_checks.py)."""

from __future__ import annotations

import json
import math
import re
import struct
import zlib
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from cryostack.catalogue import load_catalogue
from cryostack.checks import ctf_estimation, molecule_map, picking_setup, reconstruction
from cryostack.checks.ctf import Astigmatism, Optics, ctf, simulate_micrograph
from cryostack.checks.fsc import fsc
from cryostack.checks.run import run_check
from cryostack.checks.spec import (CtfEstimationCheck, MoleculeMapCheck, NoCheck, PickingSetupCheck,
                                   ReconstructionCheck)
from cryostack.errors import InputError
from helpers import ROOT, cryostack


# --- declarations ---------------------------------------------------------------------------

def test_every_shipped_family_declares_a_check_that_validates():
    catalogue = load_catalogue(ROOT / "images")
    for name, family in catalogue.families.items():
        assert family.check is not None, f"images/{name}.yaml declares no check"
        for version in family.versions:
            assert family.check_of(version).kind in ("reconstruction", "ctf-estimation", "molecule-map",
                                                     "picking-setup", "none")


def _line_of(text: str, needle: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), 1) if line.strip().startswith(needle))


def _set(key: str, value: str):
    """An edit of the check's KEY (a two-space-indented key of its block), whatever its value was."""
    def edit(text: str) -> str:
        return re.sub(rf"\n  {key}: [^\n]*\n", f"\n  {key}: {value}\n" if value else "\n", text, count=1)
    return edit


def _then(*edits):
    def edit(text: str) -> str:
        for one in edits:
            text = one(text)
        return text
    return edit


BAD_CHECKS = [
    # (file, edit, the line it must name (starts with), fragment of the message)
    ("relion", _then(_set("pixel_size", "2.0"), _set("resolution", "1.5")), "resolution: 1.5",
     "check.resolution: resolution 1.5 Å is finer than Nyquist (4 Å at 2 Å/px): give 4 Å or more"),
    ("relion", lambda t: re.sub(r"\n  views:", "\n  veiws:", t), "veiws:",
     "check.veiws: unknown key 'veiws' (did you mean 'views'? valid keys: blobs, box, kind, pixel_size"),
    ("relion", _set("views", "many"), "views: many", "check.views: Input should be a valid integer"),
    ("relion", _set("box", "63"), "box: 63", "check.box: box 63 must be even"),
    ("ctffind", _set("defocus_tolerance", "-300"), "defocus_tolerance: -300",
     "check.defocus_tolerance: Input should be greater than 0"),
    ("ctffind", _then(_set("defocus_1", "16000"), _set("defocus_2", "15800"), _set("defocus_tolerance", "300")),
     "defocus_tolerance: 300",
     "check.defocus_tolerance: the astigmatism (defocus_1 - defocus_2 = 200 Å) must exceed twice defocus_tolerance"),
    ("ctffind", _set("defocus_1", "60000"), "defocus_1: 60000",
     "check.defocus_1: 60000 Å lies outside CTFFIND's search range 5000..50000 Å"),
    ("ctffind", _set("angle", ""), "check:", "check: missing required key 'angle'"),
    ("chimera", _set("kind", "molecule-mapp"), "check:", "does not match any of the expected tags"),
    ("cryolo", lambda t: re.sub(r"check:\n  kind: [^\n]*\n(  .*\n)*", "check:\n  kind: none\n", t), "check:",
     "check: missing required key 'reason'"),
]


@pytest.mark.parametrize("family, edit, needle, fragment", BAD_CHECKS, ids=[c[3][:40] for c in BAD_CHECKS])
def test_bad_check_declarations_name_file_line_and_key(project: Path, family, edit, needle, fragment):
    path = project / "images" / f"{family}.yaml"
    broken = edit(path.read_text())
    assert broken != path.read_text()
    path.write_text(broken)
    with pytest.raises(InputError) as caught:
        load_catalogue(project / "images")
    message = str(caught.value)
    assert message.startswith(f"{path}:{_line_of(broken, needle)}: "), message
    assert fragment in message and "\n" not in message


def test_a_bad_check_stops_the_cli_with_exit_2_and_one_line(project: Path):
    path = project / "images" / "relion.yaml"
    path.write_text(re.sub(r"\n  resolution: [0-9.]+\n", "\n  resolution: 1.5\n", path.read_text()))
    result = cryostack("--root", str(project), "matrix")
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "relion.yaml:" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_site_can_tighten_a_version_s_check(project: Path):
    path = project / "images" / "relion.yaml"
    text = path.read_text().replace('''  "5.0.1":
''', '''  "5.0.1":
    check: {kind: reconstruction, box: 64, pixel_size: 2.0, views: 3000, resolution: 5.0}
''')
    path.write_text(text)
    relion = load_catalogue(project / "images").families["relion"]
    assert relion.check_of("5.0.1").resolution == 5.0 and relion.check_of("5.0.1").views == 3000
    assert relion.check_of("3.1.3").resolution == relion.check.resolution


# --- FSC -------------------------------------------------------------------------------------

def _noise_map(box: int = 64, seed: int = 3) -> np.ndarray:
    """A map with every Fourier coefficient of amplitude 1 and a random phase: each shell's FSC is
    then a plain average over its voxels, with no weighting by chance amplitudes."""
    spectrum = np.fft.rfftn(np.random.default_rng(seed).standard_normal((box, box, box)))
    return np.fft.irfftn(spectrum / np.abs(spectrum), s=(box, box, box), axes=(0, 1, 2))


def test_identical_maps_correlate_to_nyquist():
    truth = _noise_map()
    curve = fsc(truth, truth.copy(), pixel_size=1.5)
    assert np.allclose(curve.values[1:], 1.0)
    assert curve.crossing(0.5) == 32 and curve.resolution(curve.crossing(0.5)) == pytest.approx(3.0)
    assert curve.holds_to(3.0)


def test_fsc_ignores_a_blur_but_not_a_shift():
    truth = _noise_map()
    box = truth.shape[0]
    k = np.fft.fftfreq(box)
    blur = np.exp(-40 * (k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2))
    blurred = np.fft.ifftn(np.fft.fftn(truth) * blur).real
    # A per-shell scale (a B-factor) leaves the phases and so the FSC unchanged (up to the blur's
    # change across one shell's width).
    assert np.all(fsc(truth, blurred, 1.0).values[1:] > 0.98)
    # A shift by d pixels turns each shell's FSC into sin(x)/x with x = 2 pi r d / box, which first
    # falls to 0.5 at x = 1.8955.
    shift = 2
    curve = fsc(truth, np.roll(truth, shift, axis=2), 1.0)
    expected = 1.8955 * box / (2 * math.pi * shift)
    assert curve.crossing(0.5) == pytest.approx(expected, abs=0.5)
    radius = np.arange(5, 20)
    x = 2 * math.pi * radius * shift / box
    # (each shell is one pixel thick, so it averages sin(x)/x over x +- pi d / box: a few hundredths)
    assert np.allclose(curve.values[5:20], np.sin(x) / x, atol=0.05)
    assert not curve.holds_to(4.0) and curve.holds_to(8.0)


# --- relion: reconstruction ------------------------------------------------------------------

def _reconstruction_spec(**changes) -> ReconstructionCheck:
    return ReconstructionCheck(**{"kind": "reconstruction", "box": 32, "pixel_size": 2.0, "views": 500,
                                  "resolution": 8.0, **changes})


def test_reconstruction_input_is_a_density_and_views_relion_reads(tmp_path: Path):
    import starfile
    spec = _reconstruction_spec()
    script = reconstruction.prepare(spec, tmp_path, "5.0.1")
    assert "relion_project --i truth.mrc --o projections --ang views.star --angpix 2" in script
    assert "relion_reconstruct --i projections.star --o reconstruction.mrc --angpix 2" in script
    with mrcfile.open(tmp_path / "truth.mrc") as mrc:
        assert mrc.data.shape == (32, 32, 32) and float(mrc.voxel_size.x) == pytest.approx(2.0)
        density = np.asarray(mrc.data)
    assert density.max() > 0.5 and density[0, 0, 0] < 1e-3  # blobs inside, nothing at the edges
    assert not np.allclose(density, density[::-1, ::-1, ::-1], atol=0.05)  # no inversion symmetry
    tables = starfile.read(tmp_path / "views.star", always_dict=True)
    assert set(tables) == {"optics", "particles"}
    views = tables["particles"]
    assert len(views) == 500 and {"rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi", "rlnOpticsGroup"} <= set(views)
    # Uniform over the sphere: cos(tilt) is uniform on [-1, 1].
    assert abs(np.cos(np.radians(views["rlnAngleTilt"])).mean()) < 0.1
    assert float(tables["optics"]["rlnImagePixelSize"][0]) == 2.0


def _write_reconstruction(tmp_path: Path, data: np.ndarray) -> None:
    with mrcfile.new(tmp_path / "reconstruction.mrc", overwrite=True) as mrc:
        mrc.set_data(data.astype(np.float32))


def test_reconstruction_equal_to_the_truth_passes_to_nyquist(tmp_path: Path):
    spec = _reconstruction_spec()
    reconstruction.prepare(spec, tmp_path, "5.0.1")
    with mrcfile.open(tmp_path / "truth.mrc") as mrc:
        _write_reconstruction(tmp_path, 3.0 * np.asarray(mrc.data))  # RELION's scale is arbitrary
    result = reconstruction.judge(spec, tmp_path, 0, "")
    assert result.passed, result.summary
    assert "to Nyquist (4.0 Å)" in result.summary and "needs 8.0 Å" in result.summary
    assert result.measures["fsc_resolution"] == pytest.approx(4.0)


def test_a_misplaced_reconstruction_fails_with_its_numbers(tmp_path: Path):
    spec = _reconstruction_spec()
    reconstruction.prepare(spec, tmp_path, "5.0.1")
    with mrcfile.open(tmp_path / "truth.mrc") as mrc:
        _write_reconstruction(tmp_path, np.roll(np.asarray(mrc.data), 3, axis=0))
    result = reconstruction.judge(spec, tmp_path, 0, "")
    assert not result.passed
    assert re.search(r"FSC 0\.5 at \d+\.\d Å \(needs 8\.0 Å or better\), 500 views", result.summary), result.summary
    assert result.measures["fsc_resolution"] > 8.0


def test_a_crashed_relion_fails_with_its_signal(tmp_path: Path):
    spec = _reconstruction_spec()
    reconstruction.prepare(spec, tmp_path, "5.0.1")
    result = reconstruction.judge(spec, tmp_path, 139, "Reading map\nSegmentation fault\n")
    assert not result.passed and result.summary == "RELION died of SIGSEGV (exit 139): Segmentation fault"


# --- ctffind: ctf-estimation -----------------------------------------------------------------

CTF_SPEC = dict(kind="ctf-estimation", defocus_1=16000, defocus_2=14500, angle=35, defocus_tolerance=300,
                angle_tolerance=5, size=1024)

# The summary CTFFIND 4.1.14 wrote for the shipped check's micrograph (the columns it documents).
CTFFIND_OUTPUT = """\
# Output from CTFFind version 4.1.14, run on 2026-11-23 11:54:13
# Input file: micrograph.mrc ; Number of micrographs: 1
# Pixel size: 1.000 Angstroms ; acceleration voltage: 300.0 keV ; spherical aberration: 2.70 mm ; amplitude contrast: 0.07
# Box size: 512 pixels ; min. res.: 30.0 Angstroms ; max. res.: 5.0 Angstroms ; min. def.: 5000.0 um; max. def. 50000.0 um
# Columns: #1 - micrograph number; #2 - defocus 1 [Angstroms]; #3 - defocus 2; #4 - azimuth of astigmatism; #5 - additional phase shift [radians]; #6 - cross correlation; #7 - spacing (in Angstroms) up to which CTF rings were fit successfully
1.000000 {d1} {d2} {angle} 0.000000 0.674534 2.401338
"""


def _ctffind_wrote(tmp_path: Path, d1: float, d2: float, angle: float) -> None:
    (tmp_path / "diagnostic.txt").write_text(CTFFIND_OUTPUT.format(d1=d1, d2=d2, angle=angle))


def test_ctffind_results_are_read_from_its_summary_file(tmp_path: Path):
    _ctffind_wrote(tmp_path, 16005.855469, 14502.181641, 35.089201)
    assert ctf_estimation.read_results(tmp_path / "diagnostic.txt") == (16005.855469, 14502.181641, 35.089201)
    result = ctf_estimation.judge(CtfEstimationCheck(**CTF_SPEC), tmp_path, 0, "")
    assert result.passed, result.summary
    assert result.measures["defocus_1_error"] == pytest.approx(5.9, abs=0.05)
    assert result.measures["defocus_2_error"] == pytest.approx(2.2, abs=0.05)
    assert result.measures["angle_error"] == pytest.approx(0.09, abs=0.005)


@pytest.mark.parametrize("d1, d2, angle", [(14500, 16000, 125), (16000, 14500, 215), (16000, 14500, -145),
                                           (14520, 16010, -55)])
def test_the_same_ellipse_written_another_way_passes(tmp_path: Path, d1, d2, angle):
    _ctffind_wrote(tmp_path, d1, d2, angle)
    assert ctf_estimation.judge(CtfEstimationCheck(**CTF_SPEC), tmp_path, 0, "").passed


def test_a_wrong_defocus_fails_with_the_numbers(tmp_path: Path):
    _ctffind_wrote(tmp_path, 16900, 14480, 36.0)
    result = ctf_estimation.judge(CtfEstimationCheck(**CTF_SPEC), tmp_path, 0, "")
    assert not result.passed
    assert result.summary == ("defocus 16900/14480 Å at 36.0° (truth 16000/14500 Å at 35.0°): errors 900 and 20 Å "
                              "(allowed 300), 1.0° (allowed 5)")


def test_a_wrong_angle_fails(tmp_path: Path):
    _ctffind_wrote(tmp_path, 16000, 14500, 80)
    result = ctf_estimation.judge(CtfEstimationCheck(**CTF_SPEC), tmp_path, 0, "")
    assert not result.passed and "45.0° (allowed 5)" in result.summary


def test_a_crashing_ctffind_fails_with_its_signal(tmp_path: Path):
    output = "Do you want to set expert options?                 : Segmentation fault\n"
    result = ctf_estimation.judge(CtfEstimationCheck(**CTF_SPEC), tmp_path, 139, output)
    assert not result.passed
    assert result.summary.startswith("ctffind died of SIGSEGV (exit 139)")


def test_the_simulated_micrograph_carries_the_astigmatism_it_claims(tmp_path: Path):
    spec = CtfEstimationCheck(**CTF_SPEC)
    script = ctf_estimation.prepare(spec, tmp_path, "4.1.14")
    assert script == "cd /check && ctffind < answers.txt\n"
    answers = (tmp_path / "answers.txt").read_text().splitlines()
    assert answers[:3] == ["micrograph.mrc", "diagnostic.mrc", "1"] and len(answers) == 17
    with mrcfile.open(tmp_path / "micrograph.mrc") as mrc:
        image = np.asarray(mrc.data, dtype=np.float64)
        assert image.shape == (1024, 1024) and float(mrc.voxel_size.x) == 1.0
    power = np.abs(np.fft.rfft2(image)) ** 2
    ky = np.fft.fftfreq(1024)[:, None]
    kx = np.fft.rfftfreq(1024)[None, :]
    ring = (np.hypot(kx, ky) > 1 / 30) & (np.hypot(kx, ky) < 1 / 5)
    optics = Optics(1.0, 300, 2.7, 0.07)

    def agreement(angle: float) -> float:
        model = ctf(optics, Astigmatism(16000, 14500, angle), kx, ky) ** 2
        return float(np.corrcoef(power[ring], model[ring])[0, 1])

    assert agreement(35) > 0.3
    assert agreement(35) > 2 * agreement(125)  # the axes are where the truth says, not swapped


def test_micrograph_simulation_is_repeatable():
    optics = Optics(1.0, 300, 2.7, 0.07)
    first = simulate_micrograph(256, optics, Astigmatism(12000, 11000, 10), seed=4)
    assert np.array_equal(first, simulate_micrograph(256, optics, Astigmatism(12000, 11000, 10), seed=4))


# --- chimera: molecule-map -------------------------------------------------------------------

def _png(pixels: np.ndarray, filters=(0, 1, 2, 3, 4)) -> bytes:
    """An RGB PNG whose rows use the given filter types in turn (written here independently)."""
    height, width, _ = pixels.shape
    data = pixels.astype(np.int64)
    rows = []
    for r in range(height):
        kind = filters[r % len(filters)]
        line, prior = data[r].reshape(-1), (data[r - 1].reshape(-1) if r else np.zeros(width * 3, np.int64))
        left = np.concatenate([np.zeros(3, np.int64), line[:-3]])
        corner = np.concatenate([np.zeros(3, np.int64), prior[:-3]])
        if kind == 0:
            out = line
        elif kind == 1:
            out = line - left
        elif kind == 2:
            out = line - prior
        elif kind == 3:
            out = line - (left + prior) // 2
        else:
            p = left + prior - corner
            pa, pb, pc = abs(p - left), abs(p - prior), abs(p - corner)
            out = line - np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prior, corner))
        rows.append(bytes([kind]) + bytes((out % 256).astype(np.uint8)))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))


def test_png_reader_undoes_every_filter(tmp_path: Path):
    pixels = np.random.default_rng(1).integers(0, 256, (23, 17, 3), dtype=np.uint8)
    (tmp_path / "x.png").write_bytes(_png(pixels))
    assert np.array_equal(molecule_map.png_pixels(tmp_path / "x.png"), pixels)


def _chimera_output(tmp_path: Path, spec: MoleculeMapCheck, centroid_offset=0.0, atoms=None) -> str:
    centroid, gyration = molecule_map.expected_map(molecule_map.read_pdb(tmp_path / "model.pdb"), spec.resolution)
    image = np.full((spec.height, spec.width, 3), 255, np.uint8)
    image[100:140, 140:180] = (40, 90, 200)
    (tmp_path / "render.png").write_bytes(_png(image))
    x, y, z = centroid + np.array([centroid_offset, 0, 0])
    count = atoms if atoms is not None else spec.atoms
    return (f"cryostack-check atoms {count}\ncryostack-check centroid {x:.4f} {y:.4f} {z:.4f}\n"
            f"cryostack-check gyration {gyration:.4f}\ncryostack-check image /check/render.png\n")


def test_chimera_script_and_model(tmp_path: Path):
    spec = MoleculeMapCheck(kind="molecule-map")
    script = molecule_map.prepare(spec, tmp_path, "1.17.3")
    assert script == ('cd /check && chimera --nogui --offscreen --silent --script '
                      '"/check/molecule_map.py /check/model.pdb /check/render.png 320 240 6"\n')
    atoms = molecule_map.read_pdb(tmp_path / "model.pdb")
    assert atoms.shape == (60, 3)
    bonds = np.linalg.norm(np.diff(atoms, axis=0), axis=1)
    assert np.allclose(bonds, 3.8, atol=0.002)
    lines = (tmp_path / "model.pdb").read_text().splitlines()
    assert lines[0][:6] == "ATOM  " and lines[0][12:16] == " CA " and lines[0][76:78] == " C"
    compile((tmp_path / "molecule_map.py").read_text(), "molecule_map.py", "exec")


def test_chimera_measures_that_match_the_model_pass(tmp_path: Path):
    spec = MoleculeMapCheck(kind="molecule-map")
    molecule_map.prepare(spec, tmp_path, "1.17.3")
    result = molecule_map.judge(spec, tmp_path, 0, _chimera_output(tmp_path, spec))
    assert result.passed, result.summary
    assert result.measures["centroid_error"] < 0.01 and 0.01 < result.measures["image_coverage"] < 0.1


def test_a_misplaced_map_or_a_lost_atom_fails(tmp_path: Path):
    spec = MoleculeMapCheck(kind="molecule-map")
    molecule_map.prepare(spec, tmp_path, "1.17.3")
    shifted = molecule_map.judge(spec, tmp_path, 0, _chimera_output(tmp_path, spec, centroid_offset=2.0))
    assert not shifted.passed and "centroid off by 2.00 Å (allowed 0.5)" in shifted.summary
    short = molecule_map.judge(spec, tmp_path, 0, _chimera_output(tmp_path, spec, atoms=59))
    assert not short.passed and "read 59 of 60 atoms" in short.summary
    output = _chimera_output(tmp_path, spec)
    (tmp_path / "render.png").write_bytes(b"GIF89a")
    no_image = molecule_map.judge(spec, tmp_path, 0, output)
    assert not no_image.passed and "no image: render.png is not a PNG file" in no_image.summary
    broken = molecule_map.judge(spec, tmp_path, 0, "cryostack-check atoms 60\n")
    assert not broken.passed and "reported no centroid, gyration" in broken.summary


# --- cryolo: picking-setup -------------------------------------------------------------------

def _cryolo_wrote(tmp_path: Path, spec: PickingSetupCheck, filtered: np.ndarray, anchors=None) -> None:
    """What crYOLO 1.9's `config` action and low-pass filter leave behind (their documented outputs)."""
    anchors = anchors or [spec.box, spec.box]
    config = {"model": {"architecture": "PhosaurusNet", "input_size": 1024, "anchors": anchors,
                        "max_box_per_image": 700, "norm": "STANDARD", "filter": [spec.low_pass_cutoff, "filtered_tmp/"]},
              "train": {"train_image_folder": "train_image", "train_annot_folder": "train_annot"}}
    (tmp_path / "config_cryolo.json").write_text(json.dumps(config))
    with mrcfile.new(tmp_path / "filtered.mrc", overwrite=True) as mrc:
        mrc.set_data(filtered.astype(np.float32))


def _low_pass(image: np.ndarray, cutoff: float) -> np.ndarray:
    size = image.shape[0]
    k = np.hypot(np.fft.fftfreq(size)[:, None], np.fft.rfftfreq(size)[None, :])
    return np.fft.irfft2(np.fft.rfft2(image) * np.clip(np.cos(np.pi * k / (2 * cutoff)), 0, None) * (k < cutoff),
                         s=image.shape)


def test_picking_setup_passes_a_low_pass_and_refuses_no_filter(tmp_path: Path):
    spec = PickingSetupCheck(kind="picking-setup", size=256, box=32)
    script = picking_setup.prepare(spec, tmp_path, "1.9.9")
    assert "cryolo_gui.py config config_cryolo.json 32 --train_image_folder train_image" in script
    boxes = (tmp_path / "train_annot" / "micrograph.box").read_text().splitlines()
    assert boxes and all(len(line.split("\t")) == 4 for line in boxes)
    with mrcfile.open(tmp_path / "train_image" / "micrograph.mrc") as mrc:
        image = np.asarray(mrc.data, dtype=np.float64)
    _cryolo_wrote(tmp_path, spec, _low_pass(image, spec.low_pass_cutoff))
    good = picking_setup.judge(spec, tmp_path, 0, "")
    assert good.passed, good.summary
    assert good.measures["stopband_gain"] < 1e-6 and good.measures["passband_gain"] > 0.85
    _cryolo_wrote(tmp_path, spec, image)
    unfiltered = picking_setup.judge(spec, tmp_path, 0, "")
    assert not unfiltered.passed and "lets 1.000 through above 1.2 x cutoff" in unfiltered.summary
    _cryolo_wrote(tmp_path, spec, _low_pass(image, spec.low_pass_cutoff), anchors=[64, 64])
    assert "anchors [64, 64] (expected [32, 32])" in picking_setup.judge(spec, tmp_path, 0, "").summary


# --- running a check -------------------------------------------------------------------------

def test_run_check_never_raises_for_a_crash_or_a_time_out():
    spec = _reconstruction_spec()
    crashed = run_check(spec, "5.0.1", lambda script, workdir: (139, "Segmentation fault"))
    assert not crashed.passed and "SIGSEGV" in crashed.summary and crashed.seconds >= 0

    def too_slow(script, workdir):
        raise TimeoutError("no answer within 1800 s")

    timed_out = run_check(spec, "5.0.1", too_slow)
    assert not timed_out.passed and timed_out.summary == "did not run to the end: TimeoutError: no answer within 1800 s"


def test_run_check_gives_the_image_a_work_directory_with_the_input(tmp_path: Path):
    seen = {}

    def image(script, workdir):
        seen.update(script=script, files=sorted(p.name for p in workdir.iterdir()), mode=workdir.stat().st_mode)
        return 0, ""

    result = run_check(_reconstruction_spec(), "5.0.1", image)
    assert seen["files"] == ["truth.mrc", "views.star"] and seen["mode"] & 0o777 == 0o777
    assert not result.passed and "wrote no reconstruction.mrc" in result.summary


def test_a_family_without_a_possible_check_says_why():
    result = run_check(NoCheck(kind="none", reason="needs licence-gated weights"), "1.0",
                       lambda s, w: pytest.fail("nothing may run"))
    assert result.passed and result.summary == "no functional check: needs licence-gated weights"
