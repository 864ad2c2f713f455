"""What a cluster user touches: wrappers, dispatchers, the RELION qsub template and submit command,
the MPI launcher, module files (Lmod and Tcl) and the node set-up script, made from the published
manifest and the site file with the templates in cluster-configs/templates (a site's own template
directory is searched first).

Every manifest value that becomes a path, a shell word, a Lua or a Tcl string is checked here
(identifiers, confined relative paths, plain image references) and escaped by the templates."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import jinja2

from ..errors import InputError
from ..files import write_text_atomically
from ..values import IDENTIFIER, _absolute as _absolute_path, confined, printable_problem, version_order
from .escape import lua, shquote, tcl
from .site import Site

# RELION's helper programs, by the variable its GUI reads and the command that provides them.
RELION_HELPERS = {"RELION_CTFFIND_EXECUTABLE": "ctffind", "RELION_MOTIONCOR2_EXECUTABLE": "MotionCor2",
                  "RELION_GCTF_EXECUTABLE": "Gctf", "RELION_RESMAP_EXECUTABLE": "ResMap"}
# Where a helper image is mounted inside other containers (Apptainer image mounts).
HELPER_MOUNTS = "/run/cryostack/helpers"
# RELION programs that take --gpu (CUDA builds) or --cpu (ALTCPU builds).
GPU_COMMANDS = {"relion_refine", "relion_refine_mpi", "relion_autopick", "relion_autopick_mpi"}
CPU_COMMANDS = {"relion_refine", "relion_refine_mpi"}
OCI_REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,511}$")
FINGERPRINT = re.compile(r"^[0-9a-f]{12,128}$")
MPI_KINDS = ("openmpi", "intelmpi")


@dataclass(frozen=True)
class Image:
    """One published image, as the cluster side uses it."""

    key: str
    software: str
    version: str
    variant: str
    accel: str
    cuda_arch: Optional[int]
    toolchain: str
    mpi: str
    commands: Tuple[str, ...]
    fingerprint: str
    reference: str       # SIF path (Apptainer) or OCI reference (Docker, Podman)
    prefix: str          # where the software lives inside the image
    targets: Tuple[str, ...]
    cpu_features: Tuple[str, ...]
    serves: Tuple[str, ...] = field(default=())

    @property
    def slot(self) -> str:
        return f"{self.version}-{self.variant}"

    def wrapper(self, command: str) -> str:
        """Path (relative to the prefix) of the wrapper that runs COMMAND in exactly this image."""
        return f"libexec/{self.software}/{self.slot}/{command}"


def selector(software: str) -> str:
    """The variable a module sets to choose a version (or version-variant) of SOFTWARE."""
    return "CRYOSTACK_" + re.sub(r"[^A-Z0-9]", "_", software.upper())


def read_images(manifest: dict, site: Site, manifest_path: Path) -> List[Image]:
    """The manifest's entries with every value the generated files use checked; InputError names the entry."""
    store = manifest_path.parent
    images = []
    for key, entry in manifest["images"].items():
        where = f"{manifest_path}: images[{key!r}]"

        def fail(message: str) -> InputError:
            return InputError(f"{where}: {message}")

        if not isinstance(entry, dict):
            raise fail("an entry must be a mapping")
        for name in ("family", "version", "variant"):
            if not isinstance(entry.get(name), str) or not re.fullmatch(IDENTIFIER, entry[name]):
                raise fail(f"{name}: {entry.get(name)!r} is not a plain name (letters, digits, . _ + -)")
        if key != f"{entry['family']}/{entry['version']}/{entry['variant']}":
            raise fail("the key must be family/version/variant of its entry")
        commands = []
        for index, command in enumerate(entry.get("commands") or []):
            name = command.get("name") if isinstance(command, dict) else None
            if not isinstance(name, str) or not re.fullmatch(IDENTIFIER, name) or name.startswith("cryostack-"):
                raise fail(f"commands[{index}].name: {name!r} is not a plain command name")
            commands.append(name)
        if not isinstance(entry.get("fingerprint"), str) or not FINGERPRINT.fullmatch(entry["fingerprint"]):
            raise fail("fingerprint: not a hex digest")
        accel = entry.get("accel")
        if accel not in ("cpu", "cuda"):
            raise fail(f"accel: {accel!r} is not cpu or cuda")
        cuda_arch = entry.get("cuda_arch")
        if cuda_arch is not None and (not isinstance(cuda_arch, int) or isinstance(cuda_arch, bool)
                                      or not 10 <= cuda_arch <= 999):
            raise fail(f"cuda_arch: {cuda_arch!r} is not an SM number such as 86")
        targets = entry.get("targets") or []
        if not isinstance(targets, list) or not all(isinstance(t, str) and re.fullmatch(r"[a-z][a-z0-9-]{0,15}", t)
                                                    for t in targets):
            raise fail("targets: not a list of instance families")
        labels = entry.get("labels") or {}
        if not isinstance(labels, dict):
            raise fail("labels: not a mapping")
        toolchain = entry.get("toolchain") or labels.get("io.cryostack.toolchain") or "gcc"
        if not isinstance(toolchain, str) or not re.fullmatch(IDENTIFIER, toolchain):
            raise fail(f"toolchain: {toolchain!r} is not a plain name")
        # The MPI the image was built with decides the launcher; oneAPI images carry Intel MPI.
        mpi = labels.get("io.cryostack.mpi") or ("intelmpi" if toolchain == "oneapi" else "openmpi")
        if mpi not in MPI_KINDS:
            raise fail(f"labels['io.cryostack.mpi']: {mpi!r} is not one of {', '.join(MPI_KINDS)}")
        features = labels.get("io.cryostack.cpu-features", "")
        if not isinstance(features, str) or not re.fullmatch(r"[a-z0-9_,-]*", features):
            raise fail("labels['io.cryostack.cpu-features']: not a comma-separated list of CPU features")
        prefix = entry.get("prefix") or labels.get("io.cryostack.prefix") or "/"
        if not isinstance(prefix, str) or not re.fullmatch(r"/[A-Za-z0-9._/+-]{0,255}", prefix) or "/../" in prefix + "/":
            raise fail(f"prefix: {prefix!r} is not an absolute path of plain names")
        if site.runtime == "apptainer":
            sif = (entry.get("sif") or {}).get("path") if isinstance(entry.get("sif"), dict) else None
            try:
                reference = str(store / confined(".", sif)) if isinstance(sif, str) else None
            except ValueError as exc:
                raise fail(f"sif.path: {exc}") from None
            if reference is None:
                raise fail("sif.path: missing")
        else:
            oci = entry.get("oci") if isinstance(entry.get("oci"), dict) else {}
            reference = ((oci or {}).get("references") or [entry.get("image")])[0]
            # An image reference that starts with '-' would be read by docker/podman as an option.
            if not isinstance(reference, str) or not OCI_REFERENCE.fullmatch(reference):
                raise fail(f"image reference {reference!r} is not a plain OCI reference (it must not start with '-')")
        images.append(Image(
            key=key, software=entry["family"], version=entry["version"], variant=entry["variant"], accel=accel,
            cuda_arch=cuda_arch, toolchain=toolchain, mpi=mpi, commands=tuple(commands),
            fingerprint=entry["fingerprint"], reference=reference, prefix=prefix.rstrip("/"),
            targets=tuple(targets), cpu_features=tuple(f for f in features.split(",") if f)))
    return images


