"""Functional checks on real images, through the project's real build: an image counts as built only
when its check computed the known answer.

- Chimera: the whole path from "the maintainer places the installer and pins its sha256" to a
  verified image, with a stand-in installer that behaves like UCSF's (tests/data/chimera-standin);
  a stand-in whose Chimera computes a wrong answer is refused.
- CTFFIND (slow, builds it twice): the shipped patch makes the check pass; without it ctffind
  crashes and the image is refused.
- RELION (slow): the check against an image built beforehand (the shipped 5.0.1 CPU variant).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
import zipfile
from pathlib import Path

import pytest

from cryostack.catalogue import load_catalogue
from cryostack.checks.run import run_check
from helpers import ROOT, cryostack, edit_yaml

pytestmark = pytest.mark.docker

STANDIN = ROOT / "tests" / "data" / "chimera-standin"
INSTALLER = "chimera-1.17.3-linux_x86_64_osmesa.bin"


def make_project(root: Path, *families: str) -> Path:
    """A copy of the shipped catalogue entries and recipes of FAMILIES, with an empty source mirror."""
    (root / "images").mkdir(parents=True)
    for family in families:
        shutil.copy(ROOT / "images" / f"{family}.yaml", root / "images")
        shutil.copytree(ROOT / "recipes" / family, root / "recipes" / family)
    for shared in ("common", "tools"):
        shutil.copytree(ROOT / "recipes" / shared, root / "recipes" / shared)
    shutil.copy(ROOT / "recipes" / "hadolint.yaml", root / "recipes")
    (root / ".cache" / "sources").mkdir(parents=True)
    return root


def chimera_installer(dest: Path, offset: float = 0.0) -> str:
    """The stand-in installer: a shell script with a zip of bin/chimera appended, like UCSF's .bin;
    OFFSET (Å) makes its Chimera report a wrong centroid. Returns the file's sha256."""
    program = (STANDIN / "chimera.pl").read_text().replace("my $OFFSET = 0;", f"my $OFFSET = {offset};")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        entry = zipfile.ZipInfo("bin/chimera", date_time=(2024, 1, 1, 0, 0, 0))
        entry.external_attr = 0o100755 << 16
        zipped.writestr(entry, program)
    dest.write_bytes((STANDIN / "installer.sh").read_bytes() + archive.getvalue())
    dest.chmod(0o755)
    return hashlib.sha256(dest.read_bytes()).hexdigest()


def pin(catalogue: Path, sha256: str) -> None:
    """What the maintainer does after checking the downloaded installer: record its sha256."""
    def change(data):
        source = data["versions"]["1.17.3"]["source"]
        source.pop("unpinned", None)
        source["sha256"] = sha256
    edit_yaml(catalogue, change)


def record(root: Path) -> dict:
    return json.loads((root / "build" / "record.json").read_text())["images"]


def forget_chimera_images(engine) -> None:
    """No licensed Chimera can be built on a test machine, so every cryostack/chimera tag is a stand-in's."""
    for tag in engine.images("cryostack/chimera"):
        engine.untag(tag)


@pytest.fixture
def chimera_project(tmp_path, engine, base_image):
    forget_chimera_images(engine)
    yield make_project(tmp_path, "chimera")
    forget_chimera_images(engine)


def test_chimera_from_placed_installer_to_verified_image(chimera_project, engine):
    root = chimera_project
    installer = root / ".cache" / "sources" / INSTALLER
    sha256 = chimera_installer(installer)
    # Placed but not yet pinned: the build refuses it and says why.
    unpinned = cryostack("--root", str(root), "build", "--only", "chimera")
    assert unpinned.returncode == 1 and "has no sha256 pin" in unpinned.stdout + unpinned.stderr
    pin(root / "images" / "chimera.yaml", sha256)
    started = time.monotonic()
    result = cryostack("--root", str(root), "build", "--only", "chimera")
    assert result.returncode == 0, result.stdout + result.stderr
    entry = record(root)["chimera/1.17.3/cpu"]
    assert entry["status"] == "built", entry
    code, output = engine.run("cryostack/chimera:1.17.3-cpu", "chimera --nogui --version; ls /opt/chimera/bin")
    assert code == 0 and "1.17.3" in output and "chimera" in output
    # The check that verify ran, run again here to see its numbers.
    spec = load_catalogue(root / "images").families["chimera"].check_of("1.17.3")
    checked = run_check(spec, "1.17.3", lambda script, workdir: engine.run(
        "cryostack/chimera:1.17.3-cpu", script, volumes={str(workdir): {"bind": "/check", "mode": "rw"}}))
    print(f"chimera (stand-in) build+verify {time.monotonic() - started:.0f}s; {checked.describe()}")
    assert checked.passed and checked.measures["atoms"] == 60 and checked.measures["centroid_error"] < 0.01


