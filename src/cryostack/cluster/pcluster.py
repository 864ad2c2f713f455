"""A ParallelCluster v3 configuration from a site file, checked offline: aws-parallelcluster's
schema, and those of its own validators that need no AWS call, with messages naming the site
file's line."""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Dict, List, Tuple

from ..errors import InputError
from .site import Queue, Site

PCLUSTER = "pip install 'aws-parallelcluster>=3.16,<3.17'"


def cluster_config(site: Site) -> dict:
    """The cluster configuration as plain data (what `pcluster create-cluster` reads as YAML)."""
    image = {"Os": site.os}
    if site.runtime_install and site.runtime_install.custom_ami:
        image["CustomAmi"] = site.runtime_install.custom_ami
    return {
        "Region": site.region,
        "Image": image,
        "HeadNode": {
            "InstanceType": site.head_node.instance_type,
            "Networking": {"SubnetId": site.head_node.subnet},
            "Ssh": {"KeyName": site.key_pair},
            "Dcv": {"Enabled": site.head_node.dcv},
            "CustomActions": {"OnNodeConfigured": {"Script": site.on_node_configured_url}},
            "Iam": {"S3Access": s3_access(site)},
        },
        "Scheduling": {"Scheduler": "slurm",
                       "SlurmQueues": [_queue(site, queue, name) for queue in site.queues for name in queue.partitions]},
        "SharedStorage": _storage(site),
        "Tags": [{"Key": key, "Value": value} for key, value in sorted(site.tags.items())],
    }


def resource_name(instance_type: str) -> str:
    return instance_type.replace(".", "-")


def s3_access(site: Site) -> List[dict]:
    """Read access to the buckets of the node script and the runtime package, and the site's
    data buckets: ParallelCluster grants only its own buckets by itself."""
    buckets: Dict[str, bool] = {}
    for url in (site.on_node_configured_url, site.runtime_install and site.runtime_install.package_url):
        if url and url.startswith("s3://"):
            buckets.setdefault(url[len("s3://"):].split("/", 1)[0], False)
    for bucket in site.s3_buckets:
        buckets[bucket.bucket] = buckets.get(bucket.bucket, False) or bucket.write
    return [dict({"BucketName": name}, **({"EnableWriteAccess": True} if write else {}))
            for name, write in buckets.items()]


def _queue(site: Site, queue: Queue, name: str) -> dict:
    efa = site.efa(queue)
    resources = []
    for instance_type in queue.instance_types:
        resource = {"Name": resource_name(instance_type), "Instances": [{"InstanceType": instance_type}],
                    "MinCount": 0, "MaxCount": queue.max_count}
        if efa:
            resource["Efa"] = {"Enabled": True}
        resources.append(resource)
    spot = name != queue.name or queue.capacity == "spot"
    return {
        "Name": name,
        "CapacityType": "SPOT" if spot else "ONDEMAND",
        "ComputeResources": resources,
        # Explicit either way: ParallelCluster refuses EFA queues that leave it unsaid.
        "Networking": {"SubnetIds": list(site.compute_subnets),
                       "PlacementGroup": {"Enabled": site.placement_group(queue)}},
        "CustomActions": {"OnNodeConfigured": {"Script": site.on_node_configured_url}},
        "Iam": {"S3Access": s3_access(site)},
    }


def _storage(site: Site) -> List[dict]:
    storage = [{"MountDir": site.image_store.mount, "Name": "images", "StorageType": "Efs",
                "EfsSettings": {"FileSystemId": site.image_store.efs_id}}]
    if site.fsx:
        storage.append({"MountDir": site.fsx.mount, "Name": "fsx", "StorageType": "FsxLustre",
                        "FsxLustreSettings": {"StorageCapacity": site.fsx.capacity_gib,
                                              "DeploymentType": site.fsx.deployment}})
    return storage


def validate(config: dict, site: Site) -> None:
    """ParallelCluster's offline validators, then its schema; InputError (one line) on the first error."""
    os.environ.setdefault("AWS_DEFAULT_REGION", config.get("Region") or "us-east-1")
    try:
        from pcluster.schemas.cluster_schema import ClusterSchema
    except ImportError:
        raise InputError(f"validating needs aws-parallelcluster: {PCLUSTER}") from None
    for loc, message in offline_problems(site):
        raise InputError(f"{site.where(*loc)}: ParallelCluster: {message}")
    try:
        ClusterSchema(cluster_name=site.site).load(config)
    except Exception as exc:  # marshmallow's ValidationError, or a validator that crashes on bad input
        messages = getattr(exc, "messages", None)
        detail = _flatten(messages) if messages else f"{type(exc).__name__}: {exc}"
        raise InputError(f"{site.where()}: ParallelCluster rejects the generated configuration: {detail}") from None