def served(images: List[Image], site: Site, site_file: str, warn=lambda text: None) -> List[Image]:
    """Each image with the site's instance families it can serve: those its catalogue entry targets,
    those the hardware table says it fits (CUDA images by SM, CPU images by CPU features when the
    image declares them), and those the site assigns it explicitly."""
    result = []
    for image in images:
        families = []
        for family in site.families:
            row = site.table.row(family)
            fits = (row.gpu is not None and row.gpu.sm == image.cuda_arch) if image.accel == "cuda" else \
                (row.gpu is None and bool(image.cpu_features) and set(image.cpu_features) <= row.features)
            chosen = site.variants.get(image.software, {}).get(family) == image.variant
            if chosen and image.accel == "cuda" and not (row.gpu and row.gpu.sm == image.cuda_arch):
                warn(f"{site_file}: variants.{image.software}.{family}: {image.variant} is built for sm_{image.cuda_arch}, "
                     f"{family} has {'sm_%d' % row.gpu.sm if row.gpu else 'no GPU'}; not used there")
                continue
            if family in image.targets or fits or chosen:
                families.append(family)
        result.append(Image(**{**image.__dict__, "serves": tuple(families)}))
    return result


def defaults(images: List[Image], site: Site, site_file: str, warn=lambda text: None) -> Dict[str, Dict[str, Image]]:
    """software -> instance family -> the image that runs when no module chose a version: the site's
    chosen variant, else the newest version (CUDA images first on GPU families)."""
    chosen: Dict[str, Dict[str, Image]] = {}
    for software in sorted({i.software for i in images}):
        entries = [i for i in images if i.software == software]
        for family in site.families:
            wanted = site.variants.get(software, {}).get(family)
            candidates = [i for i in entries if family in i.serves and (wanted is None or i.variant == wanted)]
            if wanted and not candidates:
                have = ", ".join(sorted({i.variant for i in entries})) or "none"
                warn(f"{site_file}: variants.{software}.{family}: {wanted!r} is not published for {family} "
                     f"(published variants of {software}: {have}); no {software} wrappers for {family}")
                continue
            if candidates:
                gpu = site.table.has_gpus(family)
                chosen.setdefault(software, {})[family] = max(candidates, key=lambda i: (
                    version_order(i.version), (i.accel == "cuda") == gpu, i.variant))
    return chosen


