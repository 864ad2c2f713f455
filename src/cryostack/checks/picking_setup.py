"""crYOLO without model weights (its weights and training data are licence-gated downloads): write
the training configuration for a generated data set with crYOLO's own command, and run the
low-pass filter crYOLO applies to every micrograph before it trains or picks.

The filter is measured, not compared with a copy of crYOLO's code: its amplitude response (output
over input power, per Fourier shell) must pass what lies well below the cutoff and stop what lies
well above it.
"""

from __future__ import annotations

import json
from pathlib import Path

import mrcfile
import numpy as np

from .result import CheckResult, exit_status
from .spec import PickingSetupCheck
from ..errors import last_line

IMAGES, ANNOTATIONS, CONFIG = "train_image", "train_annot", "config_cryolo.json"
MICROGRAPH, FILTERED = "micrograph.mrc", "filtered.mrc"

FILTER_SCRIPT = (
    "import sys\n"
    "from cryolo import imagereader, lowpass\n"
    "image = lowpass.filter_single_image(sys.argv[1], float(sys.argv[2]))\n"
    "imagereader.image_write(sys.argv[3], image[0] if image.ndim == 3 else image)\n"
)


def particles(size: int, box: int, seed: int) -> np.ndarray:
    """Centres (x, y) of non-overlapping particles on a SIZE x SIZE micrograph."""
    rng = np.random.default_rng(seed)
    centres = []
    for _ in range(2000):
        candidate = rng.uniform(box, size - box, 2)
        if all(np.hypot(*(candidate - other)) >= box for other in centres):
            centres.append(candidate)
        if len(centres) >= 40:
            break
    return np.array(centres)


def micrograph(size: int, box: int, centres: np.ndarray, seed: int) -> np.ndarray:
    """White noise (every frequency present, for measuring the filter) plus soft round particles."""
    rng = np.random.default_rng(seed + 1)
    y, x = np.mgrid[0:size, 0:size]
    image = rng.standard_normal((size, size))
    for cx, cy in centres:
        image += 2.0 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * (box / 4) ** 2))
    return image.astype(np.float32)


def prepare(spec: PickingSetupCheck, workdir: Path, version: str) -> str:
    """A micrograph with EMAN box annotations; the script configures crYOLO and filters it."""
    (workdir / IMAGES).mkdir()
    (workdir / ANNOTATIONS).mkdir()
    centres = particles(spec.size, spec.box, spec.seed)
    with mrcfile.new(workdir / IMAGES / MICROGRAPH, overwrite=True) as mrc:
        mrc.set_data(micrograph(spec.size, spec.box, centres, spec.seed))
    # EMAN .box: lower-left corner x, y, then width and height, one particle per line.
    (workdir / ANNOTATIONS / "micrograph.box").write_text("".join(
        f"{cx - spec.box / 2:.0f}\t{cy - spec.box / 2:.0f}\t{spec.box}\t{spec.box}\n" for cx, cy in centres))
    (workdir / "lowpass.py").write_text(FILTER_SCRIPT)
    return (
        "set -e\ncd /check\n"
        f"cryolo_gui.py config {CONFIG} {spec.box} --train_image_folder {IMAGES} --train_annot_folder {ANNOTATIONS} "
        f"--filter LOWPASS --low_pass_cutoff {spec.low_pass_cutoff:g}\n"
        f"python lowpass.py {IMAGES}/{MICROGRAPH} {spec.low_pass_cutoff:g} {FILTERED}\n"
    )


def amplitude_response(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """sqrt(output power / input power) per Fourier shell (1 pixel wide) of two square images;
    index = shell radius in pixels, frequency = radius / size cycles per pixel."""
    size = before.shape[0]
    freq = np.fft.fftfreq(size) * size
    half = np.fft.rfftfreq(size) * size
    shells = np.rint(np.hypot(freq[:, None], half[None, :])).astype(int)
    inside = shells <= size // 2
    power_in = np.bincount(shells[inside], (np.abs(np.fft.rfft2(before)) ** 2)[inside], minlength=size // 2 + 1)
    power_out = np.bincount(shells[inside], (np.abs(np.fft.rfft2(after)) ** 2)[inside], minlength=size // 2 + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(np.where(power_in > 0, power_out / power_in, 0.0))


def judge(spec: PickingSetupCheck, workdir: Path, exit_code: int, output: str) -> CheckResult:
    """The configuration says what was asked for, and the filter passes low and stops high frequencies."""
    if exit_code != 0:
        return CheckResult(spec.kind, False, f"crYOLO {exit_status(exit_code)}: {last_line(output)}")
    problems = []
    try:
        config = json.loads((workdir / CONFIG).read_text())
        model, train = config.get("model", {}), config.get("train", {})
        if model.get("anchors") != [spec.box, spec.box]:
            problems.append(f"anchors {model.get('anchors')} (expected [{spec.box}, {spec.box}])")
        if not model.get("filter") or abs(float(model["filter"][0]) - spec.low_pass_cutoff) > 1e-9:
            problems.append(f"filter {model.get('filter')} (expected a low-pass at {spec.low_pass_cutoff:g})")
        if (train.get("train_image_folder"), train.get("train_annot_folder")) != (IMAGES, ANNOTATIONS):
            problems.append("training folders not as given")
    except (OSError, ValueError, AttributeError, TypeError, IndexError) as exc:
        problems.append(f"no readable {CONFIG}: {exc}")
    try:
        with mrcfile.open(workdir / IMAGES / MICROGRAPH, permissive=True) as mrc:
            before = np.asarray(mrc.data, dtype=np.float64)
        with mrcfile.open(workdir / FILTERED, permissive=True) as mrc:
            after = np.squeeze(np.asarray(mrc.data, dtype=np.float64))
    except (OSError, ValueError) as exc:
        return CheckResult(spec.kind, False, f"no filtered micrograph ({exc}); {'; '.join(problems)}".rstrip("; "))
    if after.shape != before.shape:
        return CheckResult(spec.kind, False, f"the filtered micrograph is {after.shape}, the input {before.shape}")
    gain = amplitude_response(before, after)
    cutoff_shell = spec.low_pass_cutoff * spec.size
    shells = np.arange(len(gain))
    passband = float(gain[(shells >= 1) & (shells <= 0.3 * cutoff_shell)].min())
    stopband = float(gain[shells >= 1.2 * cutoff_shell].max())
    if passband < spec.passband_gain:
        problems.append(f"passes only {passband:.2f} of the signal below 0.3 x cutoff")
    if stopband > spec.stopband_gain:
        problems.append(f"lets {stopband:.3f} through above 1.2 x cutoff")
    summary = (f"config for box {spec.box}; low-pass at {spec.low_pass_cutoff:g}/px: gain >= {passband:.2f} below "
               f"0.3 x cutoff (needs {spec.passband_gain:g}), <= {stopband:.3f} above 1.2 x cutoff "
               f"(allowed {spec.stopband_gain:g})" + (f"; {'; '.join(problems)}" if problems else ""))
    return CheckResult(spec.kind, not problems, summary, {
        "passband_gain": round(passband, 4),
        "stopband_gain": round(stopband, 5),
    })
