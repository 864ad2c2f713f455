"""A site file: where images run (AWS account pieces, queues, storage, runtime, which variant
serves which hardware). Every value is typed where it enters (cryostack.values); the hardware
facts come from the instance table (cryostack.hardware) with the site's own rows laid over it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Dict, List, Literal, Optional, Tuple, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints, model_validator

from ..errors import InputError
from ..hardware import FamilyName, FamilyRow, Hardware, Instance, InstanceTypeName, UnknownInstance, family_of, shipped
from ..values import AbsolutePath, Identifier, RelativePath, Sha256, Url
from ..yamlfile import load_model, shown

# AWS resource ids and names, as narrow as AWS makes them (they end up in YAML only).
SubnetId = Annotated[str, StringConstraints(pattern=r"^subnet-[0-9a-f]{8,17}$")]
EfsId = Annotated[str, StringConstraints(pattern=r"^fs-[0-9a-f]{8,17}$")]
AmiId = Annotated[str, StringConstraints(pattern=r"^ami-[0-9a-f]{8,17}$")]
BucketName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
KeyPairName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+=@-]{0,254}$")]
TagKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9 _.:/=+@-]{1,128}$")]
TagValue = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9 _.:/=+@-]{0,256}$")]
# A Slurm partition (queue) name; ParallelCluster's own validator checks its length, '-spot' included.
QueueName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,62}$")]
ClusterName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,59}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HeadNode(Strict):
    instance_type: InstanceTypeName = "m6i.xlarge"
    subnet: SubnetId
    dcv: bool = True


class ImageStore(Strict):
    efs_id: EfsId
    mount: AbsolutePath = "/efs"
    root: AbsolutePath = Field("/efs/cryostack", description="the published tree (manifest.json) under the mount")


class Fsx(Strict):
    """FSx for Lustre shared by every node: particle stacks, projects. Never RELION's scratch."""

    mount: AbsolutePath = "/fsx"
    capacity_gib: int = Field(1200, ge=1200, le=1_000_000)
    deployment: Literal["SCRATCH_1", "SCRATCH_2", "PERSISTENT_1", "PERSISTENT_2"] = "SCRATCH_2"


class RuntimeInstall(Strict):
    """How nodes get the container runtime: ParallelCluster's AMIs have no Apptainer."""

    custom_ami: Optional[AmiId] = Field(None, description="an AMI that has the runtime (pcluster build-image)")
    package_url: Optional[Url] = Field(None, description="an .rpm or .deb that on-node-configured.sh installs")
    package_sha256: Optional[Sha256] = None

    @model_validator(mode="after")
    def _one_way(self) -> "RuntimeInstall":
        if bool(self.custom_ami) == bool(self.package_url):
            raise ValueError("give either custom_ami or package_url (with package_sha256)")
        if self.package_url and not self.package_sha256:
            raise ValueError("package_url needs package_sha256 (the node checks it before installing)")
        if self.package_url and not self.package_url.endswith((".rpm", ".deb")):
            raise ValueError("package_url must name an .rpm or a .deb file")
        return self

    @property
    def package_kind(self) -> str:
        return (self.package_url or "").rsplit(".", 1)[-1]


class Bucket(Strict):
    bucket: BucketName
    write: bool = False


class SlurmClient(Strict):
    """The host's Slurm client, bound into RELION's containers so that its pipeliner can submit jobs.
    The defaults are where ParallelCluster installs Slurm and munge."""

    commands: List[AbsolutePath] = Field(
        default_factory=lambda: ["/opt/slurm/bin/sbatch", "/opt/slurm/bin/squeue", "/opt/slurm/bin/scancel"],
        description="bound at /run/cryostack/slurm/bin/<name>")
    paths: List[AbsolutePath] = Field(default_factory=lambda: ["/opt/slurm", "/run/munge"],
                                      description="bound at the same path (configuration, plug-ins, munge socket)")
    libraries: List[AbsolutePath] = Field(default_factory=lambda: ["/usr/lib64/libmunge.so.2"],
                                          description="bound into /run/cryostack/slurm/lib")


class Queue(Strict):
    name: QueueName
    instance_types: List[InstanceTypeName] = Field(min_length=1)
    max_count: int = Field(ge=1, le=100_000)
    capacity: Literal["ondemand", "spot"] = "ondemand"
    spot_twin: bool = Field(False, description="also a '<name>-spot' queue with the same instances on spot")
    efa: Optional[bool] = Field(None, description="default: on where every instance type supports it")

    @property
    def family(self) -> str:
        return family_of(self.instance_types[0])

    @property
    def partitions(self) -> List[str]:
        """The Slurm partitions this queue becomes: itself, and its spot twin."""
        twin = self.spot_twin and self.capacity == "ondemand"
        return [self.name, f"{self.name}-spot"] if twin else [self.name]


