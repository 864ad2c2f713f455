"""An image built for AVX-512 that starts on a CPU without it says so in one line and exits 2.

This machine's CPU has AVX-512. A CPU without it is shown to the container by bind-mounting a copy
of /proc/cpuinfo with the avx512 flags removed over /proc/cpuinfo (the way lxcfs presents its own
files): the guard reads exactly what the kernel would show on such a CPU. What the guard spares the
user is shown by qemu-user emulating a CPU without AVX-512: the same program, unguarded, dies of SIGILL.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from cryostack import hardware
from cryostack.engine.base import Engine
from cryostack.engine.apptainer import Apptainer
from helpers import ROOT, cryostack, forget_images, hello_family, hello_tarball, make_hello_project

pytestmark = pytest.mark.docker

KEY = "guarded/1.0/gcc-avx512"
# 512-bit vectors preferred: hello's scale-add loop is then compiled to zmm instructions, so the
# program really needs AVX-512 (GCC's -march=skylake-avx512 alone keeps to 256 bits).
FLAGS = "-O3 -march=skylake-avx512 -mprefer-vector-width=512"
REQUIRED = "avx512f avx512cd avx512bw avx512dq avx512vl"


def cpuinfo_without_avx512(dest: Path) -> Path:
    text = Path("/proc/cpuinfo").read_text()
    text = re.sub(r" avx512\w*", "", text)
    dest.write_text(re.sub(r"(?m)^model name\s*:.*$", "model name\t: Test CPU without AVX-512", text))
    return dest


def refusal(program: str) -> str:
    """The one line the guard prints on the CPU of cpuinfo_without_avx512, up to the families."""
    return (f"{program}: {KEY} needs AVX-512 ({REQUIRED}), which this CPU lacks (Test CPU without AVX-512: "
            f"no {REQUIRED}); run it on an instance family with AVX-512: ")


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, engine: Engine, base_image: str):
    """The test program as a variant that needs AVX-512, built through the real build path."""
    if not re.search(r"\bavx512f\b", Path("/proc/cpuinfo").read_text()):
        pytest.skip("this machine's CPU has no AVX-512: the image could not be verified here")
    root = make_hello_project(tmp_path_factory.mktemp("guard") / "project", families={})
    sha = hello_tarball(root / ".cache" / "sources" / "hello-1.0.tar.gz")
    entry = hello_family("guarded", FLAGS, "hello {version}", sha)
    entry["variants"] = {"gcc-avx512": dict(entry["variants"]["gcc-cpu"], cpu_features=["avx512"])}
    del entry["variants"]["gcc-avx512"]["targets"]  # derived: the families whose CPUs have AVX-512
    (root / "images" / "guarded.yaml").write_text(yaml.safe_dump(entry, sort_keys=False))
    result = cryostack("--root", str(root), "build", "--only", KEY)
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads((root / "build" / "record.json").read_text())["images"][KEY]
    yield root, record["image"]
    forget_images(engine, "guarded")


def docker_run(image: str, *args: str, cpuinfo: Path | None = None) -> subprocess.CompletedProcess:
    mount = ["-v", f"{cpuinfo}:/proc/cpuinfo:ro"] if cpuinfo else []
    return subprocess.run(["docker", "run", "--rm", "--network", "none", *mount, image, *args],
                          capture_output=True, text=True)


def test_on_a_cpu_with_avx512_the_program_runs_with_its_arguments_and_exit_code(guarded):
    _, image = guarded
    arguments = ["two words", "", "it's \"quoted\"", "$HOME", "*", "", "--exit"]
    result = docker_run(image, "hello", "--args", *arguments)
    assert result.returncode == 0, result.stderr
    assert [bytes.fromhex(line).decode() for line in result.stdout.split("\n")[:len(arguments)]] == arguments
    assert docker_run(image, "hello", "--exit", "3").returncode == 3
    assert docker_run(image, "hello", "--scale-add", "2").stdout == "scale-add=1000000\n"


def test_the_guard_execs_the_program_so_signals_reach_it_directly(guarded):
    # The program's parent is the shell that started it: no guard process stays in between.
    _, image = guarded
    result = docker_run(image, "sh", "-c", 'echo "ppid=$$"; hello --ppid; true')
    first, second = result.stdout.split()
    assert first == second, result


def test_on_a_cpu_without_avx512_the_program_is_refused_in_one_line(guarded, tmp_path):
    _, image = guarded
    result = docker_run(image, "hello", "--version", cpuinfo=cpuinfo_without_avx512(tmp_path / "cpuinfo"))
    assert result.returncode == 2 and result.stdout == "", result
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(refusal("hello")), lines[0]
    # The families come from the hardware table: those whose CPUs have AVX-512.
    families = lines[0][len(refusal("hello")):].split(", ")
    assert families == hardware.shipped().families_for("cpu", cpu_features=["avx512"]), families


def test_unguarded_the_same_program_dies_of_sigill_on_a_cpu_without_avx512(guarded, tmp_path):
    qemu = shutil.which("qemu-x86_64")
    if not qemu:
        if os.environ.get("CI") == "true":
            pytest.fail("needs qemu-user (ci/setup.sh installs it)")
        pytest.skip("needs qemu-user: apt-get install qemu-user (ci/setup.sh does)")
    _, image = guarded
    container = subprocess.run(["docker", "create", image], capture_output=True, text=True, check=True).stdout.strip()
    try:
        subprocess.run(["docker", "cp", f"{container}:/opt/guarded/bin/hello", str(tmp_path / "hello")], check=True)
    finally:
        subprocess.run(["docker", "rm", container], capture_output=True)
    assert "zmm" in subprocess.run(["objdump", "-d", str(tmp_path / "hello")], capture_output=True, text=True).stdout
    # Haswell (c4, m4): AVX2 and no AVX-512. QEMU's TCG runs AVX2 code but has no AVX-512 at all.
    emulated = subprocess.run([qemu, "-cpu", "Haswell", str(tmp_path / "hello"), "--scale-add", "2"],
                              capture_output=True, text=True)
    assert emulated.returncode == -signal.SIGILL and emulated.stdout == "", emulated
    # Guarded, the same command on a CPU without AVX-512 gets the one line instead.
    result = docker_run(image, "hello", "--scale-add", "2", cpuinfo=cpuinfo_without_avx512(tmp_path / "cpuinfo"))
    assert result.returncode == 2 and result.stderr.startswith(refusal("hello")) and result.stderr.count("\n") == 1


def test_the_programs_name_on_path_is_the_guard(guarded):
    _, image = guarded
    result = docker_run(image, "sh", "-c", "command -v hello; readlink /opt/cryostack/guard/hello")
    assert result.stdout.split() == ["/opt/cryostack/guard/hello", "../cpu-guard"], result
    listing = docker_run(image, "sh", "-c", "ls /opt/guarded/bin; echo --; ls /opt/cryostack/guard").stdout
    programs, links = listing.split("--\n")
    assert programs.split() == links.split() != [], listing


def test_the_guard_works_the_same_in_the_sif(guarded, engine: Engine, tmp_path):
    root, _ = guarded
    result = cryostack("--root", str(root), "sif", "--only", KEY)
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads((root / "build" / "record.json").read_text())["images"][KEY]
    sif = Path(record["sif"]["path"])
    apptainer = Apptainer(engine, ROOT / "recipes" / "tools" / "apptainer.Dockerfile", tmp_path / "apptainer.log")
    code, output = apptainer.exec(sif, "hello --exit 4")
    assert code == 4, output
    code, output = apptainer.exec(sif, "hello --args 'two words' '' \"it's\"")
    assert code == 0 and [bytes.fromhex(h).decode() for h in output.splitlines()[-3:]] == ["two words", "", "it's"], output
    fake = cpuinfo_without_avx512(tmp_path / "cpuinfo")
    # The container's stdout is dropped and its stderr kept: what the user sees is the one line.
    code, output = apptainer.exec(sif, "hello --version 2>&1 >/dev/null", binds={fake: "/proc/cpuinfo"})
    assert code == 2, output
    lines = [line for line in output.splitlines() if not line.startswith(("INFO:", "WARNING:"))]
    assert len(lines) == 1 and lines[0].startswith(refusal("hello")), output
