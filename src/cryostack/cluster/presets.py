"""Job-type presets (queue, nodes, ranks, threads, GPUs), with a site's overrides applied."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError
import yaml

from ..errors import InputError
from .site import Site


class Preset(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    instance_type: str
    nodes: int = Field(ge=1)
    mpi_per_node: int = Field(ge=1)
    threads: int = Field(ge=1)
    queue: Optional[str] = None


def load_presets(path: Path, site: Site) -> Dict[str, dict]:
    """Every preset resolved against the site: its queue, GPUs per node and total MPI ranks."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    resolved = {}
    for name, fields in raw.items():
        merged = dict(fields, **site.presets.get(name, {}))
        try:
            preset = Preset.model_validate(merged)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"])
            raise InputError(f"presets.{name}.{where}: {error['msg']} (presets.yaml with the site's overrides)") from None
        queue = next((q for q in site.queues if q.name == preset.queue), None) if preset.queue else \
            next((q for q in site.queues if preset.instance_type in q.instance_types), None)
        if queue is None:
            resolved[name] = dict(preset.model_dump(), queue=None, available=False,
                                  reason=f"no queue of the site has {preset.instance_type}")
            continue
        resolved[name] = dict(preset.model_dump(), queue=queue.name, gpus_per_node=queue.gpus,
                              mpi_ranks=preset.nodes * preset.mpi_per_node, available=True)
    unknown = set(site.presets) - set(raw)
    if unknown:
        raise InputError(f"site presets: unknown preset(s) {sorted(unknown)} (known: {', '.join(raw)})")
    return resolved
