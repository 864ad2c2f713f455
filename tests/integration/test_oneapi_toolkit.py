"""The oneAPI variant's whole path, with the stand-in toolkit (tests/data/oneapi-standin) in place of
Intel's offline installers, which cannot be had here: the site stages the installer read-only, pins it
by sha256 in the catalogue, and `build` installs it in the build stage, compiles with its icx and
mpiicx, and carries only its runtime part into the runtime image.

- fast: the test program (tests/data/hello) as a oneAPI variant, through the real `build`;
- slow: RELION's own oneAPI variant, built with the stand-in and verified by its functional check.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import (ROOT, cryostack, forget_images, hello_family, make_hello_project, oneapi_standin_installer,
                     oneapi_toolkit)

pytestmark = pytest.mark.docker

INSTALLER = "l_HPCKit_p_0.0.0.0_offline.sh"
FAMILY = "oneapihello"
KEY = f"{FAMILY}/1.0/oneapi-avx512"
FLAGS = "-O3 -xCORE-AVX512 -qopt-zmm-usage=high -DWITH_MPI -DWITH_FFT -qmkl"


@pytest.fixture
def oneapi_project(tmp_path, engine, base_image):
    """The test program as a oneAPI variant; the stand-in installer staged in a read-only directory."""
    root = make_hello_project(tmp_path / "project", families={})
    staged = tmp_path / "site-sources"
    staged.mkdir()
    sha256 = oneapi_standin_installer(staged / INSTALLER)
    (staged / INSTALLER).chmod(0o444)
    staged.chmod(0o555)
    forget_images(engine, FAMILY)
    yield root, staged, sha256
    forget_images(engine, FAMILY)
    staged.chmod(0o755)


def write_family(root: Path, source_sha256: str, toolkit_sha256: str | None) -> None:
    entry = hello_family(FAMILY, FLAGS, "hello {version}", source_sha256)
    entry["variants"] = {"oneapi-avx512": {"toolchain": "oneapi", "accel": "cpu", "cpu_flags": FLAGS,
                                           "cpu_features": ["avx512"], "targets": ["c6i"],
                                           "toolkit": oneapi_toolkit(INSTALLER, toolkit_sha256)}}
    (root / "images" / f"{FAMILY}.yaml").write_text(yaml.safe_dump(entry, sort_keys=False))


def source_sha256(root: Path) -> str:
    from cryostack.sources import sha256_of
    return sha256_of(root / ".cache" / "sources" / "hello-1.0.tar.gz")


def build(root: Path, staged: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, CRYOSTACK_SOURCE_PATH=str(staged))
    return cryostack("--root", str(root), "build", *args, env=env)


def test_an_unpinned_toolkit_is_listed_as_unavailable_in_one_line(oneapi_project, engine):
    root, staged, _ = oneapi_project
    write_family(root, source_sha256(root), None)
    listed = cryostack("--root", str(root), "build-all", env=dict(os.environ, CRYOSTACK_SOURCE_PATH=str(staged)))
    assert listed.returncode == 0, listed.stdout + listed.stderr
    [line] = [line for line in listed.stdout.splitlines() if line.startswith(KEY)]
    assert "unavailable" in line
    assert line.endswith(f"toolkit installer {INSTALLER} has no sha256 pin: record the sha256 of {INSTALLER} here")
    assert engine.images(f"cryostack/{FAMILY}") == []


def test_an_installer_that_does_not_match_its_pin_is_refused_and_nothing_is_built(oneapi_project, engine):
    root, staged, sha256 = oneapi_project
    wrong = sha256[::-1]
    write_family(root, source_sha256(root), wrong)
    result = build(root, staged, "--only", FAMILY)
    assert result.returncode == 1, result.stdout + result.stderr
    entry = json.loads((root / "build" / "record.json").read_text())["images"][KEY]
    assert entry["status"] == "failed"
    assert entry["reason"] == (
        f"{root}/images/{FAMILY}.yaml: variants['oneapi-avx512'].toolkit.installers[0]: sha256 mismatch for "
        f"{staged / INSTALLER} (CRYOSTACK_SOURCE_PATH): the file has {sha256}, the catalogue pins {wrong}; "
        "refusing it (it is read-only here: fix it at its origin)")
    assert engine.images(f"cryostack/{FAMILY}") == []
    assert not (root / "build" / "logs" / f"{KEY.replace('/', '_')}.log").exists(), "no build may have started"


def test_the_pinned_stand_in_toolkit_builds_an_avx512_intel_mpi_image(oneapi_project, engine, tmp_path):
    root, staged, sha256 = oneapi_project
    write_family(root, source_sha256(root), sha256)
    result = build(root, staged, "--only", FAMILY)
    assert result.returncode == 0, result.stdout + result.stderr
    entry = json.loads((root / "build" / "record.json").read_text())["images"][KEY]
    assert entry["status"] == "built", entry
    ref = f"cryostack/{FAMILY}:1.0-oneapi-avx512"
    info = engine.image(ref)
    assert info.labels["io.cryostack.mpi"] == "intelmpi"
    assert info.labels["io.cryostack.toolkit"] == f"{INSTALLER}@{sha256}"
    # The staged installer was read, never written.
    assert oneapi_standin_installer(tmp_path / "again.sh") == sha256 and (staged / INSTALLER).stat().st_mode & 0o222 == 0

    # It runs, its FFT comes from the toolkit's MKL (the stand-in's: FFTW), its ranks talk through the
    # toolkit's MPI launcher; the compilers stayed in the build stage.
    script = ("hello --version; hello --scale-add 2; hello --fft; command -v mpirun; mpirun -n 2 hello --mpi | sort; "
              "ldd /opt/oneapihello/bin/hello; echo I_MPI_ROOT=$I_MPI_ROOT; "
              "ls /opt/intel 2>&1; command -v icx mpiicx || echo no-compilers")
    code, output = engine.run(ref, script)
    assert code == 0, output
    assert "hello 1.0" in output and "scale-add=1000000" in output
    assert "bin0=0.000 bin1=4.000 bin2=0.000 bin3=0.000 bin4=0.000" in output
    assert "/opt/oneapihello/oneapi/mpi/bin/mpirun" in output
    assert "rank=0 size=2 sum=1" in output and "rank=1 size=2 sum=1" in output
    assert "libfftw3.so.3 => /opt/oneapihello/oneapi/lib/libfftw3.so.3" in output
    assert "libmpi.so.40 =>" in output  # the stand-in's Intel MPI is Open MPI
    assert "I_MPI_ROOT=/opt/oneapihello/oneapi/mpi" in output
    assert "ls: cannot access '/opt/intel'" in output and "no-compilers" in output

    # Compiled by the stand-in icx with Intel's AVX-512 options translated: the recorded GCC options
    # say so, and the vectorised loop uses 512-bit registers (GCC's default for this CPU would be 256).
    out = tmp_path / "out"
    out.mkdir()
    code, output = engine.run(ref, "cp /opt/oneapihello/bin/hello /out/", volumes={str(out): {"bind": "/out", "mode": "rw"}})
    assert code == 0, output
    switches = subprocess.run(["readelf", "-p", ".GCC.command.line", str(out / "hello")], capture_output=True, text=True).stdout
    assert "-march=skylake-avx512" in switches and "-mprefer-vector-width=512" in switches, switches
    assert "-xCORE-AVX512" not in switches
    disassembly = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(out / "hello")], capture_output=True, text=True).stdout
    assert "zmm" in disassembly


def test_the_stand_in_icx_refuses_intel_options_it_does_not_know(tmp_path):
    """An Intel option the stand-in cannot translate stops the build instead of being dropped."""
    install = tmp_path / "oneapi"
    icx = ROOT / "tests" / "data" / "oneapi-standin" / "tree" / "compiler" / "latest" / "bin" / "icx"
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc on the host")
    (install / "compiler" / "latest" / "bin").mkdir(parents=True)
    shutil.copy(icx, install / "compiler" / "latest" / "bin" / "icx")
    program = tmp_path / "x.c"
    program.write_text("int main(void) { return 0; }\n")
    shim = str(install / "compiler" / "latest" / "bin" / "icx")
    refused = subprocess.run([shim, "-qopt-report=3", "-c", str(program), "-o", str(tmp_path / "x.o")],
                             capture_output=True, text=True)
    assert refused.returncode == 2
    assert refused.stderr.startswith("icx (cryostack stand-in): unknown Intel option -qopt-report=3")
    version = subprocess.run([shim, "--version"], capture_output=True, text=True)
    assert version.stdout.startswith("cryostack stand-in for icx over gcc")


@pytest.mark.slow
def test_relion_oneapi_variant_builds_with_the_stand_in_toolkit_and_passes_its_check(tmp_path, engine, base_image):
    """RELION 5.0.1's oneAPI variant through the real build, with the stand-in pinned in a copy of the
    catalogue; the build counts only when RELION's functional check computed the known answer."""
    from test_check_images import make_project

    sources = Path(os.environ.get("CRYOSTACK_SOURCE_PATH", str(ROOT.parent / "shared" / "sources"))).resolve()
    if not (sources / "relion-5.0.1.tar.gz").is_file():
        pytest.skip(f"needs relion-5.0.1.tar.gz in CRYOSTACK_SOURCE_PATH ({sources})")
    root = make_project(tmp_path / "project", "relion")
    staged = tmp_path / "site-sources"
    staged.mkdir()
    sha256 = oneapi_standin_installer(staged / INSTALLER)
    catalogue = root / "images" / "relion.yaml"
    data = yaml.safe_load(catalogue.read_text())
    data["variants"]["oneapi-cpu-avx512"]["toolkit"] = oneapi_toolkit(INSTALLER, sha256)
    catalogue.write_text(yaml.safe_dump(data, sort_keys=False))
    key = "relion/5.0.1/oneapi-cpu-avx512"
    result = cryostack("--root", str(root), "build", "--only", key,
                       env=dict(os.environ, CRYOSTACK_SOURCE_PATH=f"{staged}{os.pathsep}{sources}"))
    entry = json.loads((root / "build" / "record.json").read_text())["images"][key]
    assert result.returncode == 0, entry
    assert entry["status"] == "built" and entry["check"]["passed"], entry
    assert entry["labels"]["io.cryostack.mpi"] == "intelmpi"
    code, output = engine.run(entry["image"], "ldd /opt/relion/bin/relion_refine_mpi; command -v mpirun icpx || true")
    assert code == 0, output
    assert "=> /opt/relion/oneapi/lib/libfftw3" in output and "/opt/relion/oneapi/mpi/bin/mpirun" in output
    assert "icpx" not in output.split("mpirun", 1)[1]
    # A stand-in build must not pass for the site's real one: its tags go (`bench --runtime` would race it).
    for tag in engine.images("cryostack/relion"):
        if tag.startswith("cryostack/relion:5.0.1-oneapi-cpu-avx512"):
            engine.untag(tag)
    print(f"relion 5.0.1 oneapi-cpu-avx512 (stand-in toolkit): {entry.get('seconds')} s, "
          f"{entry.get('size', 0) / 1e6:.0f} MB; {entry['reason']}")