def test_a_chimera_that_computes_a_wrong_answer_is_refused(chimera_project, engine):
    root = chimera_project
    pin(root / "images" / "chimera.yaml", chimera_installer(root / ".cache" / "sources" / INSTALLER, offset=2.0))
    result = cryostack("--root", str(root), "build", "--only", "chimera")
    entry = record(root)["chimera/1.17.3/cpu"]
    assert result.returncode == 1, result.stdout
    assert entry["status"] == "failed"
    assert "check molecule-map failed: molmap of 60 atoms at 6 Å: centroid off by 2.00 Å (allowed 0.5)" in entry["reason"]
    # Not counted as built: no fingerprint or readable tag (nothing to convert or publish), only -failed.
    assert engine.image(entry["image"]) is None and engine.image("cryostack/chimera:1.17.3-cpu") is None
    assert engine.image("cryostack/chimera:1.17.3-cpu-failed") is not None
    efs = root / "efs"
    published = cryostack("--root", str(root), "publish", "--only", "chimera", "--efs-root", str(efs))
    assert published.returncode != 0 and "cannot publish chimera/1.17.3/cpu (not built" in published.stderr, published.stderr
    assert not (efs / "manifest.json").exists()


# --- CTFFIND: its patch is the fix, its check the regression test ------------------------------

def _ctffind_project(root: Path, patched: bool) -> Path:
    make_project(root, "ctffind")
    for mirror in (ROOT / ".cache" / "sources", Path(os.environ.get("CRYOSTACK_SOURCE_MIRROR", "/nonexistent"))):
        tarball = mirror / "ctffind_4.1.14.orig.tar.gz"
        if tarball.is_file():
            shutil.copy(tarball, root / ".cache" / "sources")
            break
    if not patched:
        edit_yaml(root / "images" / "ctffind.yaml", lambda d: d["versions"]["4.1.14"].pop("patches"))
    return root


@pytest.mark.slow
def test_patched_ctffind_recovers_the_defocus_and_unpatched_ctffind_crashes(tmp_path, engine, base_image):
    tag = "cryostack/ctffind:4.1.14-gcc-cpu"
    patched = _ctffind_project(tmp_path / "patched", patched=True)
    started = time.monotonic()
    result = cryostack("--root", str(patched), "build", "--only", "ctffind")
    assert result.returncode == 0, result.stdout + result.stderr
    assert record(patched)["ctffind/4.1.14/gcc-cpu"]["status"] in ("built", "up-to-date")
    labels = engine.image(tag).labels
    pin = load_catalogue(patched / "images").families["ctffind"].versions["4.1.14"].patches[0].sha256
    assert labels["io.cryostack.patches"] == f"missing-return-values.patch@sha256:{pin}"
    spec = load_catalogue(patched / "images").families["ctffind"].check_of("4.1.14")
    checked = run_check(spec, "4.1.14", lambda script, workdir: engine.run(
        tag, script, volumes={str(workdir): {"bind": "/check", "mode": "rw"}}))
    print(f"ctffind patched: build+verify {time.monotonic() - started:.0f}s; {checked.describe()}")
    assert checked.passed, checked.summary
    assert checked.measures["defocus_1_error"] <= 300 and checked.measures["angle_error"] <= 5

    unpatched = _ctffind_project(tmp_path / "unpatched", patched=False)
    result = cryostack("--root", str(unpatched), "build", "--only", "ctffind")
    entry = record(unpatched)["ctffind/4.1.14/gcc-cpu"]
    print(f"ctffind unpatched: {entry['reason']}")
    try:
        assert result.returncode == 1 and entry["status"] == "failed"
        assert "check ctf-estimation failed: ctffind died of SIGSEGV (exit 139)" in entry["reason"]
    finally:
        engine.untag(f"{tag}-failed")


# --- RELION ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_relion_reconstructs_the_synthetic_density(engine):
    tag = os.environ.get("CRYOSTACK_RELION_IMAGE", "cryostack/relion:5.0.1-gcc-cpu")
    if engine.image(tag) is None:
        pytest.skip(f"no {tag} here: build it first (cryostack build --only relion/5.0.1/gcc-cpu)")
    version = engine.image(tag).labels.get("io.cryostack.version", "5.0.1")
    spec = load_catalogue(ROOT / "images").families["relion"].check_of(version)
    checked = run_check(spec, version, lambda script, workdir: engine.run(
        tag, script, timeout=spec.timeout, volumes={str(workdir): {"bind": "/check", "mode": "rw"}}))
    print(f"relion {tag}: {checked.describe()} in {checked.seconds:.0f}s")
    assert checked.passed, checked.summary
