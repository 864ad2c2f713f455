"""What the cluster tests share: published manifests made of plain entries, site files, the
generated tree, a recording stand-in for the container runtime, and the module systems."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from cryostack.publish import manifest as manifests
from helpers import cryostack, write_site

RELION_COMMANDS = ["relion_refine", "relion_refine_mpi", "relion_run_ctffind", "relion_postprocess", "relion_pipeliner"]


def entry(family: str, version: str, variant: str, *, accel: str = "cpu", cuda_arch: Optional[int] = None,
          targets: Iterable[str] = (), commands: Iterable[str] = (), toolchain: str = "gcc",
          labels: Optional[dict] = None, prefix: str = "/opt/x", image: Optional[str] = None) -> dict:
    """A manifest entry as `publish` writes it, with a fingerprint derived from its key."""
    key = f"{family}/{version}/{variant}"
    fingerprint = hashlib.sha256(key.encode()).hexdigest()
    return {
        "family": family, "version": version, "variant": variant, "targets": list(targets), "accel": accel,
        "cuda_arch": cuda_arch, "toolchain": toolchain,
        "commands": [{"name": c, "mpi": c.endswith("_mpi")} for c in commands], "prefix": prefix,
        "fingerprint": fingerprint,
        "sif": {"path": f"images/{key}/{fingerprint[:12]}.sif", "sha256": "0" * 64, "size": 1},
        "oci": {"registry": "127.0.0.1:5000", "repository": f"cryostack/{family}", "digest": "sha256:" + fingerprint,
                "references": [image or f"cryostack/{family}:{version}-{variant}"]},
        "image": image or f"cryostack/{family}:{version}-{variant}", "labels": labels or {},
        "published": "2026-01-01T00:00:00Z", "history": [],
    }


def relion_entries() -> List[dict]:
    """Two RELION versions with GPU and CPU variants, and CTFFIND: a site's typical published tree."""
    return [
        entry("relion", "5.0.1", "gcc-cuda86", accel="cuda", cuda_arch=86, targets=["g5"], commands=RELION_COMMANDS),
        entry("relion", "5.0.1", "gcc-cuda75", accel="cuda", cuda_arch=75, targets=["g4dn"], commands=RELION_COMMANDS),
        entry("relion", "5.0.1", "gcc-cpu", targets=["c6i", "c5"], commands=RELION_COMMANDS),
        entry("relion", "5.0.1", "oneapi-cpu-avx512", targets=["c6i"], toolchain="oneapi", commands=RELION_COMMANDS),
        entry("relion", "4.0.1", "gcc-cuda86", accel="cuda", cuda_arch=86, targets=["g5"], commands=RELION_COMMANDS),
        entry("relion", "4.0.1", "gcc-cpu", targets=["c6i"], commands=RELION_COMMANDS),
        entry("ctffind", "4.1.14", "gcc-cpu", targets=["c6i", "g4dn", "g5"], commands=["ctffind"], prefix="/opt/ctffind"),
    ]