def _choices(images: List[Image], default: Dict[str, Image], site: Site, software: str, family: str,
             command: str) -> List[Tuple[List[str], Image]]:
    """The selector values a dispatcher accepts on FAMILY, each with the image it runs: '' (no module
    loaded) runs the default, a version runs that version (the site's variant if it is one of them),
    version-variant runs exactly that image."""
    entries = sorted((i for i in images if i.software == software and family in i.serves and command in i.commands),
                     key=lambda i: (version_order(i.version), i.variant), reverse=True)
    wanted = site.variants.get(software, {}).get(family)
    gpu = site.table.has_gpus(family)
    by_version: Dict[str, List[Image]] = {}
    for image in entries:
        by_version.setdefault(image.version, []).append(image)

    def pick(group: List[Image]) -> Image:
        if default.get(family) in group:
            return default[family]
        return max(group, key=lambda i: (i.variant == wanted, (i.accel == "cuda") == gpu, i.variant))

    picked = {version: pick(group) for version, group in by_version.items()}
    result: List[Tuple[List[str], Image]] = []
    for image in entries:
        values = ([""] if default.get(family) is image else []) + [image.slot]
        if picked[image.version] is image:
            values.append(image.version)
        result.append((values, image))
    return result


def render(manifest: dict, site: Site, site_file: str, manifest_path: Path, prefix: Path,
           templates: Path, presets: Dict[str, dict], warn=lambda text: None) -> Dict[str, Tuple[str, int]]:
    """Every file to write, relative to PREFIX: text and mode."""
    # The prefix is written into scripts that run as root at every login: only a plain path will do.
    try:
        _absolute_path(str(prefix))
    except ValueError as exc:
        raise InputError(f"--prefix {str(prefix)!r}: {exc}") from None
    if set(":,") & set(str(prefix)):
        raise InputError(f"--prefix {str(prefix)!r}: cannot hold ':' or ',' (the runtimes' bind separators)")
    if printable_problem(str(manifest_path)):
        raise InputError(f"--manifest {str(manifest_path)!r}: {printable_problem(str(manifest_path))}")
    search = [str(d) for d in (site.templates_dir(), templates) if d]
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(search), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)
    env.filters.update(shquote=shquote, lua=lua, tcl=tcl)
    images = served(read_images(manifest, site, manifest_path), site, site_file, warn)
    chosen = defaults(images, site, site_file, warn)
    files: Dict[str, Tuple[str, int]] = {}
    context = dict(site=site, prefix=str(prefix), bin=str(prefix / "bin"), manifest=str(manifest_path),
                   helper_mounts=HELPER_MOUNTS, runtime=site.runtime, login_family=site.login,
                   partitions=[(name, q.family, site.gpus(q)) for name, q in site.partitions])

    def add(relpath: str, template: str, mode: int, **values) -> None:
        try:
            text = env.get_template(template).render(**context, **values)
        except jinja2.TemplateError as exc:
            raise InputError(f"{template}: {exc}") from None
        files[relpath] = (text, mode)

    # Wrappers: one per image and command, and <command>_<family> for each family's default.
    for image in images:
        if not image.serves:
            continue
        helpers = _helpers(image, chosen, site, warn)
        for command in image.commands:
            # Every image gets the host's Slurm client: RELION's pipeliner submits from inside its container.
            mounts = [(path, path) for path in site.binds] + site.slurm_mounts
            values = dict(image=image, command=command, helpers=helpers, mounts=mounts,
                          add_gpu=image.accel == "cuda" and command in GPU_COMMANDS,
                          add_cpu=image.software == "relion" and image.accel == "cpu" and command in CPU_COMMANDS)
            add(image.wrapper(command), "wrapper.sh.j2", 0o755, name=f"{command} ({image.key})", **values)
            for family, default in (chosen.get(image.software) or {}).items():
                if default is image:
                    add(f"bin/{command}_{family}", "wrapper.sh.j2", 0o755, name=f"{command}_{family}", **values)
    # Dispatchers: one per command name.
    commands: Dict[str, str] = {}
    for image in images:
        for command in image.commands:
            if image.serves and commands.setdefault(command, image.software) != image.software:
                warn(f"{manifest_path}: command {command} is provided by both {commands[command]} and "
                     f"{image.software}; {commands[command]} keeps it")
    for command, software in sorted(commands.items()):
        default = chosen.get(software, {})
        table = {family: _choices(images, default, site, software, family, command) for family in site.families}
        table = {f: c for f, c in table.items() if c}
        add(f"bin/{command}", "dispatcher.sh.j2", 0o755, command=command, software=software,
            selector=selector(software), choices=table, families=list(table),
            login=site.login if site.login in table else None)
    add("bin/cryostack-mpirun", "mpirun.sh.j2", 0o755)
    add("bin/cryostack-sbatch", "sbatch.sh.j2", 0o755)
    add("qsub/relion.sh", "qsub.sh.j2", 0o644)
    for variable, command in RELION_HELPERS.items():
        provider = next((i for i in images if command in i.commands and i.serves), None)
        if provider:
            add(f"inside/{command}", "inside.sh.j2", 0o755, command=command, image=provider)
    _modules(add, images, chosen, site, prefix, presets, warn)
    add("on-node-configured.sh", "on-node-configured.sh.j2", 0o755)
    return files


