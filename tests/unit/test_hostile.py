"""Hostile values in the site file and in manifest entries (property-based, Hypothesis): each is
either refused with exit code 2 and a one-line message naming where it came from, or it yields
generated files that are inert. Inert is proven by running them: every wrapper, dispatcher,
launcher, submit command and helper with real bash against recording stand-ins, the node set-up
script (in its own mount namespace, with a private /etc/profile.d) and the login profile with bash
and sh, and every module with real Lmod and real Environment Modules. Every payload would create
a marker file; it must never appear, and nothing may be written outside the prefix."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from cryostack.app.cluster import cluster_wrappers
from cryostack.project import Project
from cryostack.errors import InputError
from helpers import ROOT
from sites import LMOD_INIT, Recorder, entry, module_shell, tcl_modulecmd

ARENA = Path(tempfile.mkdtemp(prefix="cryostack-hostile-"))
MARKER = ARENA / "PWNED"
EXAMPLES = int(os.environ.get("CRYOSTACK_HOSTILE_EXAMPLES", "20"))

FRAGMENTS = ["\n", "'", '"', f"$(touch {MARKER})", f"`touch {MARKER}`", f"; touch {MARKER}", f"|touch {MARKER}",
             f"\ntouch {MARKER}\n", f"]]; os.execute('touch {MARKER}') --", f"[exec touch {MARKER}]",
             f"\"; exec touch {MARKER}; \"", "../", "..", "/", "\0", "\u202e", "\u2066", "\x1b[31m", "\x7f", "-",
             "--privileged", "-rf", "{", "}", "\\", "$HOME", "${IFS}", "*", " ", "\t", "é", "PROFILE", "x" * 700, ":", ","]
HOSTILE = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6)), min_size=1, max_size=5).map("".join)

# Where values enter: dotted paths into the site file and into one manifest entry.
SITE_FIELDS = ["site", "key_pair", "region", "head_node.subnet", "head_node.instance_type", "image_store.root",
               "image_store.mount", "fsx.mount", "node_scratch", "cluster_prefix", "on_node_configured_url",
               "tags.user", "tags.extra", "queues.0.name", "queues.1.instance_types.0", "extra_binds.0",
               "variants.relion.g5", "intel_mpirun", "slurm_client.paths.0", "slurm_client.commands.0",
               "hardware.g5.gpu.model", "presets.polish.description", "login_family",
               "runtime_install.package_url", "module_system", "templates"]
MANIFEST_FIELDS = ["family", "version", "variant", "commands.0.name", "fingerprint", "sif.path", "prefix",
                   "labels.io\x00cryostack\x00mpi", "labels.io\x00cryostack\x00cpu-features", "toolchain", "targets.0",
                   "accel", "image", "oci.references.0", "(key)"]


def base_site(work: Path) -> dict:
    site = yaml.safe_load((ROOT / "cluster-configs" / "site.example.yaml").read_text())
    site.update(
        image_store={"efs_id": "fs-0123456789abcdef0", "mount": str(work / "efs"), "root": str(work / "efs")},
        fsx={"mount": str(work / "fsx"), "capacity_gib": 1200}, node_scratch=str(work / "scratch"),
        cluster_prefix=str(work / "prefix"), extra_binds=[str(work / "data")], variants={"relion": {"g5": "gcc-cuda86"}},
        queues=[{"name": "g5", "instance_types": ["g5.12xlarge"], "max_count": 2, "spot_twin": True},
                {"name": "c6i", "instance_types": ["c6i.32xlarge"], "max_count": 2}],
        intel_mpirun=str(work / "intel" / "mpirun"), presets={"polish": {"description": "polishing"}},
        hardware={"g5": {"gpu": {"model": "NVIDIA A10G", "sm": 86}, "gpus": {"12xlarge": 4},
                         "efa": ["12xlarge"], "cpu": {"vendor": "amd", "avx512": False}}},
        slurm_client={"commands": [str(work / "slurm" / "sbatch")], "paths": [str(work / "slurm")], "libraries": []})
    return site


def base_entries() -> list:
    commands = ["relion_refine_mpi", "relion_run_ctffind"]
    return [entry("relion", "5.0.1", "gcc-cuda86", accel="cuda", cuda_arch=86, targets=["g5"], commands=commands),
            entry("relion", "5.0.1", "gcc-cpu", targets=["c6i"], commands=commands, toolchain="oneapi"),
            entry("ctffind", "4.1.14", "gcc-cpu", targets=["c6i", "g5"], commands=["ctffind"], prefix="/opt/ctffind")]


def put(data, dotted: str, value) -> None:
    """Set DOTTED (a.b.0.c; NUL inside a part stands for '.') in DATA to VALUE, or append to what is there."""
    parts = [p.replace("\x00", ".") for p in dotted.split(".")]
    for part in parts[:-1]:
        data = data[int(part)] if isinstance(data, list) else data.setdefault(part, {})
    last = parts[-1]
    if isinstance(data, list):
        index = int(last)
        while len(data) <= index:
            data.append("")
        data[index] = (data[index] + value) if isinstance(data[index], str) and data[index] else value
    else:
        current = data.get(last)
        data[last] = (current + value) if isinstance(current, str) and current and not value.startswith("x" * 700) \
            else value


def generate(work: Path, site: dict, entries: list, key_suffix: str = ""):
    """cluster.wrappers as a user runs it (the CLI maps InputError to exit code 2)."""
    for sub in ("efs", "data", "scratch", "fsx", "slurm", "intel"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    site_file = work / "site.yaml"
    site_file.write_text(yaml.safe_dump(site, sort_keys=False, allow_unicode=False))
    images = {}
    for item in entries:
        key = f"{item['family']}/{item['version']}/{item['variant']}"
        images[key + (key_suffix if item is entries[0] else "")] = item
        sif = item.get("sif", {}).get("path") if isinstance(item.get("sif"), dict) else None
        if isinstance(sif, str) and ".." not in sif and "\0" not in sif and not sif.startswith("/"):
            (work / "efs" / sif).parent.mkdir(parents=True, exist_ok=True)
            (work / "efs" / sif).touch()
    manifest = work / "efs" / "manifest.json"
    manifest.write_text(json.dumps({"schema_version": 1, "generator": "test", "updated": None, "images": images}))
    try:
        cluster_wrappers(Project(ROOT), str(site_file), str(manifest), str(work / "prefix"))
    except InputError as exc:
        return exc, site_file, manifest
    return None, site_file, manifest


def refused_well(error: InputError, site_file: Path, manifest: Path) -> None:
    message = str(error)
    assert error.exit_code == 2
    assert "\n" not in message and "Traceback" not in message, message
    located = re.match(rf"^{re.escape(str(site_file))}:\d+: ", message) or message.startswith(f"{manifest}: images[") \
        or message.startswith((f"{manifest}:", "--prefix", "--manifest", "presets.yaml", "cluster-configs/presets.yaml"))
    assert located, message


def run_everything(work: Path) -> None:
    """Run every generated script and module; the payloads would create MARKER."""
    prefix = work / "prefix"
    recorder = Recorder(work)
    env = recorder.env(HOME=str(work))
    scripts = sorted(p for d in ("bin", "libexec", "inside") for p in (prefix / d).rglob("*") if p.is_file())
    assert scripts, "something was generated"
    job = work / "job.sh"
    job.write_text("#!/bin/bash\n#SBATCH --partition=g5\n")
    for script in scripts:
        for extra in ({}, {"SLURM_JOB_PARTITION": "g5", "SLURM_JOB_ID": "1"}, {"CRYOSTACK_QUERY": "mpi"}):
            args = [str(job)] if script.name == "cryostack-sbatch" else \
                (["-n", "2", str(prefix / "bin" / "ctffind")] if script.name == "cryostack-mpirun" else ["--o", "x"])
            subprocess.run(["bash", str(script), *args], env={**env, **extra}, capture_output=True, timeout=30, cwd=work)
    node = prefix / "on-node-configured.sh"
    if node.exists() and shutil.which("unshare"):
        # Its own mount namespace: /etc/profile.d is a private tmpfs, the profile it writes is read there.
        wrapped = (f"mount -t tmpfs none /etc/profile.d && bash {node} ; "
                   f"for sh in bash sh; do $sh -c '. /etc/profile.d/zz-cryostack.sh; echo ok'; done")
        subprocess.run(["unshare", "-m", "sh", "-c", wrapped], env=env, capture_output=True, timeout=60, cwd=work)
    for system in ("lmod", "tcl"):
        tree = prefix / "modules" / system
        if not tree.is_dir() or (system == "lmod" and not LMOD_INIT.is_file()) or (system == "tcl" and not tcl_modulecmd()):
            continue
        names = sorted(str(p.relative_to(tree)).removesuffix(".lua") for p in tree.rglob("*")
                       if p.is_file() and not p.name.startswith("."))
        script = "".join(f"module load {n!r} 2>/dev/null\nmodule help {n!r} >/dev/null 2>&1\nmodule unload {n!r} 2>/dev/null\n"
                         for n in names)
        module_shell(system, tree, script + "module load cryostack/relion 2>/dev/null\nrelion_refine_mpi --o x\n", env)


def check_inert(work: Path) -> None:
    assert not MARKER.exists(), "a payload ran"
    allowed = {"prefix", "efs", "data", "scratch", "fsx", "slurm", "intel", "site.yaml", "tools", "tools.log", "job.sh"}
    strays = sorted(p.name for p in work.iterdir() if p.name not in allowed)
    assert not strays, f"written outside the prefix: {strays}"
    assert [p.name for p in ARENA.iterdir()] == [work.name], "nothing beside the work directory"


def _arena_work() -> Path:
    for stale in ARENA.iterdir():
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(dir=ARENA))
    os.chmod(work, 0o755)
    return work


FAST = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


@FAST
@given(field=st.sampled_from(SITE_FIELDS), value=HOSTILE)
def test_hostile_site_values_are_refused_or_inert(field, value):
    work = _arena_work()
    site = base_site(work)
    put(site, field, value)
    error, site_file, manifest = generate(work, site, base_entries())
    if error:
        refused_well(error, site_file, manifest)
    else:
        run_everything(work)
    check_inert(work)


@FAST
@given(field=st.sampled_from(MANIFEST_FIELDS), value=HOSTILE, runtime=st.sampled_from(["apptainer", "docker"]))
def test_hostile_manifest_values_are_refused_or_inert(field, value, runtime):
    work = _arena_work()
    site = base_site(work)
    site["runtime"] = runtime
    entries = base_entries()
    suffix = ""
    if field == "(key)":
        suffix = value
    elif field == "commands.0.name":
        entries[0]["commands"][0]["name"] += value
    else:
        put(entries[0], field, value)
    error, site_file, manifest = generate(work, site, entries, suffix)
    if error:
        refused_well(error, site_file, manifest)
    else:
        run_everything(work)
    check_inert(work)


@pytest.mark.parametrize("field, value", [
    ("commands.0.name", "../../x"), ("version", f"1$(touch {MARKER})"), ("image", "--privileged"),
    ("sif.path", "../../../etc/shadow"), ("prefix", "/opt/x\nexec touch /tmp/y"),
])
def test_known_attacks_are_refused(field, value):
    work = _arena_work()
    site = base_site(work)
    site["runtime"] = "docker" if field == "image" else "apptainer"
    entries = base_entries()
    if field == "commands.0.name":
        entries[0]["commands"][0]["name"] = value
    elif field == "sif.path":
        entries[0]["sif"]["path"] = value
    else:
        entries[0][field] = value
        if field == "image":
            entries[0]["oci"] = None
    error, site_file, manifest = generate(work, site, entries)
    assert error is not None, f"{field}={value!r} was accepted"
    refused_well(error, site_file, manifest)
    check_inert(work)


def test_the_base_site_and_manifest_generate_and_run(tmp_path):
    """The hostile tests start from a tree that works: a payload-free run generates and runs."""
    work = _arena_work()
    error, _, _ = generate(work, base_site(work), copy.deepcopy(base_entries()))
    assert error is None, error
    run_everything(work)
    check_inert(work)
    assert (work / "prefix" / "bin" / "relion_refine_mpi").exists()
