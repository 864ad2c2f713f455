"""Wrappers under a real Slurm: each partition runs the image of its instance family, arguments
arrive byte for byte, MPI ranks start the way the image needs, a RELION-style submission from the
one qsub template runs (with --gres only on GPU partitions), jobs submit from inside a container,
and the node set-up script fails a node without a runtime."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import cryostack, make_hello_project
from sites import Recorder, apptainer_shim, site_wrappers

pytestmark = pytest.mark.docker

# One test program, one variant per instance family: which image ran is visible from inside it.
VARIANTS = {"g5": "-O2 -DWITH_MPI", "g4dn": "-O1", "c6i": "-O3 -DWITH_MPI"}


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


@pytest.fixture(scope="module")
def cluster(published, slurm):
    """Wrappers of a site whose runtime is Docker."""
    work, manifest = published
    return site_wrappers(work, manifest, "docker"), work / "jobs", slurm


@pytest.fixture(scope="module")
def apptainer_cluster(published, slurm):
    """Wrappers of a site whose runtime is Apptainer (the default), running the published SIFs."""
    work, manifest = published
    prefix = site_wrappers(work, manifest, "apptainer")
    return prefix, work / "jobs", slurm, apptainer_shim(work)


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


def test_the_launcher_starts_two_mpi_ranks_under_pmix_in_containers(cluster):
    """The hybrid model: Slurm's PMIx server starts the ranks, Debian's Open MPI in the image wires them up."""
    prefix, jobs, slurm = cluster
    script = f"#!/bin/bash\n{prefix}/bin/cryostack-mpirun -n 2 {prefix}/bin/hello --mpi\n"
    output = run_job(slurm, jobs, script, partition="c6i", options=["--ntasks=2"])
    assert sorted(output.splitlines()) == [f"rank={r} size=2 sum=1 image=hello/1.0/cpu-c6i" for r in (0, 1)]


def test_host_mpirun_runs_two_mpi_ranks_in_containers(cluster, host_mpirun):
    """RELION's other launcher: the host's mpirun (inside the allocation) starts the wrapper twice."""
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


def gres_of(slurm, job: str) -> str:
    shown = subprocess.run(["scontrol", "show", "job", job], env=slurm.env, capture_output=True, text=True).stdout
    return " ".join(w for w in shown.split() if "gres" in w.lower() or w.startswith("TresPerNode"))


@pytest.mark.parametrize("partition, gpus", [("g5", 4), ("c6i", 0)])
def test_relion_style_submission_through_the_one_template(cluster, partition, gpus):
    """What RELION's GUI does: fill the XXX fields of the template (the queue field names the
    partition) and run RELION_QSUB_COMMAND on it; GPUs are asked for only where the partition has them."""
    prefix, jobs, slurm = cluster
    template = (prefix / "qsub" / "relion.sh").read_text()
    out, err = jobs / f"relion-{partition}.out", jobs / f"relion-{partition}.err"
    values = {"queue": partition, "mpinodes": "2", "threads": "1", "extra1": "1", "outfile": str(out),
              "errfile": str(err), "name": "Class3D/job001/"}
    script = template
    for field, value in values.items():
        script = script.replace(f"XXX{field}XXX", value)
    script = script.replace("XXXcommandXXX", "`which hello` --mpi")
    assert not re.search(r"XXX[a-z0-9]+XXX", script), "every field of the template is one RELION fills"
    (jobs / f"run_submit-{partition}.script").write_text(script)
    env = dict(slurm.env, PATH=f"{prefix}/bin:{os.environ['PATH']}")
    submitted = subprocess.run([str(prefix / "bin" / "cryostack-sbatch"), "--parsable", str(jobs / f"run_submit-{partition}.script")],
                               cwd=jobs, env=env, capture_output=True, text=True)
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.strip().split(";")[0]
    assert (f"gpu:{gpus}" in gres_of(slurm, job)) == bool(gpus), gres_of(slurm, job)
    assert slurm.wait(job) == "COMPLETED", err.read_text()
    assert sorted(out.read_text().splitlines()) == [f"rank={r} size=2 sum=1 image=hello/1.0/cpu-{partition}" for r in (0, 1)]


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


def test_apptainer_ranks_start_under_pmix_through_the_launcher(apptainer_cluster):
    prefix, jobs, slurm, shim = apptainer_cluster
    script = f"#!/bin/bash\nexport PATH={shim}:$PATH\n{prefix}/bin/cryostack-mpirun -n 2 {prefix}/bin/hello --mpi\n"
    output = run_job(slurm, jobs, script, partition="g5", options=["--ntasks=2"])
    assert sorted(output.splitlines()) == [f"rank={r} size=2 sum=1 image=hello/1.0/cpu-g5" for r in (0, 1)]


def test_a_job_submits_from_inside_a_container(apptainer_cluster, published, tmp_path):
    """RELION's pipeliner runs in its container and submits with RELION_QSUB_COMMAND: with the
    binds the wrappers give, cryostack-sbatch inside the container reaches the host's Slurm."""
    prefix, jobs, slurm, shim = apptainer_cluster
    work, manifest = published
    recorder = Recorder(tmp_path)
    assert subprocess.run([str(prefix / "bin" / "hello_c6i")], env=recorder.env()).returncode == 0
    argv = recorder.calls()[-1]["argv"]
    binds = [a for i, a in enumerate(argv) if i and argv[i - 1] == "--bind"]
    sif = next(a for a in argv if a.endswith(".sif"))
    inner = jobs / "inner.sh"
    inner.write_text(f"#!/bin/bash\n#SBATCH --partition=c6i\n#SBATCH --output={jobs}/inner.out\necho submitted-from-inside\n")
    command = f"command -v sbatch || echo 'no sbatch in the image'; {prefix}/bin/cryostack-sbatch --parsable {inner}"
    shim_env = dict(slurm.env, PATH=f"{shim}:{os.environ['PATH']}")
    inside = subprocess.run([str(shim / "apptainer"), "exec", *[x for b in binds for x in ("--bind", b)], sif,
                             "/bin/bash", "-c", command], env=shim_env, capture_output=True, text=True)
    assert inside.returncode == 0, inside.stdout + inside.stderr
    assert "no sbatch in the image" in inside.stdout, "the image itself has no Slurm client"
    job = inside.stdout.strip().splitlines()[-1].split(";")[0]
    assert slurm.wait(job) == "COMPLETED"
    assert (jobs / "inner.out").read_text().strip() == "submitted-from-inside"


