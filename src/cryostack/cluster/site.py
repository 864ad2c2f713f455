"""A site file: where images run (AWS account pieces, queues, which variant serves which hardware)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import InputError
from ..yamlfile import load_model

INSTANCE_TYPE = re.compile(r"^([a-z][a-z0-9-]*)\.([a-z0-9]+)$")

# Facts from AWS's instance type documentation: NVIDIA GPUs per instance, and EFA support.
GPUS = {
    "g4dn.xlarge": 1, "g4dn.2xlarge": 1, "g4dn.4xlarge": 1, "g4dn.8xlarge": 1, "g4dn.16xlarge": 1,
    "g4dn.12xlarge": 4, "g4dn.metal": 8,
    "g5.xlarge": 1, "g5.2xlarge": 1, "g5.4xlarge": 1, "g5.8xlarge": 1, "g5.16xlarge": 1,
    "g5.12xlarge": 4, "g5.24xlarge": 4, "g5.48xlarge": 8,
}
EFA = {
    "g4dn.8xlarge", "g4dn.12xlarge", "g4dn.16xlarge", "g4dn.metal",
    "g5.8xlarge", "g5.12xlarge", "g5.16xlarge", "g5.24xlarge", "g5.48xlarge",
    "c6i.32xlarge", "c6i.metal",
}


def instance_family(instance_type: str) -> str:
    return instance_type.split(".", 1)[0]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HeadNode(Strict):
    instance_type: str = "m6i.xlarge"
    subnet: str
    dcv: bool = True


class ImageStore(Strict):
    efs_id: str = Field(pattern=r"^fs-[0-9a-f]{8,17}$")
    mount: str = "/efs"
    root: str = Field("/efs/cryostack", description="the published tree (manifest.json) under the mount")


class Scratch(Strict):
    fsx_capacity_gib: int = Field(1200, ge=1200)
    mount: str = "/fsx"
    deployment: Literal["SCRATCH_1", "SCRATCH_2", "PERSISTENT_1", "PERSISTENT_2"] = "SCRATCH_2"


class Queue(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,24}$")
    instance_types: List[str] = Field(min_length=1)
    max_count: int = Field(ge=1)
    capacity: Literal["ondemand", "spot"] = "ondemand"
    spot_twin: bool = Field(False, description="also a '<name>-spot' queue with the same instances on spot")
    efa: Optional[bool] = Field(None, description="default: on where every instance type supports it")

    @field_validator("instance_types")
    @classmethod
    def _types(cls, value: List[str]) -> List[str]:
        for item in value:
            if not INSTANCE_TYPE.match(item):
                raise ValueError(f"{item!r} is not an EC2 instance type such as g5.12xlarge")
        if len({instance_family(i) for i in value}) != 1:
            raise ValueError(f"{value}: one instance family per queue (the wrappers pick images by family)")
        return value

    @property
    def family(self) -> str:
        return instance_family(self.instance_types[0])

    @property
    def gpus(self) -> int:
        return min(GPUS.get(i, 0) for i in self.instance_types)

    @property
    def efa_enabled(self) -> bool:
        supported = all(i in EFA for i in self.instance_types)
        return supported if self.efa is None else self.efa


class Site(Strict):
    site: str = Field(pattern=r"^[a-z][a-z0-9-]{0,40}$")
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    os: Literal["alinux2023", "ubuntu2204", "ubuntu2404", "rhel8", "rocky8", "rhel9", "rocky9"] = "alinux2023"
    key_pair: str
    compute_subnets: List[str] = Field(min_length=1)
    head_node: HeadNode
    image_store: ImageStore
    scratch: Optional[Scratch] = None
    runtime: Literal["apptainer", "docker", "podman"] = "apptainer"
    bind_paths: List[str] = Field(default_factory=lambda: ["/efs", "/fsx"])
    cluster_prefix: str = Field("/efs/cryostack/cluster", description="wrappers (bin/), qsub templates, modules")
    login_family: Optional[str] = Field(None, description="instance family whose images run outside Slurm jobs; default: the first CPU queue's")
    on_node_configured_url: str = Field(description="s3:// or https:// URL where the node set-up script is uploaded")
    tags: Dict[str, str] = Field(default_factory=dict)
    queues: List[Queue] = Field(min_length=1)
    variants: Dict[str, Dict[str, str]] = Field(
        default_factory=dict, description="software family -> instance family -> variant that serves it")
    presets: Dict[str, Dict[str, object]] = Field(default_factory=dict, description="overrides of presets.yaml")

    @model_validator(mode="after")
    def _consistent(self) -> "Site":
        names = [q.name for q in self.queues]
        duplicated = {n for n in names if names.count(n) > 1}
        twins = {f"{q.name}-spot" for q in self.queues if q.spot_twin} & set(names)
        if duplicated or twins:
            raise ValueError(f"queue names must be unique (spot twins add '<name>-spot'): {sorted(duplicated | twins)}")
        for key in ("user", "project", "group"):
            if key not in self.tags:
                raise ValueError(f"tags: give the cost-allocation tag {key!r}")
        if not self.on_node_configured_url.startswith(("s3://", "https://")):
            raise ValueError("on_node_configured_url must be an s3:// or https:// URL (ParallelCluster fetches it)")
        return self

    def queue_family(self, partition: str) -> Optional[str]:
        for queue in self.queues:
            if partition in (queue.name, f"{queue.name}-spot"):
                return queue.family
        return None


def load_site(path: Path) -> Site:
    """Read and validate a site file; errors name file, line and key."""
    if not Path(path).is_file():
        raise InputError(f"{path}: no such site file")
    site, _ = load_model(Path(path), Site)
    return site