class Site(Strict):
    site: ClusterName
    region: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")]
    os: Literal["alinux2023", "ubuntu2204", "ubuntu2404", "rhel8", "rocky8", "rhel9", "rocky9"] = "alinux2023"
    key_pair: KeyPairName
    compute_subnets: List[SubnetId] = Field(min_length=1)
    head_node: HeadNode
    image_store: ImageStore
    fsx: Optional[Fsx] = None
    node_scratch: AbsolutePath = Field("/scratch", description="node-local disk: RELION_SCRATCH_DIR")
    runtime: Literal["apptainer", "docker", "podman"] = "apptainer"
    runtime_install: Optional[RuntimeInstall] = None
    module_system: Literal["lmod", "tcl"] = Field("tcl", description="ParallelCluster's AMIs ship Environment Modules (tcl)")
    extra_binds: List[AbsolutePath] = Field(default_factory=list, description="binds beyond the derived ones")
    cluster_prefix: AbsolutePath = Field("/efs/cryostack/cluster", description="wrappers (bin/), qsub templates, modules")
    templates: Optional[Union[AbsolutePath, RelativePath]] = Field(
        None, description="a directory of templates searched before the shipped ones (relative to the site file)")
    login_family: Optional[FamilyName] = Field(
        None, description="instance family whose images run outside Slurm jobs; default: the first CPU queue's")
    on_node_configured_url: Url = Field(description="s3:// or https:// URL where the node set-up script is uploaded")
    s3_buckets: List[Bucket] = Field(default_factory=list, description="data buckets the nodes may read (or write)")
    intel_mpirun: AbsolutePath = Field("/opt/intel/mpi/latest/bin/mpirun",
                                       description="the host's Intel MPI launcher (Hydra) for Intel MPI images")
    slurm_client: SlurmClient = Field(default_factory=SlurmClient)
    tags: Dict[TagKey, TagValue] = Field(default_factory=dict)
    queues: List[Queue] = Field(min_length=1)
    variants: Dict[Identifier, Dict[FamilyName, Identifier]] = Field(
        default_factory=dict, description="software family -> instance family -> variant that serves it")
    presets: Dict[Identifier, Dict[Identifier, Any]] = Field(default_factory=dict, description="overrides of presets.yaml")
    hardware: Dict[FamilyName, FamilyRow] = Field(default_factory=dict, description="rows added to the instance table")

    _table: Hardware = PrivateAttr(default=None)
    _file: Optional[Path] = PrivateAttr(default=None)
    _lines: Dict[tuple, int] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _table_with_overrides(self) -> "Site":
        self._table = shipped().overridden(self.hardware)
        return self

    # --- hardware -------------------------------------------------------------------------------

    @property
    def table(self) -> Hardware:
        return self._table

    def instances(self, queue: Queue) -> List[Instance]:
        return [self._table.instance(t) for t in queue.instance_types]

    def gpus(self, queue: Queue) -> int:
        """GPUs per node the queue can promise (its smallest instance type's)."""
        return min(i.gpus for i in self.instances(queue))

    def efa(self, queue: Queue) -> bool:
        supported = all(i.efa for i in self.instances(queue))
        return supported if queue.efa is None else queue.efa

    def placement_group(self, queue: Queue) -> bool:
        return self.efa(queue) and all(i.placement_group for i in self.instances(queue))

    def is_cpu_queue(self, queue: Queue) -> bool:
        return not self._table.has_gpus(queue.family)

    @property
    def families(self) -> List[str]:
        return list(dict.fromkeys(q.family for q in self.queues))

    @property
    def partitions(self) -> List[Tuple[str, Queue]]:
        return [(name, queue) for queue in self.queues for name in queue.partitions]

    def queue_of(self, partition: str) -> Optional[Queue]:
        return next((q for name, q in self.partitions if name == partition), None)

    @property
    def login(self) -> Optional[str]:
        """The instance family whose images run outside jobs (head node, RELION's local runs)."""
        if self.login_family:
            return self.login_family
        return next((q.family for q in self.queues if self.is_cpu_queue(q)), None)

    # --- storage and binds ----------------------------------------------------------------------

    @property
    def binds(self) -> List[str]:
        """What containers see of the host: the image store, FSx if the site has it, node scratch,
        the cluster prefix and the site's extra binds; paths inside another bound path are dropped."""
        wanted = [self.image_store.mount, *( [self.fsx.mount] if self.fsx else []), self.node_scratch,
                  self.cluster_prefix, *self.extra_binds]
        kept: List[str] = []
        for path in dict.fromkeys(wanted):
            if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
                kept = [k for k in kept if not k.startswith(path.rstrip("/") + "/")] + [path]
        return kept

    @property
    def slurm_mounts(self) -> List[Tuple[str, str]]:
        """(host path, container path) of the Slurm client RELION's containers get."""
        client = self.slurm_client
        return ([(c, f"/run/cryostack/slurm/bin/{c.rsplit('/', 1)[1]}") for c in client.commands]
                + [(p, p) for p in client.paths]
                + [(lib, f"/run/cryostack/slurm/lib/{lib.rsplit('/', 1)[1]}") for lib in client.libraries])

    def templates_dir(self) -> Optional[Path]:
        if not self.templates:
            return None
        base = self._file.parent if self._file else Path.cwd()
        return (base / self.templates).resolve()

    # --- where a value came from ----------------------------------------------------------------

    def where(self, *loc) -> str:
        """'file:line: key' for a key path of the site file, for one-line messages."""
        line = next((self._lines[loc[:end]] for end in range(len(loc), -1, -1) if loc[:end] in self._lines), 1)
        key = ""
        for part in loc:
            key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
        return f"{self._file or 'site'}:{line}: {key or '(top level)'}"


