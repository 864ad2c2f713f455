"""Wrappers under a real Slurm: each partition runs the image of its instance family, arguments
arrive byte for byte, and a RELION-style submission from the generated qsub template runs."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import cryostack, make_hello_project, write_site

pytestmark = pytest.mark.docker

# One test program, one variant per instance family: which image ran is visible from inside it.
VARIANTS = {"g5": "-O2", "g4dn": "-O1", "c6i": "-O3 -DWITH_MPI"}
INSTANCES = {"g5": "g5.12xlarge", "g4dn": "g4dn.12xlarge", "c6i": "c6i.32xlarge"}


@pytest.fixture(scope="module")
def published(tmp_path_factory, base_image, trixie_base, slurm):
    """The maintainers' side for real: build the variants, make their SIFs, publish to an EFS tree."""
    work = tmp_path_factory.mktemp("cluster")
    os.chmod(work, 0o755)
    root = make_hello_project(work / "project", {"hello": ("-O2", "hello {version}")})
    family = yaml.safe_load((root / "images" / "hello.yaml").read_text())
    family["variants"] = {f"cpu-{f}": {"toolchain": "gcc", "accel": "cpu", "cpu_flags": flags, "targets": [f]}
                          for f, flags in VARIANTS.items()}
    (root / "images" / "hello.yaml").write_text(yaml.safe_dump(family, sort_keys=False))
    efs = work / "efs"
    for step in (["build"], ["sif"], ["publish", "--efs-root", str(efs)]):
        result = cryostack("--root", str(root), *step)
        assert result.returncode == 0, result.stdout + result.stderr
    (work / "jobs").mkdir()
    return work, efs / "manifest.json"


def site_wrappers(work: Path, manifest: Path, runtime: str) -> Path:
    """A site file for the test Slurm's partitions and the wrappers generated from it."""
    site_file = write_site(work / f"site-{runtime}.yaml", runtime=runtime, bind_paths=[str(work)], variants={},
                           queues=[{"name": f, "instance_types": [t], "max_count": 2} for f, t in INSTANCES.items()])
    prefix = work / f"cluster-{runtime}"
    result = cryostack("cluster.wrappers", "--site", str(site_file), "--manifest", str(manifest), "--prefix", str(prefix))
    assert result.returncode == 0, result.stdout + result.stderr
    return prefix


@pytest.fixture(scope="module")
def cluster(published, slurm):
    """Wrappers of a site whose runtime is Docker."""
    work, manifest = published
    return site_wrappers(work, manifest, "docker"), work / "jobs", slurm


# Debian ships no host Apptainer for bookworm; sid's runs in the tool container (ENVIRONMENT.md),
# where loop devices cannot be attached, so SIFs are mounted with --userns (squashfuse). This
# stand-in for /usr/bin/apptainer forwards an `apptainer exec` there, with the test tree mounted
# at the same path; the wrapper's own arguments pass through untouched.
APPTAINER_SHIM = """#!/bin/bash
[ "$1" = exec ] || {{ echo "apptainer stand-in: only exec" >&2; exit 64; }}
shift
exec docker run --rm -i --cap-add SYS_ADMIN --security-opt seccomp=unconfined --security-opt apparmor=unconfined \\
    --device /dev/fuse -v {work}:{work} -w "$PWD" local/apptainer:sid apptainer exec --userns "$@"
"""


@pytest.fixture(scope="module")
def apptainer_cluster(published, slurm):
    """Wrappers of a site whose runtime is Apptainer (the default), running the published SIFs."""
    work, manifest = published
    prefix = site_wrappers(work, manifest, "apptainer")
    shim = work / "apptainer-bin" / "apptainer"
    shim.parent.mkdir()
    shim.write_text(APPTAINER_SHIM.format(work=work))
    shim.chmod(0o755)
    return prefix, work / "jobs", slurm, shim.parent


def run_job(slurm, jobs: Path, script: str, *args: str, partition: str, options=()) -> str:
    """sbatch a script, wait for it, return what it wrote on standard output (standard error on failure)."""
    path = jobs / f"job-{partition}-{len(list(jobs.iterdir()))}.sh"
    path.write_text(script)
    out, err = path.with_suffix(".out"), path.with_suffix(".err")
    job = slurm.submit(f"--partition={partition}", f"--output={out}", f"--error={err}", *options, str(path), *args,
                       cwd=jobs)
    state = slurm.wait(job)
    assert state == "COMPLETED", f"job {job} ended {state}: {err.read_text() if err.exists() else ''}"
    return out.read_text()


@pytest.mark.parametrize("partition", list(VARIANTS))
def test_each_partition_runs_the_image_of_its_instance_family(cluster, partition):
    prefix, jobs, slurm = cluster
    script = f"#!/bin/bash\nexport PATH={prefix}/bin:$PATH\nhello --whoami\nhello_c6i --whoami\n"
    output = run_job(slurm, jobs, script, partition=partition).split()
    assert output == [f"image=hello/1.0/cpu-{partition}", "image=hello/1.0/cpu-c6i"]


def test_srun_pmix_runs_two_mpi_ranks_in_containers(cluster):
    """The hybrid model: Slurm's PMIx server starts the ranks, Debian's Open MPI in the image wires them up."""
    prefix, jobs, slurm = cluster
    script = f"#!/bin/bash\nsrun --mpi=pmix --ntasks=2 {prefix}/bin/hello --mpi\n"
    output = run_job(slurm, jobs, script, partition="c6i", options=["--ntasks=2"])
    assert sorted(output.splitlines()) == [f"rank={r} size=2 sum=1 image=hello/1.0/cpu-c6i" for r in (0, 1)]


