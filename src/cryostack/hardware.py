"""The instance table: GPUs, CUDA SM, EFA, placement groups and CPU features per EC2 instance family.

One table ships with the package (hardware.yaml beside this file); a site adds or replaces rows
under `hardware:` in its site file. Everything that depends on the hardware (GPUs per node, --gres,
EFA, placement groups, which queue is a CPU queue, which image serves which family) asks here, and
an instance type the table does not know is refused rather than guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Dict, FrozenSet, Iterable, List, Literal, Mapping, Optional, Tuple

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from .values import Line
from .yamlfile import load_model

TABLE = Path(__file__).with_name("hardware.yaml")

FamilyName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,15}$")]
SizeName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,15}$")]
# An EC2 instance type as ParallelCluster takes it: family.size, lower case.
INSTANCE_TYPE = r"^[a-z][a-z0-9-]{0,15}\.[a-z0-9][a-z0-9-]{0,15}$"
InstanceTypeName = Annotated[str, StringConstraints(pattern=INSTANCE_TYPE)]


# What each CPU feature a variant may need means in /proc/cpuinfo flags, and its name for people.
# avx512: what GCC's -march=skylake-avx512 and Intel's -xCORE-AVX512 may emit (Foundation,
# Conflict Detection, Byte/Word, Doubleword/Quadword, Vector Length); every Intel AVX-512 CPU in
# the table has all five.
CPU_FLAGS: Dict[str, Tuple[str, Tuple[str, ...]]] = {
    "avx512": ("AVX-512", ("avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl")),
}


def cpu_flags(features: Iterable[str]) -> Tuple[List[str], List[str]]:
    """(names for people, /proc/cpuinfo flags) of FEATURES."""
    names = [CPU_FLAGS[f][0] for f in features]
    flags = [flag for f in features for flag in CPU_FLAGS[f][1]]
    return names, flags


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Gpu(Strict):
    model: Line
    sm: int = Field(ge=30, le=200, description="CUDA streaming-multiprocessor version, e.g. 89 for sm_89")


class Cpu(Strict):
    vendor: Literal["intel", "amd"]
    avx512: bool


class FamilyRow(Strict):
    """One instance family: a row of the table."""

    gpu: Optional[Gpu] = None
    gpus: Dict[SizeName, Annotated[int, Field(ge=1, le=16)]] = Field(
        default_factory=dict, description="GPUs per size (GPU families); its keys are the sizes")
    sizes: List[SizeName] = Field(default_factory=list, description="the sizes (CPU-only families)")
    efa: List[SizeName] = Field(default_factory=list, description="sizes that support EFA")
    placement_group: bool = True
    cpu: Cpu

    @model_validator(mode="after")
    def _consistent(self) -> "FamilyRow":
        if self.gpu and not self.gpus:
            raise ValueError("a GPU family lists its sizes under 'gpus' (size: GPUs per instance)")
        if self.gpus and not self.gpu:
            raise ValueError("'gpus' needs 'gpu' (model and sm)")
        if self.gpus and self.sizes:
            raise ValueError("give either 'gpus' (GPU families) or 'sizes' (CPU families), not both")
        if not self.gpus and not self.sizes:
            raise ValueError("give the family's sizes: 'sizes' (CPU families) or 'gpus' (GPU families)")
        unknown = sorted(set(self.efa) - set(self.all_sizes))
        if unknown:
            raise ValueError(f"efa names sizes the family does not have: {', '.join(unknown)}")
        return self

    @property
    def all_sizes(self) -> List[str]:
        return list(self.gpus) if self.gpus else list(self.sizes)

    @property
    def features(self) -> FrozenSet[str]:
        return frozenset({"avx512"} if self.cpu.avx512 else set())


class HardwareFile(Strict):
    families: Dict[FamilyName, FamilyRow]


@dataclass(frozen=True)
class Instance:
    """What cryostack needs to know about one instance type."""

    name: str
    family: str
    size: str
    gpus: int
    gpu_model: Optional[str]
    cuda_sm: Optional[int]
    efa: bool
    placement_group: bool
    cpu_vendor: str
    avx512: bool


class UnknownInstance(ValueError):
    """An instance type the table does not describe (its message is one line for the user)."""


def family_of(instance_type: str) -> str:
    return instance_type.split(".", 1)[0]


class Hardware:
    """The table in use: the shipped rows with a site's rows laid over them."""

    def __init__(self, rows: Mapping[str, FamilyRow]):
        self.rows: Dict[str, FamilyRow] = dict(sorted(rows.items()))

    def overridden(self, rows: Mapping[str, FamilyRow]) -> "Hardware":
        """This table with ROWS added or replacing whole families."""
        return Hardware({**self.rows, **rows})

    def row(self, family: str) -> FamilyRow:
        if family not in self.rows:
            raise UnknownInstance(
                f"no instance family {family!r} in the hardware table (known: {', '.join(self.rows)}); "
                "describe it under 'hardware:' in the site file")
        return self.rows[family]

    def instance(self, instance_type: str) -> Instance:
        """The facts of INSTANCE_TYPE; UnknownInstance if the table does not have it."""
        family, _, size = instance_type.partition(".")
        row = self.row(family)
        if size not in row.all_sizes:
            raise UnknownInstance(f"{instance_type!r}: instance family {family} has no size {size!r} "
                                  f"(sizes: {', '.join(row.all_sizes)})")
        return Instance(
            name=instance_type, family=family, size=size, gpus=row.gpus.get(size, 0),
            gpu_model=row.gpu.model if row.gpu else None, cuda_sm=row.gpu.sm if row.gpu else None,
            efa=size in row.efa, placement_group=row.placement_group,
            cpu_vendor=row.cpu.vendor, avx512=row.cpu.avx512)

    def has_gpus(self, family: str) -> bool:
        return self.row(family).gpu is not None

    def families_for(self, accel: str, cuda_arch: Optional[int] = None,
                     cpu_features: Iterable[str] = ()) -> List[str]:
        """The families an image can run on: a CUDA image those whose GPU has exactly its SM, a CPU
        image every family (GPU nodes have CPUs too) whose CPU has the features it needs."""
        if accel == "cuda":
            return [name for name, row in self.rows.items() if row.gpu and row.gpu.sm == cuda_arch]
        needed = set(cpu_features)
        return [name for name, row in self.rows.items() if needed <= row.features]


@lru_cache(maxsize=1)
def shipped() -> Hardware:
    """The table shipped with cryostack."""
    table, _ = load_model(TABLE, HardwareFile)
    return Hardware(table.families)