def load_site(path: Path) -> Site:
    """Read and validate a site file; every error is one line naming file, line and key."""
    if not Path(path).is_file():
        raise InputError(f"{path}: no such site file")
    site, lines = load_model(Path(path), Site)
    site._file, site._lines = shown(Path(path)), lines
    _check(site)
    return site


def _check(site: Site) -> None:
    """What the schema alone cannot say: the hardware, names across queues, required tags."""
    def fail(message: str, *loc) -> None:
        raise InputError(f"{site.where(*loc)}: {message}")

    for index, queue in enumerate(site.queues):
        for position, instance_type in enumerate(queue.instance_types):
            try:
                site.table.instance(instance_type)
            except UnknownInstance as exc:
                fail(str(exc), "queues", index, "instance_types", position)
        if len({family_of(t) for t in queue.instance_types}) != 1:
            fail(f"{queue.instance_types}: one instance family per queue (the wrappers pick images by family)",
                 "queues", index, "instance_types")
        if queue.efa:
            lacking = [i.name for i in site.instances(queue) if not i.efa]
            if lacking:
                fail(f"{', '.join(lacking)} does not support EFA (hardware table); set efa: false or leave it out",
                     "queues", index, "efa")
    try:
        site.table.instance(site.head_node.instance_type)
    except UnknownInstance as exc:
        fail(str(exc), "head_node", "instance_type")
    seen: Dict[str, int] = {}
    for index, queue in enumerate(site.queues):
        for name in queue.partitions:
            if name in seen:
                fail(f"queue {name!r} is defined twice (spot twins add '<name>-spot')", "queues", index, "name")
            seen[name] = index
    for key in site.tags:
        if key.startswith("aws:"):
            fail(f"{key!r}: tag keys starting with 'aws:' are reserved by AWS", "tags", key)
    for key in ("user", "project", "group"):
        if key not in site.tags:
            fail(f"give the cost-allocation tag {key!r}", "tags")
    if site.login_family and site.login_family not in site.families:
        fail(f"{site.login_family!r} is not the family of any queue (queues: {', '.join(site.families)})", "login_family")
    for software, chosen in site.variants.items():
        for family in chosen:
            if family not in site.families:
                fail(f"{family!r} is not the family of any queue (queues: {', '.join(site.families)})",
                     "variants", software, family)
    if site.runtime == "apptainer" and site.runtime_install is None:
        fail("ParallelCluster's AMIs have no Apptainer: give runtime_install.custom_ami (an AMI with it) "
             "or runtime_install.package_url and package_sha256", "runtime")
    for index, path in enumerate(site.extra_binds):
        if ":" in path or "," in path:
            fail("a bind path cannot hold ':' or ',' (the runtimes' separators)", "extra_binds", index)
    client = site.slurm_client
    for group, paths in (("commands", client.commands), ("paths", client.paths), ("libraries", client.libraries)):
        for index, path in enumerate(paths):
            if ":" in path or "," in path:
                fail("a bind path cannot hold ':' or ',' (the runtimes' separators)", "slurm_client", group, index)
    for loc, path in ((("image_store", "mount"), site.image_store.mount), (("node_scratch",), site.node_scratch),
                      (("cluster_prefix",), site.cluster_prefix), (("fsx", "mount"), site.fsx.mount if site.fsx else "")):
        if ":" in path or "," in path:
            fail("a bind path cannot hold ':' or ',' (the runtimes' separators)", *loc)
    mounts = [site.image_store.mount, site.node_scratch] + ([site.fsx.mount] if site.fsx else [])
    if len(set(mounts)) != len(mounts):
        fail(f"image_store.mount, fsx.mount and node_scratch must differ (got {', '.join(mounts)})", "node_scratch")
