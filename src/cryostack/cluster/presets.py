"""Job-type presets (queue, nodes, MPI ranks, threads), with a site's overrides applied.

On GPU queues RELION runs one worker rank per GPU plus its leader (rank 0 computes nothing), so
ranks = nodes x GPUs per node + 1, as in the GoToCloud benchmark settings. On CPU queues the
preset says how many ranks go on each node."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

from pydantic import Field, RootModel, ValidationError

from ..errors import InputError
from ..hardware import InstanceTypeName
from ..values import Identifier, Line
from ..yamlfile import load_model
from .site import QueueName, Site, Strict


class Preset(Strict):
    description: Line = ""
    instance_type: InstanceTypeName
    nodes: int = Field(ge=1, le=10_000)
    threads: int = Field(ge=1, le=1024)
    mpi_per_node: Optional[int] = Field(None, ge=1, le=1024, description="CPU queues: ranks on each node")
    queue: Optional[QueueName] = None


class PresetFile(RootModel[Dict[Identifier, Preset]]):
    pass


def load_presets(path: Path, site: Site) -> Dict[str, dict]:
    """Every preset resolved against the site: its queue, GPUs per node and total MPI ranks; GPU
    presets on queues with a spot twin also get a '<name>-spot' twin."""
    raw = load_model(Path(path), PresetFile)[0].root
    unknown = sorted(set(site.presets) - set(raw))
    if unknown:
        raise InputError(f"{site.where('presets', unknown[0])}: unknown preset {unknown[0]!r} (known: {', '.join(raw)})")
    resolved: Dict[str, dict] = {}
    for name, preset in raw.items():
        if name in site.presets:
            try:
                preset = Preset.model_validate(dict(preset.model_dump(exclude_unset=True), **site.presets[name]))
            except ValidationError as exc:
                error = exc.errors()[0]
                raise InputError(f"{site.where('presets', name, *error['loc'])}: {error['msg']}") from None
        queue = next((q for q in site.queues if q.name == preset.queue), None) if preset.queue else \
            next((q for q in site.queues if preset.instance_type in q.instance_types), None)
        if queue is None:
            resolved[name] = dict(preset.model_dump(), queue=None, available=False,
                                  reason=f"no queue of the site has {preset.queue or preset.instance_type}")
            continue
        gpus = site.gpus(queue)
        if gpus:
            ranks = preset.nodes * gpus + 1
        elif preset.mpi_per_node:
            ranks = preset.nodes * preset.mpi_per_node
        else:
            raise InputError(f"{path}: {name}: a preset on the CPU queue {queue.name} needs mpi_per_node")
        for partition in queue.partitions:
            twin = name if partition == queue.name else f"{name}-spot"
            resolved[twin] = dict(preset.model_dump(), queue=partition, gpus_per_node=gpus, mpi_ranks=ranks,
                                  available=True, spot=partition != queue.name)
    return resolved
