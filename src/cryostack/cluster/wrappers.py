"""What a cluster user touches: wrappers, dispatchers, RELION qsub templates and module files,
made from the published manifest and the site file (cluster-configs/templates/*.j2)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Tuple

import jinja2

from ..files import write_text_atomically
from ..recipes import shell_quote
from .site import Site

Choice = Tuple[str, dict]  # manifest key, manifest entry


def _version_key(version: str):
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"[.-]", version))


def assignments(manifest: dict, site: Site, site_file: str,
                warn=lambda text: None) -> Dict[str, Dict[str, Choice]]:
    """software family -> instance family -> the image that serves it: the site's chosen variant,
    else the newest version among the variants that target that instance family. A chosen variant
    that is not published yet leaves that family unserved (its dispatchers say so at run time)."""
    families = list(dict.fromkeys(q.family for q in site.queues))
    published: Dict[str, List[Choice]] = {}
    for key, entry in manifest["images"].items():
        published.setdefault(entry["family"], []).append((key, entry))
    chosen: Dict[str, Dict[str, Choice]] = {}
    for software, entries in sorted(published.items()):
        for family in families:
            wanted = site.variants.get(software, {}).get(family)
            candidates = [(k, e) for k, e in entries
                          if family in e["targets"] and (wanted is None or e["variant"] == wanted)]
            if wanted and not candidates:
                have = ", ".join(sorted({e["variant"] for _, e in entries})) or "none"
                warn(f"{site_file}: variants.{software}.{family}: {wanted!r} is not published for {family} "
                     f"(published variants of {software}: {have}); no {software} wrappers for {family}")
            if candidates:
                chosen.setdefault(software, {})[family] = max(candidates, key=lambda c: _version_key(c[1]["version"]))
    return chosen


def image_reference(entry: dict, site: Site, store: Path) -> str:
    """What the runtime runs: the SIF path for Apptainer, an OCI reference for Docker/Podman."""
    if site.runtime == "apptainer":
        return str(store / entry["sif"]["path"])
    oci = entry.get("oci") or {}
    return (oci.get("references") or [entry.get("image")])[0]


def render(manifest: dict, site: Site, site_file: str, manifest_path: Path, prefix: Path,
           templates: Path, presets: Dict[str, dict], warn=lambda text: None) -> Dict[str, Tuple[str, int]]:
    """Every file to write, relative to PREFIX: text and mode."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates)), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["shquote"] = shell_quote
    bin_dir, qsub_dir = prefix / "bin", prefix / "qsub"
    store = manifest_path.parent
    chosen = assignments(manifest, site, site_file, warn)
    partitions = [(name, q.family) for q in site.queues
                  for name in ([q.name, f"{q.name}-spot"] if q.spot_twin and q.capacity == "ondemand" else [q.name])]
    cpu_queue = next((q for q in site.queues if not q.gpus), None)
    login = site.login_family or (cpu_queue.family if cpu_queue else None)
    files: Dict[str, Tuple[str, int]] = {}
    served: Dict[str, List[str]] = {}  # command -> instance families
    for software, by_family in chosen.items():
        for family, (key, entry) in by_family.items():
            for command in entry["commands"]:
                name = f"{command['name']}_{family}"
                files[f"bin/{name}"] = (env.get_template("wrapper.sh.j2").render(
                    command=command["name"], name=name, instance_family=family, key=key,
                    fingerprint=entry["fingerprint"], runtime=site.runtime, manifest=manifest_path,
                    image=image_reference(entry, site, store), gpu=entry["accel"] == "cuda",
                    binds=site.bind_paths,
                    add_cpu=software == "relion" and entry["accel"] == "cpu"
                    and command["name"] in ("relion_refine", "relion_refine_mpi"),
                ), 0o755)
                served.setdefault(command["name"], []).append(family)
    for command, families in served.items():
        files[f"bin/{command}"] = (env.get_template("dispatcher.sh.j2").render(
            command=command, partitions=[p for p in partitions if p[1] in families], families=families,
            variants=[f"{command}_{f}" for f in families], login_family=login if login in families else None,
        ), 0o755)
    default_queue = next((q.name for q in site.queues if q.gpus), site.queues[0].name)
    scratch = site.scratch.mount if site.scratch else ""
    for queue in site.queues:
        text = env.get_template("qsub.sh.j2").render(queue=queue)
        files[f"qsub/{queue.name}.sh"] = (text, 0o644)
        if queue.spot_twin and queue.capacity == "ondemand":
            files[f"qsub/{queue.name}-spot.sh"] = (text, 0o644)
    for key, entry in manifest["images"].items():
        families = sorted(f for f, (k, _) in chosen.get(entry["family"], {}).items() if k == key)
        files[f"modules/cryostack/{entry['family']}/{entry['version']}-{entry['variant']}.lua"] = (
            env.get_template("module.lua.j2").render(
                key=key, manifest=manifest_path, commands=[c["name"] for c in entry["commands"]],
                families=families or ["(none of this site's queues)"], bin=bin_dir, qsub=qsub_dir,
                default_queue=default_queue, scratch=scratch,
                **{k: v for k, v in entry.items() if k != "commands"},
            ), 0o644)
    for name, preset in presets.items():
        if preset["available"]:
            files[f"modules/cryostack/relion-{name}.lua"] = (env.get_template("preset.lua.j2").render(
                name=name, preset=preset, bin=bin_dir, qsub=qsub_dir, scratch=scratch), 0o644)
    files["on-node-configured.sh"] = (env.get_template("on-node-configured.sh.j2").render(
        url=site.on_node_configured_url, images=site.image_store.root, prefix=site.cluster_prefix,
        runtime=site.runtime), 0o755)
    return files


def write(files: Dict[str, Tuple[str, int]], prefix: Path) -> None:
    """Write every file by rename, so running jobs never see a half-written wrapper."""
    for relpath, (text, mode) in sorted(files.items()):
        write_text_atomically(prefix / relpath, text, mode)