def _helpers(image: Image, chosen: Dict[str, Dict[str, Image]], site: Site, warn) -> List[Tuple[str, str]]:
    """The helper images (ctffind, ...) a RELION wrapper mounts: (mount point, SIF), for Apptainer."""
    if image.software != "relion" or site.runtime != "apptainer":
        return []
    mounts = []
    for command in RELION_HELPERS.values():
        for family in image.serves:
            provider = next((i for s in chosen.values() for f, i in s.items() if f == family and command in i.commands),
                            None)
            if provider and not set(":,") & set(provider.reference):  # the runtime's separators
                mounts.append((f"{HELPER_MOUNTS}/{command}", provider.reference))
                break
    return mounts


def relion_env(site: Site, prefix: Path, queue: str, nodes: int, helpers: Dict[str, str],
               ranks: Optional[int] = None, threads: Optional[int] = None) -> List[Tuple[str, str]]:
    """What RELION's GUI reads, as (variable, value): submit with cryostack-sbatch through the one
    template, start MPI with cryostack-mpirun, helpers at paths valid inside its container."""
    env = [
        ("RELION_QSUB_COMMAND", f"{prefix}/bin/cryostack-sbatch"),
        ("RELION_QUEUE_USE", "yes"),
        ("RELION_QUEUE_NAME", queue),
        ("RELION_QSUB_TEMPLATE", f"{prefix}/qsub/relion.sh"),
        ("RELION_QSUB_EXTRA_COUNT", "1"),
        ("RELION_QSUB_EXTRA1", "Number of nodes:"),
        ("RELION_QSUB_EXTRA1_DEFAULT", str(nodes)),
        ("RELION_QSUB_EXTRA1_HELP", "Nodes (sbatch --nodes) the MPI ranks spread over; a whole number, at least 1"),
        ("RELION_MPIRUN", f"{prefix}/bin/cryostack-mpirun"),
        ("RELION_SCRATCH_DIR", site.node_scratch),
    ]
    if ranks:
        env += [("RELION_QSUB_NRMPI", str(ranks)), ("RELION_QSUB_NRTHREADS", str(threads))]
    env += [(variable, f"{prefix}/inside/{command}") for variable, command in helpers.items()]
    return env


