"""Helpers shared by the tests: the checkout's root, the CLI as a user runs it, the test project."""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

from cryostack import record as records
from cryostack.app.images import planned_images
from cryostack.project import Project
from cryostack.settings import BuildSettings
from cryostack.sources import sha256_of

ROOT = Path(__file__).resolve().parents[1]
HELLO = ROOT / "tests" / "data" / "hello"
ONEAPI_STANDIN = ROOT / "tests" / "data" / "oneapi-standin"
# What the stand-in toolkit needs from Debian to build (its shims run GCC, Open MPI's wrappers and link
# FFTW and oneTBB) and to run (the programs load Open MPI, which cannot be carried in the toolkit's tree).
STANDIN_BUILD_PACKAGES = ["gcc", "g++", "libopenmpi-dev", "openmpi-bin", "libfftw3-dev", "libtbb-dev"]
STANDIN_RUNTIME_PACKAGES = ["libopenmpi3", "openmpi-bin"]
# name -> (compiler flags, smoke expectation): one good family and three that must fail verification.
FAMILIES = {
    "hello": ("-O2", "hello {version}"),
    "broken": ("-DBROKEN", "hello {version}"),          # does not compile
    "badsmoke": ("-O2", "hello {version}-nope"),         # smoke output does not match
    "nolib": ("-O2 -fopenmp", "hello {version}"),        # needs libgomp, absent from the runtime stage
    "other": ("-O3", "hello {version}"),                 # a second good image
}



def cryostack(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the console script in a fresh interpreter, exactly as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "cryostack", *args],
        cwd=cwd, capture_output=True, text=True, env=env, check=False,
    )


def hello_tarball(dest: Path) -> str:
    """hello-1.0.tar.gz with fixed metadata (same bytes every time); returns its sha256."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.GNU_FORMAT) as tar:
        for name in ("hello.c", "hello.cu", "Makefile"):
            data = (HELLO / "src" / name).read_bytes()
            info = tarfile.TarInfo(f"hello-1.0/{name}")
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    dest.write_bytes(buffer.getvalue())
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def oneapi_standin_installer(dest: Path) -> str:
    """The stand-in oneAPI offline installer (tests/data/oneapi-standin): its script with a tar.gz of
    tree/ appended, as Intel's self-extracting installers are; the same bytes every time. Returns its sha256."""
    tree = ONEAPI_STANDIN / "tree"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path in sorted(tree.rglob("*")):
            info = tarfile.TarInfo(str(path.relative_to(tree)))
            info.mtime = 0
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                data = path.read_bytes()
                info.size, info.mode = len(data), 0o755 if path.stat().st_mode & 0o100 else 0o644
                tar.addfile(info, io.BytesIO(data))
    payload = gzip.compress(buffer.getvalue(), mtime=0)
    dest.write_bytes((ONEAPI_STANDIN / "installer.sh").read_bytes() + payload)
    dest.chmod(0o755)
    return hashlib.sha256(dest.read_bytes()).hexdigest()


def oneapi_toolkit(installer: str, sha256: str | None) -> dict:
    """A catalogue `toolkit:` block for the stand-in installer; unpinned when sha256 is None."""
    pin = {"sha256": sha256} if sha256 else {"unpinned": f"record the sha256 of {installer} here"}
    return {"installers": [{"file": installer, "supplied_by_maintainer": True,
                            "components": ["intel.oneapi.lin.dpcpp-cpp-compiler", "intel.oneapi.lin.mpi.devel"], **pin}],
            "build_packages": STANDIN_BUILD_PACKAGES, "runtime_packages": STANDIN_RUNTIME_PACKAGES}


