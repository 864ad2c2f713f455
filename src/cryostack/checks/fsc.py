"""Fourier shell correlation between two maps, and the resolution where it falls below a threshold."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FscCurve:
    """FSC per Fourier shell: `values[r]` for shells of radius r = 0 .. box/2 (pixels)."""

    values: np.ndarray
    box: int
    pixel_size: float

    def resolution(self, shell: float) -> float:
        """The resolution (Å) of a shell radius (pixels)."""
        return self.box * self.pixel_size / shell if shell > 0 else float("inf")

    def shell(self, resolution: float) -> float:
        """The shell radius (pixels) of a resolution (Å)."""
        return self.box * self.pixel_size / resolution

    @property
    def nyquist(self) -> float:
        return 2.0 * self.pixel_size

    def crossing(self, threshold: float = 0.5) -> float:
        """The shell radius (pixels, interpolated) where the FSC first drops below THRESHOLD; the
        Nyquist shell (box/2) when it never does."""
        for radius in range(1, len(self.values)):
            if self.values[radius] < threshold:
                above, below = self.values[radius - 1], self.values[radius]
                return radius - 1 + (above - threshold) / (above - below)
        return float(len(self.values) - 1)

    def holds_to(self, resolution: float, threshold: float = 0.5) -> bool:
        """Does the FSC stay at or above THRESHOLD for every shell out to RESOLUTION (Å)?"""
        last = int(np.floor(self.shell(resolution) + 1e-9))
        return bool(np.all(self.values[1:last + 1] >= threshold))


def fsc(first: np.ndarray, second: np.ndarray, pixel_size: float) -> FscCurve:
    """FSC of two cubic maps of the same size, in shells one Fourier pixel wide."""
    if first.shape != second.shape or len(set(first.shape)) != 1 or first.ndim != 3:
        raise ValueError(f"maps must be cubes of the same size (got {first.shape} and {second.shape})")
    box = first.shape[0]
    f1 = np.fft.rfftn(first.astype(np.float64))
    f2 = np.fft.rfftn(second.astype(np.float64))
    full = np.fft.fftfreq(box) * box
    half = np.fft.rfftfreq(box) * box
    radius = np.sqrt(full[:, None, None] ** 2 + full[None, :, None] ** 2 + half[None, None, :] ** 2)
    shells = np.rint(radius).astype(int)
    inside = shells <= box // 2
    # The rfft stores half of the transform; the other half holds the conjugates, which add the
    # same to each sum, so the ratio is unaffected.
    index = shells[inside]
    cross = np.bincount(index, (f1 * np.conj(f2)).real[inside], minlength=box // 2 + 1)
    power1 = np.bincount(index, (np.abs(f1) ** 2)[inside], minlength=box // 2 + 1)
    power2 = np.bincount(index, (np.abs(f2) ** 2)[inside], minlength=box // 2 + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(power1 * power2 > 0, cross / np.sqrt(power1 * power2), 0.0)
    return FscCurve(values, box, pixel_size)