def write_manifest(path: Path, entries: Iterable[dict], touch_sifs: bool = True) -> Path:
    """manifest.json with ENTRIES (and empty SIF files where they say, so wrappers find them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    images = {f"{e['family']}/{e['version']}/{e['variant']}": e for e in entries}
    data = dict(manifests.empty(), images=images)
    path.write_text(json.dumps(data))
    if touch_sifs:
        for item in images.values():
            sif = path.parent / item["sif"]["path"]
            sif.parent.mkdir(parents=True, exist_ok=True)
            sif.touch()
    return path


def generate(site: Path, manifest: Path, prefix: Path) -> subprocess.CompletedProcess:
    return cryostack("cluster.wrappers", "--site", str(site), "--manifest", str(manifest), "--prefix", str(prefix))


def make_tree(work: Path, entries: Optional[List[dict]] = None, **site_changes) -> Path:
    """A generated tree for the example site (with SITE_CHANGES) and ENTRIES; returns the prefix."""
    manifest = write_manifest(work / "efs" / "manifest.json", entries if entries is not None else relion_entries())
    site = write_site(work / "site.yaml", **site_changes)
    prefix = work / "prefix"
    result = generate(site, manifest, prefix)
    assert result.returncode == 0, result.stdout + result.stderr
    return prefix


# A stand-in for apptainer/docker/podman/srun/mpirun/sbatch: each argument hex-encoded on a line of
# its own, after a first line naming the tool; selected environment variables after that.
RECORDER = """#!/bin/bash
{{ echo "tool=$(basename "$0")"
  for a in "$@"; do printf "%s" "$a" | od -An -tx1 | tr -d ' \\n'; echo; done
  for v in I_MPI_HYDRA_BOOTSTRAP CRYOSTACK_RELION; do echo "env:$v=${{!v:-}}"; done
}} >> {log}
"""


class Recorder:
    """Stand-ins for the tools generated scripts call; what each call got is read back from a log."""

    def __init__(self, work: Path, tools=("apptainer", "docker", "podman", "srun", "mpirun", "sbatch")):
        self.dir = work / "tools"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = work / "tools.log"
        for tool in tools:
            path = self.dir / tool
            path.write_text(RECORDER.format(log=self.log))
            path.chmod(0o755)

    def calls(self) -> List[dict]:
        """Each call: {'tool': name, 'argv': [...], 'env': {...}}."""
        calls: List[dict] = []
        if not self.log.exists():
            return calls
        for line in self.log.read_text().splitlines():
            if line.startswith("tool="):
                calls.append({"tool": line[5:], "argv": [], "env": {}})
            elif line.startswith("env:"):
                name, _, value = line[4:].partition("=")
                calls[-1]["env"][name] = value
            else:
                calls[-1]["argv"].append(bytes.fromhex(line).decode(errors="replace"))
        return calls

    def reset(self) -> None:
        self.log.unlink(missing_ok=True)

    def env(self, **extra) -> Dict[str, str]:
        """The test's environment with the stand-ins first on PATH and no Slurm or cryostack variables."""
        environment = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "CRYOSTACK_", "RELION_"))}
        environment["PATH"] = f"{self.dir}:{os.environ['PATH']}"
        environment.update(extra)
        return environment


def run(path: Path, *args: str, env: Dict[str, str], cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(path), *args], capture_output=True, text=True, env=env, cwd=cwd)


def fill(template: str, **fields) -> str:
    """The qsub template filled as RELION's pipeline code does (RelionJob::saveJobSubmissionScript):
    every XXXfieldXXX replaced; each MPI command (or the only command with one rank) on a copy of
    the XXXcommandXXX line, other commands on lines of their own."""
    commands = fields.pop("commands")
    lines = []
    for line in template.splitlines():
        for name, value in fields.items():
            line = line.replace(f"XXX{name}XXX", str(value))
        if "XXXcommandXXX" not in line:
            lines.append(line)
            continue
        for command in commands:
            if "relion_" in command and ("_mpi`" in command or int(fields["mpinodes"]) == 1):
                lines.append(line.replace("XXXcommandXXX", command, 1))
            else:
                lines.append(command)
    return "\n".join(lines) + "\n\n"


# --- sites on the test Slurm (tests/integration) ---------------------------------------------

# The test Slurm's partitions (conftest.slurm) and an instance type of each family.
INSTANCES = {"g5": "g5.12xlarge", "g4dn": "g4dn.12xlarge", "c6i": "c6i.32xlarge"}

def slurm_client() -> dict:
    """Where Debian puts the Slurm client: what containers get bound in to submit jobs."""
    libmunge = next(Path("/usr/lib").glob("*/libmunge.so.2"), None)
    return {"commands": [shutil.which("sbatch")], "paths": [str(p) for p in Path("/usr/lib").glob("*/slurm-wlm")],
            "libraries": [str(libmunge)] if libmunge else []}