def _modules(add, images: List[Image], chosen: Dict[str, Dict[str, Image]], site: Site, prefix: Path,
             presets: Dict[str, dict], warn) -> None:
    """Module files for Lmod (.lua) and Environment Modules (Tcl), one tree each: a module per
    version and per version-variant (family "<software>", so one replaces another), a declared
    default, and the RELION presets (family "relion_preset")."""
    helpers = {variable: command for variable, command in RELION_HELPERS.items()
               if any(command in i.commands and i.serves for i in images)}
    by_software: Dict[str, List[Image]] = {}
    for image in images:
        if image.serves:
            by_software.setdefault(image.software, []).append(image)
    for software, entries in sorted(by_software.items()):
        versions = sorted({i.version for i in entries}, key=version_order)
        default_images = list((chosen.get(software) or {}).values())
        default_version = max((i.version for i in default_images), key=version_order) if default_images else versions[-1]
        modules = [(version, [i for i in entries if i.version == version], version) for version in versions]
        modules += [(i.slot, [i], i.slot) for i in entries]
        for name, members, value in modules:
            serves = [f for f in site.families if any(f in i.serves for i in members)]
            queue = next(q.name for q in site.queues if q.family in serves)
            env = relion_env(site, prefix, queue, 1, helpers) if software == "relion" else []
            values = dict(software=software, module=name, members=members, value=value, selector=selector(software),
                          serves=serves, env=env, commands=list(dict.fromkeys(c for i in members for c in i.commands)),
                          family_name=re.sub(r"[^a-z0-9_]", "_", software.lower()))
            add(f"modules/lmod/cryostack/{software}/{name}.lua", "module.lua.j2", 0o644, **values)
            add(f"modules/tcl/cryostack/{software}/{name}", "module.tcl.j2", 0o644, **values)
        for tree in ("lmod", "tcl"):
            add(f"modules/{tree}/cryostack/{software}/.version", "version.j2", 0o644,
                software=software, default=default_version)
    for name, preset in presets.items():
        if not preset["available"]:
            warn(f"preset {name}: {preset['reason']}; no module for it")
            continue
        env = relion_env(site, prefix, preset["queue"], preset["nodes"], helpers, preset["mpi_ranks"], preset["threads"])
        add(f"modules/lmod/cryostack/relion-preset/{name}.lua", "preset.lua.j2", 0o644, name=name, preset=preset, env=env)
        add(f"modules/tcl/cryostack/relion-preset/{name}", "preset.tcl.j2", 0o644, name=name, preset=preset, env=env)


def write(files: Dict[str, Tuple[str, int]], prefix: Path) -> None:
    """Write every file by rename, so running jobs never see a half-written wrapper; nothing lands
    outside PREFIX, whatever a path was made of."""
    root = prefix.resolve()
    for relpath, (text, mode) in sorted(files.items()):
        try:
            target = Path(confined(root, relpath))
        except ValueError as exc:
            raise InputError(f"{relpath!r}: {exc}; not written") from None
        if root not in target.resolve().parents:
            raise InputError(f"{relpath}: would be written outside {prefix}")
        write_text_atomically(target, text, mode)