def offline_problems(site: Site) -> List[Tuple[tuple, str]]:
    """Errors of the aws-parallelcluster validators that run without AWS, each with the site key
    it comes from. (EFA per instance type is the hardware table's job: ParallelCluster asks EC2.)"""
    from pcluster.config.common import CapacityType
    from pcluster.constants import (MAX_COMPUTE_RESOURCES_PER_QUEUE, MAX_NUMBER_OF_COMPUTE_RESOURCES_PER_CLUSTER,
                                    MAX_NUMBER_OF_QUEUES)
    from pcluster.validators.cluster_validators import (ClusterNameValidator, ComputeResourceSizeValidator,
                                                        DuplicateNameValidator,
                                                        EfaPlacementGroupValidator, MaxCountValidator,
                                                        NameValidator, SharedStorageNameValidator)
    from pcluster.validators.common import FailureLevel
    from pcluster.validators.fsx_validators import FsxStorageCapacityValidator

    checks: List[Tuple[tuple, object, dict]] = []
    # cryostack configures no Slurm accounting: the validator's other limit applies.
    no_accounting = SimpleNamespace(settings=SimpleNamespace(database=None, external_slurmdbd=None))
    checks.append((("site",), ClusterNameValidator, dict(name=site.site, scheduling=no_accounting)))
    partitions = site.partitions
    checks.append((("queues",), MaxCountValidator, dict(
        resources_length=len(partitions), max_length=MAX_NUMBER_OF_QUEUES, resource_name="SlurmQueues")))
    for index, queue in enumerate(site.queues):
        for name in queue.partitions:
            checks.append((("queues", index, "name"), NameValidator, dict(name=name)))
            capacity = CapacityType.SPOT if name != queue.name or queue.capacity == "spot" else CapacityType.ONDEMAND
            for instance_type in queue.instance_types:
                # A managed placement group's key, as ParallelCluster names it: queue and resource.
                key = f"{name}-{resource_name(instance_type)}" if site.placement_group(queue) else None
                checks.append((("queues", index, "efa"), EfaPlacementGroupValidator, dict(
                    efa_enabled=site.efa(queue), placement_group_key=key,
                    placement_group_disabled=not site.placement_group(queue),
                    multi_az_enabled=len(site.compute_subnets) > 1, capacity_type=capacity, queue_name=name)))
            checks.append((("queues", index, "max_count"), ComputeResourceSizeValidator, dict(
                min_count=0, max_count=queue.max_count, capacity_type=capacity)))
        names = [resource_name(t) for t in queue.instance_types]
        checks.append((("queues", index, "instance_types"), MaxCountValidator, dict(
            resources_length=len(names), max_length=MAX_COMPUTE_RESOURCES_PER_QUEUE,
            resource_name="ComputeResources per Queue")))
        checks.append((("queues", index, "instance_types"), DuplicateNameValidator, dict(
            name_list=names, resource_name="Compute resource")))
        for position, name in enumerate(names):
            checks.append((("queues", index, "instance_types", position), NameValidator, dict(name=name)))
    checks.append((("queues",), MaxCountValidator, dict(
        resources_length=sum(len(q.instance_types) for _, q in partitions),
        max_length=MAX_NUMBER_OF_COMPUTE_RESOURCES_PER_CLUSTER, resource_name="ComputeResources per Cluster")))
    for name in ("images", "fsx"):
        checks.append(((), SharedStorageNameValidator, dict(name=name)))
    if site.fsx:
        checks.append((("fsx", "capacity_gib"), FsxStorageCapacityValidator, dict(
            storage_capacity=site.fsx.capacity_gib, deployment_type=site.fsx.deployment, fsx_storage_type=None,
            per_unit_storage_throughput=None, file_system_id=None, backup_id=None)))
    problems = []
    for loc, validator, arguments in checks:
        for failure in validator().execute(**arguments):
            if failure.level == FailureLevel.ERROR:
                problems.append((loc, " ".join(str(failure.message).split())))
    return problems


def _flatten(messages, prefix: str = "") -> str:
    if isinstance(messages, dict):
        return "; ".join(_flatten(value, f"{prefix}{key}." if prefix or key else "") for key, value in messages.items())
    if isinstance(messages, list):
        return "; ".join(_flatten(m, prefix) for m in messages)
    return f"{prefix.rstrip('.')}: {messages}"