def site_wrappers(work: Path, manifest: Path, runtime: str, **changes) -> Path:
    """A site file for the test Slurm's partitions and the wrappers generated from it."""
    (work / "scratch").mkdir(exist_ok=True)
    site = dict(runtime=runtime, extra_binds=[str(work)], variants={}, fsx=None, node_scratch=str(work / "scratch"),
                image_store={"efs_id": "fs-0123456789abcdef0", "mount": str(manifest.parent), "root": str(manifest.parent)},
                queues=[{"name": f, "instance_types": [t], "max_count": 2} for f, t in INSTANCES.items()],
                slurm_client=slurm_client(), module_system="lmod")
    if runtime != "apptainer":
        site["runtime_install"] = None
    site.update(changes)
    site_file = write_site(work / f"site-{runtime}.yaml", **site)
    prefix = work / f"cluster-{runtime}"
    result = cryostack("cluster.wrappers", "--site", str(site_file), "--manifest", str(manifest), "--prefix", str(prefix))
    assert result.returncode == 0, result.stdout + result.stderr
    return prefix


# Debian ships no host Apptainer for bookworm; sid's runs in the tool container (ENVIRONMENT.md),
# where loop devices cannot be attached, so SIFs are mounted with --userns (squashfuse). This
# stand-in for /usr/bin/apptainer forwards an `apptainer exec` there. The container shares the
# host's network, IPC, PIDs and /tmp (where the test Slurm keeps munge's socket and PMIx's
# rendezvous) and gets Slurm's and PMIx's variables, as a host Apptainer would; the wrapper's own
# arguments pass through untouched.
APPTAINER_SHIM = """#!/bin/bash
[ "$1" = exec ] || {{ echo "apptainer stand-in: only exec" >&2; exit 64; }}
shift
env_args=()
while IFS= read -r name; do env_args+=(-e "$name"); done < <(compgen -e | grep -E '^(PMIX|PMI|OMPI|SLURM|CRYOSTACK|RELION|OMP)_' || true)
exec docker run --rm -i --network host --ipc host --pid host --cap-add SYS_ADMIN --security-opt seccomp=unconfined \\
    --security-opt apparmor=unconfined --device /dev/fuse -v /tmp:/tmp -v {work}:{work} {extra} "${{env_args[@]}}" \\
    -w "$PWD" local/apptainer:sid apptainer exec --userns "$@"
"""


def apptainer_shim(work: Path) -> Path:
    """The stand-in in WORK/apptainer-bin. The Slurm client the wrappers bind in lives outside the
    work tree: the tool container gets it too, as a host Apptainer would see it."""
    client = slurm_client()
    extra = " ".join(f"-v {p}:{p}:ro" for p in [*client["commands"], *client["paths"], *client["libraries"]])
    shim = work / "apptainer-bin" / "apptainer"
    shim.parent.mkdir(exist_ok=True)
    shim.write_text(APPTAINER_SHIM.format(work=work, extra=extra))
    shim.chmod(0o755)
    return shim.parent


# --- module systems from Debian ----------------------------------------------------------------

LMOD_INIT = Path("/usr/share/lmod/lmod/init/bash")
# Debian's lmod and environment-modules conflict; ci/setup.sh installs lmod and unpacks
# environment-modules here (its modulecmd.tcl runs from any directory).
TCL_MODULECMDS = [Path("/usr/lib/x86_64-linux-gnu/modulecmd.tcl"),
                  Path("/opt/environment-modules/usr/lib/x86_64-linux-gnu/modulecmd.tcl")]


def tcl_modulecmd() -> Optional[Path]:
    return next((p for p in TCL_MODULECMDS if p.is_file()), None) if shutil.which("tclsh") else None


def module_shell(system: str, modulepath: Path, script: str, env: Dict[str, str]) -> subprocess.CompletedProcess:
    """Run SCRIPT in bash with `module` from the real Lmod or Environment Modules and MODULEPATH set."""
    if system == "lmod":
        setup = f". {LMOD_INIT}\n"
    else:
        setup = f'module() {{ eval "$(tclsh {tcl_modulecmd()} bash "$@")"; }}\n'
    environment = {k: v for k, v in env.items() if not k.startswith(("LMOD", "MODULE", "__LMOD", "__MODULES", "_LM"))}
    environment.update(MODULEPATH=str(modulepath))
    return subprocess.run(["bash", "--noprofile", "--norc", "-c", setup + script], capture_output=True, text=True,
                          env=environment)