def test_host_mpirun_runs_two_mpi_ranks_in_containers(cluster, host_mpirun):
    """RELION's default launcher: the host's mpirun (inside the allocation) starts the wrapper twice."""
    prefix, jobs, slurm = cluster
    script = f"#!/bin/bash\n{host_mpirun} --allow-run-as-root -n 2 {prefix}/bin/hello --mpi\n"
    output = run_job(slurm, jobs, script, partition="c6i", options=["--ntasks=2"])
    assert sorted(output.splitlines()) == [f"rank={r} size=2 sum=1 image=hello/1.0/cpu-c6i" for r in (0, 1)]


def test_arguments_arrive_byte_exact(cluster):
    prefix, jobs, slurm = cluster
    nasty = ["two words", "it's \"quoted\"", "*", "$(touch /tmp/cryostack-pwned)", "line one\nline two",
             "--flag=a b", "", "tab\there", "back\\slash", "$HOME", "üñïçødé"]
    script = f"#!/bin/bash\nexec {prefix}/bin/hello --args \"$@\"\n"
    output = run_job(slurm, jobs, script, *nasty, partition="g5")
    assert [bytes.fromhex(line).decode() for line in output.splitlines()] == nasty
    assert not Path("/tmp/cryostack-pwned").exists()


def test_relion_style_submission_from_the_qsub_template(cluster):
    """What RELION's GUI does: fill the XXX fields of the queue's template, with commands written
    as `which <command>`, and sbatch it. The template asks for the queue's GPUs without empty directives."""
    prefix, jobs, slurm = cluster
    template = (prefix / "qsub" / "g5.sh").read_text()
    assert "--gres=gpu:4" in template and not any(line.rstrip().endswith("=") for line in template.splitlines())
    values = {"queue": "g5", "mpinodes": "1", "threads": "1", "extra1": "1", "outfile": str(jobs / "relion.out"),
              "errfile": str(jobs / "relion.err"), "name": "Class3D/job001/"}
    script = template
    for field, value in values.items():
        script = script.replace(f"XXX{field}XXX", value)
    script = script.replace("XXXcommandXXX", "`which hello` --whoami")
    assert not re.search(r"XXX[a-z0-9]+XXX", script), "every field of the template is one RELION fills"
    (jobs / "run_submit.script").write_text(script)
    env = dict(slurm.env, PATH=f"{prefix}/bin:{os.environ['PATH']}")
    job = subprocess.run(["sbatch", "--parsable", str(jobs / "run_submit.script")], cwd=jobs, env=env,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert slurm.wait(job) == "COMPLETED", (jobs / "relion.err").read_text()
    assert (jobs / "relion.out").read_text().split() == ["image=hello/1.0/cpu-g5"]


def test_an_unknown_partition_names_the_known_ones(cluster):
    prefix, _, _ = cluster
    result = subprocess.run([str(prefix / "bin" / "hello"), "--whoami"], capture_output=True, text=True,
                            env=dict(os.environ, SLURM_JOB_PARTITION="gpu-old"))
    assert result.returncode == 2
    assert "partition 'gpu-old' is not a cryostack queue (known: g5, g4dn, c6i)" in result.stderr


@pytest.mark.parametrize("partition", list(VARIANTS))
def test_apptainer_wrappers_run_the_published_sif_of_each_partition(apptainer_cluster, partition):
    prefix, jobs, slurm, shim = apptainer_cluster
    nasty = ["two words", "it's \"quoted\"", "*", "$(id)", "line one\nline two", ""]
    script = f"#!/bin/bash\nexport PATH={shim}:{prefix}/bin:$PATH\nhello --whoami\nhello --args \"$@\"\n"
    lines = run_job(slurm, jobs, script, *nasty, partition=partition).splitlines()
    assert lines[0] == f"image=hello/1.0/cpu-{partition}"
    assert [bytes.fromhex(line).decode() for line in lines[1:]] == nasty


def test_apptainer_wrapper_names_a_missing_sif(apptainer_cluster, tmp_path):
    prefix, _, _, _ = apptainer_cluster
    wrapper = (prefix / "bin" / "hello_g5").read_text()
    image = next(line.split("=", 1)[1].strip("'") for line in wrapper.splitlines() if line.startswith("image="))
    moved = Path(image).with_suffix(".away")
    os.rename(image, moved)
    try:
        result = subprocess.run([str(prefix / "bin" / "hello_g5"), "--whoami"], capture_output=True, text=True)
    finally:
        os.rename(moved, image)
    assert result.returncode == 127
    assert f"hello_g5: image {image} is missing; ask the site to publish hello/1.0/cpu-g5" in result.stderr


def test_node_set_up_script_puts_the_wrappers_on_every_login_shell(cluster, published, base_image):
    """What ParallelCluster runs on each node (OnNodeConfigured), here on a fresh Debian container."""
    prefix, _, _ = cluster
    work, manifest = published
    script = prefix / "on-node-configured.sh"
    run = ["docker", "run", "--rm", "-v", f"{work}:{work}:ro", base_image, "bash", "-c"]
    configured = subprocess.run([*run, f"{script} {manifest.parent} {prefix} && bash -lc 'command -v hello'"],
                                capture_output=True, text=True)
    assert configured.returncode == 0, configured.stderr
    assert configured.stdout.strip() == f"{prefix}/bin/hello"
    unmounted = subprocess.run([*run, f"{script} /efs/not-mounted {prefix}"], capture_output=True, text=True)
    assert unmounted.returncode == 1
    assert "/efs/not-mounted/manifest.json is not readable: is the image store mounted?" in unmounted.stderr
