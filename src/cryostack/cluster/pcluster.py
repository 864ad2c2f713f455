"""A ParallelCluster v3 configuration from a site file, validated with ParallelCluster's own schema."""

from __future__ import annotations

import os
from typing import List

from ..errors import InputError
from .site import Queue, Site


def cluster_config(site: Site) -> dict:
    """The cluster configuration as plain data (what `pcluster create-cluster` reads as YAML)."""
    config = {
        "Region": site.region,
        "Image": {"Os": site.os},
        "HeadNode": {
            "InstanceType": site.head_node.instance_type,
            "Networking": {"SubnetId": site.head_node.subnet},
            "Ssh": {"KeyName": site.key_pair},
            "Dcv": {"Enabled": site.head_node.dcv},
            "CustomActions": {"OnNodeConfigured": _on_node_configured(site)},
        },
        "Scheduling": {"Scheduler": "slurm", "SlurmQueues": [q for queue in site.queues for q in _queues(site, queue)]},
        "SharedStorage": _storage(site),
        "Tags": [{"Key": key, "Value": value} for key, value in sorted(site.tags.items())],
    }
    return config


def _queues(site: Site, queue: Queue) -> List[dict]:
    queues = [_queue(site, queue, queue.name, queue.capacity)]
    if queue.spot_twin and queue.capacity == "ondemand":
        queues.append(_queue(site, queue, f"{queue.name}-spot", "spot"))
    return queues


def _queue(site: Site, queue: Queue, name: str, capacity: str) -> dict:
    resources = []
    for instance_type in queue.instance_types:
        resource = {
            "Name": instance_type.replace(".", "-"),
            "Instances": [{"InstanceType": instance_type}],
            "MinCount": 0,
            "MaxCount": queue.max_count,
        }
        if queue.efa_enabled:
            resource["Efa"] = {"Enabled": True}
        resources.append(resource)
    networking = {"SubnetIds": list(site.compute_subnets)}
    if queue.efa_enabled:
        networking["PlacementGroup"] = {"Enabled": True}
    return {
        "Name": name,
        "CapacityType": "SPOT" if capacity == "spot" else "ONDEMAND",
        "ComputeResources": resources,
        "Networking": networking,
        "CustomActions": {"OnNodeConfigured": _on_node_configured(site)},
    }


def _on_node_configured(site: Site) -> dict:
    return {"Script": site.on_node_configured_url, "Args": [site.image_store.root, site.cluster_prefix]}


def _storage(site: Site) -> List[dict]:
    storage = [{
        "MountDir": site.image_store.mount,
        "Name": "images",
        "StorageType": "Efs",
        "EfsSettings": {"FileSystemId": site.image_store.efs_id},
    }]
    if site.scratch:
        storage.append({
            "MountDir": site.scratch.mount,
            "Name": "scratch",
            "StorageType": "FsxLustre",
            "FsxLustreSettings": {"StorageCapacity": site.scratch.fsx_capacity_gib,
                                  "DeploymentType": site.scratch.deployment},
        })
    return storage


def validate(config: dict, where: str, cluster_name: str) -> None:
    """Load the configuration with aws-parallelcluster's schema (offline); InputError with its messages."""
    os.environ.setdefault("AWS_DEFAULT_REGION", config.get("Region") or "us-east-1")
    try:
        from pcluster.schemas.cluster_schema import ClusterSchema
    except ImportError:
        raise InputError("validating needs aws-parallelcluster: pip install 'aws-parallelcluster>=3.16,<3.17'") from None
    try:
        ClusterSchema(cluster_name=cluster_name).load(config)
    except Exception as exc:  # marshmallow's ValidationError, or a validator that crashes on bad input
        messages = getattr(exc, "messages", None)
        detail = _flatten(messages) if messages else f"{type(exc).__name__}: {exc}"
        raise InputError(f"{where}: ParallelCluster rejects the generated configuration: {detail}") from None


def _flatten(messages, prefix: str = "") -> str:
    if isinstance(messages, dict):
        return "; ".join(_flatten(value, f"{prefix}{key}." if prefix or key else "") for key, value in messages.items())
    if isinstance(messages, list):
        return "; ".join(_flatten(m, prefix) for m in messages)
    return f"{prefix.rstrip('.')}: {messages}"
