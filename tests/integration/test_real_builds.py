"""Full builds of shipped catalogue entries (minutes each): `invoke test --slow`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import cryostack, make_hello_project

pytestmark = [pytest.mark.slow, pytest.mark.docker]


@pytest.fixture(scope="module")
def real_build(tmp_path_factory, engine, base_image):
    """RELION 3.1.3 (CPU) and CTFFIND 4.1.14 through the shipped recipes, from Debian's source tarballs."""
    build_dir = tmp_path_factory.mktemp("real") / "build"
    result = cryostack("build", "--only", "relion/3.1.3/gcc-cpu,ctffind/4.1.14/gcc-cpu", "--jobs", "2",
                       "--keep-going", "--build-dir", str(build_dir))
    return result, build_dir, json.loads((build_dir / "record.json").read_text())["images"]


def test_relion_and_ctffind_build_and_pass_verification(real_build):
    result, _, outcomes = real_build
    assert result.returncode == 0, result.stdout + result.stderr
    assert outcomes["relion/3.1.3/gcc-cpu"]["status"] in ("built", "up-to-date")
    assert outcomes["ctffind/4.1.14/gcc-cpu"]["status"] in ("built", "up-to-date")


def test_relion_runs_its_commands(real_build, engine):
    code, output = engine.run("cryostack/relion:3.1.3-gcc-cpu", "relion_refine --version; which relion_refine_mpi")
    assert code == 0 and "3.1.3" in output and "/opt/relion/bin/relion_refine_mpi" in output
    # Both MPI ranks start and print the version (RELION's MPI programs then abort on --version).
    _, output = engine.run("cryostack/relion:3.1.3-gcc-cpu",
                           "mpirun --allow-run-as-root --oversubscribe -np 2 relion_refine_mpi --version")
    assert output.count("RELION version: 3.1.3") >= 2, output


def test_ctffind_reports_its_version(real_build, engine):
    code, output = engine.run("cryostack/ctffind:4.1.14-gcc-cpu", "ctffind < /dev/null | head -n 8")
    assert code == 0 and "Version : 4.1.14" in output


def test_sif_of_ctffind(real_build, trixie_base):
    _, build_dir, _ = real_build
    result = cryostack("sif", "--only", "ctffind/4.1.14/gcc-cpu", "--build-dir", str(build_dir))
    assert result.returncode == 0, result.stdout + result.stderr
    entry = json.loads((build_dir / "record.json").read_text())["images"]["ctffind/4.1.14/gcc-cpu"]
    assert Path(entry["sif"]["path"]).read_bytes()[32:41] == b"SIF_MAGIC"


def test_cuda_binaries_must_carry_the_requested_sm(tmp_path, base_image):
    """Debian's CUDA 11.8 toolkit compiles a kernel; cuobjdump decides whether the image is right."""
    root = make_hello_project(tmp_path, {
        "cudahello": ("", "hello {version}", 86),
        "cudawrong": ("sm_86", "hello {version}", 75),  # asks for sm_75, compiles for sm_86
    })
    result = cryostack("--root", str(root), "build", "--keep-going", "--jobs", "2")
    outcomes = json.loads((root / "build" / "record.json").read_text())["images"]
    assert outcomes["cudahello/1.0/gcc-cuda86"]["status"] == "built", outcomes["cudahello/1.0/gcc-cuda86"]
    wrong = outcomes["cudawrong/1.0/gcc-cuda75"]
    assert wrong["status"] == "failed"
    assert "binaries carry no sm_75 code (cuobjdump found: sm_86)" in wrong["reason"]
    assert result.returncode == 1