def test_apptainer_wrapper_names_a_missing_sif(apptainer_cluster):
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


# --- the node set-up script (ParallelCluster's OnNodeConfigured), on a fresh Debian container ----

def fake_runtime_deb(work: Path) -> Path:
    """A real .deb that installs a stand-in `apptainer` (no dependencies: it installs offline)."""
    root = work / "deb"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text("Package: apptainer-standin\nVersion: 1.0\nArchitecture: all\n"
                                             "Maintainer: cryostack tests <tests@cryostack.invalid>\n"
                                             "Description: stand-in apptainer for the node script test\n")
    (root / "usr" / "bin" / "apptainer").write_text("#!/bin/sh\necho apptainer stand-in\n")
    (root / "usr" / "bin" / "apptainer").chmod(0o755)
    deb = work / "apptainer_1.0_all.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)], check=True, capture_output=True)
    return deb


def node(base_image: str, work: Path, script: str, *mounts: str) -> subprocess.CompletedProcess:
    command = ["docker", "run", "--rm", "-v", f"{work}:{work}", *[x for m in mounts for x in ("-v", m)],
               base_image, "bash", "-c", script]
    return subprocess.run(command, capture_output=True, text=True)


def test_node_set_up_fails_a_node_without_the_runtime_and_sets_up_logins(published, base_image, tmp_path):
    work, manifest = published
    os.chmod(tmp_path, 0o755)
    prefix = site_wrappers(work, manifest, "apptainer")
    script = prefix / "on-node-configured.sh"
    missing = node(base_image, work, str(script))
    assert missing.returncode == 1
    assert "cryostack: apptainer is not installed on this node" in missing.stderr
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "apptainer").write_text("#!/bin/sh\n")
    (tools / "apptainer").chmod(0o755)
    configured = node(base_image, work, f"cp {tools}/apptainer /usr/local/bin/ && {script} && "
                      f"test -d {work}/scratch && bash -lc 'command -v hello; echo \"$MODULEPATH\"'", f"{tools}:{tools}:ro")
    assert configured.returncode == 0, configured.stderr
    assert configured.stdout.splitlines()[0] == f"{prefix}/bin/hello"
    unmounted = node(base_image, work, f"cp {tools}/apptainer /usr/local/bin/ && "
                     f"sed 's|^images=.*|images=/efs/not-mounted|' {script} > /tmp/s && bash /tmp/s", f"{tools}:{tools}:ro")
    assert unmounted.returncode == 1
    assert "/efs/not-mounted/manifest.json is not readable: is the image store mounted?" in unmounted.stderr


def test_node_set_up_installs_the_runtime_package_after_checking_its_sha256(published, base_image, tmp_path):
    """runtime_install.package_url: the node fetches the package (here s3:// through a stand-in
    `aws`), checks its sha256, installs it with the system's package manager, then finds the runtime."""
    work, manifest = published
    os.chmod(tmp_path, 0o755)
    deb = fake_runtime_deb(tmp_path)
    digest = hashlib.sha256(deb.read_bytes()).hexdigest()
    aws = tmp_path / "aws-bin" / "aws"
    aws.parent.mkdir()
    # `aws s3 cp --quiet s3://bucket/key DEST`: copies from the bucket's stand-in directory.
    aws.write_text(f"#!/bin/sh\n[ \"$1 $2\" = 's3 cp' ] || exit 64\ncp {tmp_path}/bucket/\"$(basename \"$4\")\" \"$5\"\n")
    aws.chmod(0o755)
    (tmp_path / "bucket").mkdir()
    shutil.copy(deb, tmp_path / "bucket" / deb.name)
    results = {}
    for name, sha in (("good", digest), ("tampered", "0" * 64)):
        install = {"package_url": f"s3://cryo-lab-software/{deb.name}", "package_sha256": sha}
        prefix = site_wrappers(work, manifest, "apptainer", runtime_install=install)
        results[name] = node(base_image, work, f"PATH={aws.parent}:$PATH {prefix}/on-node-configured.sh && apptainer",
                             f"{tmp_path}:{tmp_path}:ro")
    assert results["good"].returncode == 0, results["good"].stderr
    assert results["good"].stdout.strip().endswith("apptainer stand-in")
    assert results["tampered"].returncode == 1
    assert "does not have the sha256 the site file gives; not installing it" in results["tampered"].stderr
