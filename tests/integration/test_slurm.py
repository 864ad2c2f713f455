"""Wrappers under a real Slurm: each partition runs the image of its instance family, arguments
arrive byte for byte, and a RELION-style submission from the generated qsub template runs."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from cryostack.commands import Project, planned_images
from cryostack.publish import manifest as manifests
from cryostack.settings import BuildSettings
from helpers import ROOT, cryostack, hello_tarball, make_hello_project

pytestmark = pytest.mark.docker

# One test program, one variant per instance family: which image ran is visible from inside it.
VARIANTS = {"g5": "-O2", "g4dn": "-O1", "c6i": "-O3"}
INSTANCES = {"g5": "g5.12xlarge", "g4dn": "g4dn.12xlarge", "c6i": "c6i.32xlarge"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, base_image, slurm):
    """Build the variants, publish a manifest, write a site file (docker runtime) and the wrappers."""
    work = tmp_path_factory.mktemp("cluster")
    root = make_hello_project(work / "project", {"hello": ("-O2", "hello {version}")})
    family = yaml.safe_load((root / "images" / "hello.yaml").read_text())
    family["variants"] = {f"cpu-{f}": {"toolchain": "gcc", "accel": "cpu", "cpu_flags": flags, "targets": [f]}
                          for f, flags in VARIANTS.items()}
    (root / "images" / "hello.yaml").write_text(yaml.safe_dump(family, sort_keys=False))
    result = cryostack("--root", str(root), "build")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((root / "build" / "report.json").read_text())
    entries = {i.target.key: manifests.entry_for(i, report[i.target.key], {"path": "", "sha256": "", "size": 0})
               for i in planned_images(Project(root), BuildSettings(), None)}
    manifest = work / "efs" / "manifest.json"
    manifest.parent.mkdir()
    manifest.write_text(json.dumps(manifests.merge(manifests.empty(), entries)))

    site = yaml.safe_load((ROOT / "cluster-configs" / "site.example.yaml").read_text())
    site.update(runtime="docker", bind_paths=[str(work)], variants={}, queues=[
        {"name": f, "instance_types": [t], "max_count": 2} for f, t in INSTANCES.items()])
    site_file = work / "site.yaml"
    site_file.write_text(yaml.safe_dump(site))
    prefix = work / "cluster"
    result = cryostack("cluster-wrappers", "--site", str(site_file), "--manifest", str(manifest), "--prefix", str(prefix))
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = work / "jobs"
    jobs.mkdir()
    os.chmod(work, 0o755)
    return prefix, jobs, slurm


def run_job(slurm, jobs: Path, script: str, *args: str, partition: str) -> str:
    path = jobs / f"job-{partition}-{len(list(jobs.iterdir()))}.sh"
    path.write_text(script)
    out = path.with_suffix(".out")
    job = slurm.submit(f"--partition={partition}", f"--output={out}", str(path), *args, cwd=jobs)
    state = slurm.wait(job)
    text = out.read_text() if out.exists() else ""
    assert state == "COMPLETED", f"job {job} ended {state}: {text}"
    return text


@pytest.mark.parametrize("partition", list(VARIANTS))
def test_each_partition_runs_the_image_of_its_instance_family(cluster, partition):
    prefix, jobs, slurm = cluster
    script = f"#!/bin/bash\nexport PATH={prefix}/bin:$PATH\nhello --whoami\nhello_c6i --whoami\n"
    output = run_job(slurm, jobs, script, partition=partition).split()
    assert output == [f"image=hello/1.0/cpu-{partition}", "image=hello/1.0/cpu-c6i"]


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
    values = {"queue": "g5", "mpinodes": "1", "threads": "1", "outfile": str(jobs / "relion.out"),
              "errfile": str(jobs / "relion.err"), "name": "Class3D/job001/"}
    script = template
    for field, value in values.items():
        script = script.replace(f"XXX{field}XXX", value)
    script = script.replace("XXXcommandXXX", "`which hello` --whoami")
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
