"""The contrast transfer function as CTFFIND models it, and micrographs simulated through it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def electron_wavelength(kilovolts: float) -> float:
    """Relativistic electron wavelength in Å for an acceleration voltage in kV."""
    volts = kilovolts * 1e3
    return 12.2643247 / math.sqrt(volts * (1.0 + volts * 0.978466e-6))


@dataclass(frozen=True)
class Optics:
    """Microscope and recording: what CTFFIND is told, besides the image."""

    pixel_size: float  # Å
    voltage: float  # kV
    spherical_aberration: float  # mm
    amplitude_contrast: float  # fraction


@dataclass(frozen=True)
class Astigmatism:
    """Defocus along the two axes of the ellipse (Å, positive = underfocus) and the azimuth of
    the first axis (degrees from the image's x axis), as CTFFIND reports them."""

    defocus_1: float
    defocus_2: float
    angle: float

    def defocus_at(self, azimuth: np.ndarray) -> np.ndarray:
        mean = 0.5 * (self.defocus_1 + self.defocus_2)
        half_difference = 0.5 * (self.defocus_1 - self.defocus_2)
        return mean + half_difference * np.cos(2.0 * (azimuth - math.radians(self.angle)))


def ctf(optics: Optics, astigmatism: Astigmatism, kx: np.ndarray, ky: np.ndarray) -> np.ndarray:
    """CTF values at spatial frequencies (kx, ky) in 1/Å (phase-contrast sign convention of CTFFIND)."""
    wavelength = electron_wavelength(optics.voltage)
    cs = optics.spherical_aberration * 1e7  # mm -> Å
    k2 = kx * kx + ky * ky
    defocus = astigmatism.defocus_at(np.arctan2(ky, kx))
    chi = math.pi * wavelength * k2 * defocus - 0.5 * math.pi * cs * wavelength ** 3 * k2 * k2
    amplitude = optics.amplitude_contrast
    return -(math.sqrt(1.0 - amplitude * amplitude) * np.sin(chi) + amplitude * np.cos(chi))


def simulate_micrograph(size: int, optics: Optics, astigmatism: Astigmatism, seed: int,
                        bfactor: float = 60.0, background: float = 0.25) -> np.ndarray:
    """A SIZE x SIZE micrograph (float32, [y, x]): white specimen noise imaged through the CTF with a
    B-factor envelope, plus detector noise with a smoothly falling spectrum, as in a thin, amorphous
    ice image. Its power spectrum shows Thon rings over a background, which is what CTFFIND fits."""
    rng = np.random.default_rng(seed)
    ky = np.fft.fftfreq(size, d=optics.pixel_size)[:, None]
    kx = np.fft.rfftfreq(size, d=optics.pixel_size)[None, :]
    k2 = kx * kx + ky * ky
    envelope = np.exp(-0.25 * bfactor * k2)
    specimen = np.fft.rfft2(rng.standard_normal((size, size)))
    detector = np.fft.rfft2(rng.standard_normal((size, size)))
    # The detector's spectrum falls off gently (modulation transfer), so the background is not flat.
    mtf = 1.0 / (1.0 + k2 * (optics.pixel_size * 2.0) ** 2)
    spectrum = specimen * ctf(optics, astigmatism, kx, ky) * envelope + math.sqrt(background) * detector * mtf
    image = np.fft.irfft2(spectrum, s=(size, size))
    return (image / image.std()).astype(np.float32)
