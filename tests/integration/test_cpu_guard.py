"""An image built for AVX-512 that starts on a CPU without it says so in one line and exits 2.

This machine's CPU has AVX-512. A CPU without it is shown to the container by bind-mounting a copy
of /proc/cpuinfo with the avx512 flags removed over /proc/cpuinfo (the way lxcfs presents its own
files): the guard reads exactly what the kernel would show on such a CPU.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from cryostack.engine.base import Engine
from cryostack.engine.apptainer import Apptainer
from helpers import ROOT, cryostack, hello_tarball, make_hello_project, hello_family

pytestmark = pytest.mark.docker

KEY = "guarded/1.0/gcc-avx512"


def cpuinfo_without_avx512(dest: Path) -> Path:
    text = Path("/proc/cpuinfo").read_text()
    text = re.sub(r" avx512\w*", "", text)
    dest.write_text(re.sub(r"(?m)^model name\s*:.*$", "model name\t: Test CPU without AVX-512", text))
    return dest


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, engine: Engine, base_image: str):
    """The test program as a variant that needs AVX-512, built through the real build path."""
    if not re.search(r"\bavx512f\b", Path("/proc/cpuinfo").read_text()):
        pytest.skip("this machine's CPU has no AVX-512: the image could not be verified here")
    root = make_hello_project(tmp_path_factory.mktemp("guard") / "project", families={})
    sha = hello_tarball(root / ".cache" / "sources" / "hello-1.0.tar.gz")
    entry = hello_family("guarded", "-O2 -march=skylake-avx512", "hello {version}", sha)
    entry["variants"] = {"gcc-avx512": dict(entry["variants"]["gcc-cpu"], cpu_features=["avx512"])}
    del entry["variants"]["gcc-avx512"]["targets"]  # derived: the families whose CPUs have AVX-512
    (root / "images" / "guarded.yaml").write_text(yaml.safe_dump(entry, sort_keys=False))
    result = cryostack("--root", str(root), "build", "--only", KEY)
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads((root / "build" / "record.json").read_text())["images"][KEY]
    yield root, record["image"]
    for tag in engine.images("cryostack/guarded"):
        engine.untag(tag)


def docker_run(image: str, *args: str, cpuinfo: Path | None = None) -> subprocess.CompletedProcess:
    mount = ["-v", f"{cpuinfo}:/proc/cpuinfo:ro"] if cpuinfo else []
    return subprocess.run(["docker", "run", "--rm", "--network", "none", *mount, image, *args],
                          capture_output=True, text=True)


def test_on_a_cpu_with_avx512_the_program_runs_with_its_arguments_and_exit_code(guarded):
    _, image = guarded
    arguments = ["two words", "", "it's \"quoted\"", "$HOME", "*"]
    result = docker_run(image, "hello", "--args", *arguments)
    assert result.returncode == 0, result.stderr
    assert [bytes.fromhex(line).decode() for line in result.stdout.split("\n")[:len(arguments)]] == arguments
    assert docker_run(image, "hello", "--exit", "3").returncode == 3


def test_on_a_cpu_without_avx512_the_program_is_refused_in_one_line(guarded, tmp_path):
    _, image = guarded
    result = docker_run(image, "hello", "--version", cpuinfo=cpuinfo_without_avx512(tmp_path / "cpuinfo"))
    assert result.returncode == 2 and result.stdout == "", result
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"hello: {KEY} needs AVX-512, which this CPU (Test CPU without AVX-512) lacks "
                               "(no avx512f avx512cd avx512bw avx512dq avx512vl); run it on an instance family "
                               "with it: "), lines[0]
    assert "c6i" in lines[0]


def test_the_programs_name_on_path_is_the_guard(guarded):
    _, image = guarded
    result = docker_run(image, "sh", "-c", "command -v hello; readlink /opt/cryostack/guard/hello")
    assert result.stdout.split() == ["/opt/cryostack/guard/hello", "../cpu-guard"], result


def test_the_guard_works_the_same_in_the_sif(guarded, engine: Engine, tmp_path):
    root, _ = guarded
    result = cryostack("--root", str(root), "sif", "--only", KEY)
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads((root / "build" / "record.json").read_text())["images"][KEY]
    sif = Path(record["sif"]["path"])
    apptainer = Apptainer(engine, ROOT / "recipes" / "tools" / "apptainer.Dockerfile", tmp_path / "apptainer.log")
    code, output = apptainer.exec(sif, "hello --exit 4")
    assert code == 4, output
    fake = cpuinfo_without_avx512(tmp_path / "cpuinfo")
    code, output = apptainer.exec(sif, "hello --version", binds={fake: "/proc/cpuinfo"})
    assert code == 2, output
    assert f"hello: {KEY} needs AVX-512, which this CPU (Test CPU without AVX-512) lacks" in output, output
