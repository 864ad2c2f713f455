"""What a family's functional check computes, with its parameters and tolerances (catalogue `check:`).

Each kind is one model; `kind` selects it. The defaults are the values the shipped catalogue was
measured with; a site may tighten a tolerance (or make the problem harder) in its own catalogue.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from ..values import Line


class _Check(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout: int = Field(1800, ge=10, le=86400, description="seconds the computation may take in the image")


class ReconstructionCheck(_Check):
    """Project a synthetic density into views at known angles (relion_project), reconstruct it
    (relion_reconstruct, no CTF) and compare it with the truth by FSC."""

    kind: Literal["reconstruction"]
    box: int = Field(64, ge=32, le=256, description="box size of the density, in pixels (even)")
    pixel_size: float = Field(2.0, gt=0.1, le=20.0, description="Å per pixel")
    views: int = Field(2000, ge=100, le=50000, description="projections at uniformly random angles")
    blobs: int = Field(12, ge=3, le=200, description="Gaussian blobs in the synthetic density")
    resolution: float = Field(description="FSC against the truth must stay >= 0.5 out to this resolution (Å)")
    seed: int = Field(1, ge=0, description="makes the density and the angles the same every run")

    @field_validator("box")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"box {value} must be even (RELION's Fourier conventions)")
        return value

    @field_validator("resolution")
    @classmethod
    def _resolvable(cls, value: float, info: ValidationInfo) -> float:
        pixel_size, box = info.data.get("pixel_size"), info.data.get("box")
        if pixel_size is None or box is None:
            return value
        if value < 2.0 * pixel_size:
            raise ValueError(f"resolution {value:g} Å is finer than Nyquist ({2 * pixel_size:g} Å at "
                             f"{pixel_size:g} Å/px): give {2 * pixel_size:g} Å or more")
        if value > box * pixel_size / 2:
            raise ValueError(f"resolution {value:g} Å is coarser than the box's second Fourier shell "
                             f"({box * pixel_size / 2:g} Å): the check would measure nothing")
        return value


class CtfEstimationCheck(_Check):
    """Simulate an astigmatic micrograph with known defocus and angle; CTFFIND must recover them."""

    kind: Literal["ctf-estimation"]
    size: int = Field(2048, ge=512, le=8192, description="micrograph edge, in pixels")
    pixel_size: float = Field(1.0, gt=0.1, le=10.0, description="Å per pixel")
    voltage: float = Field(300.0, ge=60.0, le=1000.0, description="acceleration voltage, kV")
    spherical_aberration: float = Field(2.7, ge=0.0, le=10.0, description="Cs, mm")
    amplitude_contrast: float = Field(0.07, ge=0.0, lt=1.0)
    # CTFFIND's search: the amplitude spectrum size, the resolution range fitted, the defocus range
    spectrum_box: int = Field(512, ge=128, le=2048, description="CTFFIND's amplitude spectrum size")
    min_resolution: float = Field(30.0, gt=0.0, description="lowest resolution CTFFIND fits, Å")
    max_resolution: float = Field(5.0, gt=0.0, description="highest resolution CTFFIND fits, Å")
    min_defocus: float = Field(5000.0, ge=0.0, description="CTFFIND's defocus search range, Å")
    max_defocus: float = Field(50000.0, gt=0.0)
    defocus_step: float = Field(100.0, ge=1.0)
    # the truth, and how close CTFFIND must come to it
    defocus_1: float = Field(description="defocus along the first axis, Å (positive: underfocus)")
    defocus_2: float = Field(description="defocus along the second axis, Å")
    angle: float = Field(description="azimuth of the first axis, degrees from x")
    defocus_tolerance: float = Field(gt=0.0, description="largest error allowed on each defocus, Å")
    angle_tolerance: float = Field(gt=0.0, le=45.0, description="largest error allowed on the angle, degrees")
    seed: int = Field(1, ge=0)

    @field_validator("spectrum_box")
    @classmethod
    def _fits(cls, value: int, info: ValidationInfo) -> int:
        size = info.data.get("size")
        if size is not None and value > size:
            raise ValueError(f"spectrum_box {value} is larger than the micrograph ({size})")
        return value

    @field_validator("max_resolution")
    @classmethod
    def _finer(cls, value: float, info: ValidationInfo) -> float:
        lowest, pixel_size = info.data.get("min_resolution"), info.data.get("pixel_size")
        if lowest is not None and not value < lowest:
            raise ValueError(f"max_resolution {value:g} Å must be finer (smaller) than min_resolution {lowest:g} Å")
        if pixel_size is not None and value < 2 * pixel_size:
            raise ValueError(f"max_resolution {value:g} Å is beyond Nyquist ({2 * pixel_size:g} Å)")
        return value

    @field_validator("defocus_1", "defocus_2")
    @classmethod
    def _searched(cls, value: float, info: ValidationInfo) -> float:
        low, high = info.data.get("min_defocus"), info.data.get("max_defocus")
        if low is not None and high is not None and not low < value < high:
            raise ValueError(f"{value:g} Å lies outside CTFFIND's search range {low:g}..{high:g} Å")
        return value

    @field_validator("defocus_tolerance")
    @classmethod
    def _measurable(cls, value: float, info: ValidationInfo) -> float:
        first, second = info.data.get("defocus_1"), info.data.get("defocus_2")
        if first is not None and second is not None and abs(first - second) < 2 * value:
            raise ValueError(f"the astigmatism (defocus_1 - defocus_2 = {abs(first - second):g} Å) must exceed "
                             f"twice defocus_tolerance ({2 * value:g} Å), or the angle is not measurable")
        return value


class MoleculeMapCheck(_Check):
    """Chimera, headless: open a generated PDB, make a density map from it (molmap), measure the map
    and save an image of the scene off screen."""

    kind: Literal["molecule-map"]
    atoms: int = Field(60, ge=4, le=5000, description="carbon atoms in the generated model")
    resolution: float = Field(6.0, ge=1.0, le=30.0, description="molmap resolution, Å")
    width: int = Field(320, ge=32, le=4096, description="image width, pixels")
    height: int = Field(240, ge=32, le=4096, description="image height, pixels")
    position_tolerance: float = Field(0.5, gt=0.0, description="centroid error allowed, Å")
    size_tolerance: float = Field(0.3, gt=0.0, description="radius-of-gyration error allowed, Å")
    seed: int = Field(1, ge=0)


class PickingSetupCheck(_Check):
    """crYOLO without model weights: write a training configuration for generated data (cryolo_gui.py
    config) and low-pass filter a synthetic micrograph the way crYOLO does before every pick."""

    kind: Literal["picking-setup"]
    box: int = Field(64, ge=16, le=1024, description="particle box size, pixels")
    size: int = Field(1024, ge=256, le=4096, description="micrograph edge, pixels")
    low_pass_cutoff: float = Field(0.1, gt=0.0, lt=0.5, description="absolute frequency (cycles/pixel)")
    passband_gain: float = Field(0.8, gt=0.0, le=1.0,
                                 description="least gain below 0.3 x cutoff (the signal crYOLO keeps)")
    stopband_gain: float = Field(0.05, ge=0.0, lt=1.0,
                                 description="largest gain above 1.2 x cutoff (the noise it removes)")
    seed: int = Field(1, ge=0)


class NoCheck(_Check):
    """No computation can be checked for this family here; the reason says why."""

    kind: Literal["none"]
    reason: Line = Field(min_length=10, description="why no real check is possible")


CheckSpec = Annotated[
    Union[ReconstructionCheck, CtfEstimationCheck, MoleculeMapCheck, PickingSetupCheck, NoCheck],
    Field(discriminator="kind"),
]