def hello_family(name: str, flags: str, expect: str, sha256: str, cuda_arch: int | None = None) -> dict:
    """A catalogue entry for the test program; a CUDA variant when cuda_arch is given."""
    variant = {"toolchain": "gcc", "accel": "cpu", "cpu_flags": flags, "targets": ["c6i"]}
    if cuda_arch is not None:
        variant.update(accel="cuda", cuda_arch=cuda_arch, targets=["g5"])
    return {
        "family": name,
        "description": f"test program {name}",
        "recipe": "hello",
        "licence": {"name": "MIT", "redistributable": True},
        "commands": ["hello"],
        "smoke": {"command": "hello --version", "expect": expect},
        "variants": {f"gcc-cuda{cuda_arch}" if cuda_arch else "gcc-cpu": variant},
        "versions": {"1.0": {"source": {
            "url": "https://example.invalid/hello-1.0.tar.gz", "file": "hello-1.0.tar.gz", "sha256": sha256}}},
    }


def make_hello_project(root: Path, families=FAMILIES) -> Path:
    """A cryostack project with the shipped common layouts and the test families:
    name -> (compiler flags, smoke expectation[, cuda arch])."""
    (root / "images").mkdir(parents=True)
    shutil.copytree(ROOT / "recipes" / "common", root / "recipes" / "common")
    shutil.copy(ROOT / "recipes" / "hadolint.yaml", root / "recipes" / "hadolint.yaml")
    shutil.copytree(ROOT / "recipes" / "tools", root / "recipes" / "tools")
    shutil.copytree(HELLO / "recipes" / "hello", root / "recipes" / "hello")
    mirror = root / ".cache" / "sources"
    mirror.mkdir(parents=True)
    sha = hello_tarball(mirror / "hello-1.0.tar.gz")
    for name, spec in families.items():
        entry = hello_family(name, spec[0], spec[1], sha, *spec[2:])
        (root / "images" / f"{name}.yaml").write_text(yaml.safe_dump(entry, sort_keys=False))
    return root


def edit_yaml(path: Path, change) -> str:
    """Apply `change` to the parsed YAML file and write it back; returns the original text."""
    original = path.read_text()
    data = yaml.safe_load(original)
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return original


SIF_HEADER = b"#!/usr/bin/env run-singularity\n\0SIF_MAGIC\x0001\x0002\x00"


def fake_sif(path: Path, size: int, seed: int = 0) -> Path:
    """A file that starts like a SIF, with distinct bytes per seed."""
    body = bytes((i * 7 + seed) % 251 for i in range(4096)) * (size // 4096 + 1)
    path.write_bytes((SIF_HEADER + body)[:size])
    return path


def record_built(root: Path, key: str, sif: Path, sha256: str | None = None) -> str:
    """Write build/record.json as `invoke build` and `invoke sif` would have; returns the fingerprint."""
    image = next(i for i in planned_images(Project(root), BuildSettings(), None) if i.target.key == key)
    if sha256 is None and sif.is_file():
        sha256 = sha256_of(sif)
    build_dir = root / "build"
    record = records.read(build_dir)
    record.merge(records.ImageRecord(key=key, status=records.BUILT, image=f"cryostack/{key}",
                                     fingerprint=image.fingerprint.digest,
                                     sif=records.SifRecord(path=str(sif), sha256=sha256 or "", size=0)))
    records.write(build_dir, record)
    return image.fingerprint.digest


def write_site(path: Path, **changes) -> Path:
    """The shipped example site file with top-level keys replaced."""
    site = yaml.safe_load((ROOT / "cluster-configs" / "site.example.yaml").read_text())
    site.update(changes)
    path.write_text(yaml.safe_dump(site, sort_keys=False))
    return path


def forget_images(engine, *families: str, pushed_only: bool = False) -> None:
    """Untag every local image of the test FAMILIES, also under a registry's name (what push tagged);
    PUSHED_ONLY: only those, for families other test modules still use."""
    for image in engine.client.images.list():
        for tag in image.tags:
            repository = tag.rsplit(":", 1)[0]
            local = repository in {f"cryostack/{f}" for f in families}
            pushed = any(repository.endswith(f"/cryostack/{f}") for f in families)
            if pushed or (local and not pushed_only):
                engine.untag(tag)
