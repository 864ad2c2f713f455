"""The cluster side without services: site files, the ParallelCluster configuration (checked with
aws-parallelcluster's own schema), and what the generated wrappers, dispatchers, qsub templates and
modules do when run. The container runtime is replaced by a stand-in that reports its arguments;
tests/integration/test_slurm.py runs the same files with real runtimes under a real Slurm."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from cryostack.app.images import planned_images
from cryostack.project import Project
from cryostack.publish import manifest as manifests
from cryostack.settings import BuildSettings
from helpers import ROOT, cryostack, write_site

EXAMPLE = ROOT / "cluster-configs" / "site.example.yaml"


def config_of(site_file: Path, tmp_path: Path) -> dict:
    out = tmp_path / "cluster.yaml"
    result = cryostack("cluster.config", "--site", str(site_file), "--output", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    return yaml.safe_load(out.read_text())


# --- ParallelCluster configuration -------------------------------------------------------------

def test_example_site_gives_a_valid_cluster_config(tmp_path):
    config = config_of(EXAMPLE, tmp_path)
    queues = {q["Name"]: q for q in config["Scheduling"]["SlurmQueues"]}
    assert list(queues) == ["g4dn", "g4dn-spot", "g4dn12", "g4dn12-spot", "g5", "g5-spot", "c6i"]
    assert queues["g5-spot"]["CapacityType"] == "SPOT" and queues["g5"]["CapacityType"] == "ONDEMAND"
    for queue in queues.values():
        for resource in queue["ComputeResources"]:
            assert resource["MinCount"] == 0
            assert resource.get("Efa") == {"Enabled": True}, "every example instance type supports EFA"
        assert queue["Networking"]["PlacementGroup"] == {"Enabled": True}
        assert queue["CustomActions"]["OnNodeConfigured"]["Script"].endswith("on-node-configured.sh")
    assert queues["g4dn"]["ComputeResources"][0]["Instances"] == [{"InstanceType": "g4dn.metal"}]
    assert queues["c6i"]["ComputeResources"][0]["MaxCount"] == 4
    assert config["HeadNode"]["Dcv"] == {"Enabled": True}
    storage = {s["Name"]: s for s in config["SharedStorage"]}
    assert storage["images"]["EfsSettings"] == {"FileSystemId": "fs-0123456789abcdef0"}
    assert storage["scratch"]["FsxLustreSettings"]["StorageCapacity"] == 2400
    assert {t["Key"] for t in config["Tags"]} == {"user", "project", "group"}


@pytest.mark.parametrize("changes", [
    {"scratch": None, "os": "ubuntu2204"},
    {"queues": [{"name": "small", "instance_types": ["g5.xlarge", "g5.2xlarge"], "max_count": 10,
                 "capacity": "spot"}]},
    {"queues": [{"name": "cpu", "instance_types": ["c6i.32xlarge"], "max_count": 2, "efa": False}],
     "head_node": {"subnet": "subnet-0f1e2d3c4b5a69788", "dcv": False}},
    {"runtime": "docker", "compute_subnets": ["subnet-0a1b2c3d4e5f60718", "subnet-0b1b2c3d4e5f60719"]},
], ids=["no-scratch-ubuntu", "spot-only-mixed-sizes", "no-efa-no-dcv", "docker-two-subnets"])
def test_site_variations_pass_the_parallelcluster_schema(tmp_path, changes):
    config = config_of(write_site(tmp_path / "site.yaml", **changes), tmp_path)
    if "queues" in changes:
        queue = config["Scheduling"]["SlurmQueues"][0]
        wanted = changes["queues"][0]
        assert [r["Instances"][0]["InstanceType"] for r in queue["ComputeResources"]] == wanted["instance_types"]
        assert ("PlacementGroup" in queue["Networking"]) == (wanted.get("efa") is not False
                                                             and wanted["instance_types"] == ["c6i.32xlarge"])
    if changes.get("scratch", "kept") is None:
        assert [s["Name"] for s in config["SharedStorage"]] == ["images"]


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


@pytest.mark.parametrize("old, new, message", [
    ("  mount: /efs\n", "  mount: /efs\n  moutn: /efs\n", "image_store.moutn: unknown key"),
    ("[g4dn.metal]", "[g4dn metal]", "queues[0].instance_types: 'g4dn metal' is not an EC2 instance type"),
    ("efs_id: fs-0123456789abcdef0", "efs_id: 0123", "image_store.efs_id"),
    ("  group: structural-biology\n", "", "give the cost-allocation tag 'group'"),
    ("max_count: 4", "max_count: four", "queues[3].max_count: Input should be a valid integer"),
    ("[g5.12xlarge]", "[g5.12xlarge, g4dn.12xlarge]", "one instance family per queue"),
])
def test_broken_site_files_give_one_line_errors_with_file_and_line(tmp_path, old, new, message):
    text = EXAMPLE.read_text()
    assert old in text
    site = tmp_path / "site.yaml"
    site.write_text(text.replace(old, new, 1))
    out = tmp_path / "cluster.yaml"
    result = cryostack("cluster.config", "--site", str(site), "--output", str(out))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert f"{site}:" in result.stderr and message in result.stderr
    assert not out.exists()


def test_bad_yaml_in_a_site_file_names_its_line(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(EXAMPLE.read_text().replace("region: eu-west-1", "region: [eu-west-1", 1))
    result = cryostack("cluster.config", "--site", str(site))
    # The parser notices the unclosed list on the line after it.
    assert result.returncode == 2 and f"{site}:{line_of(EXAMPLE, 'region: eu-west-1') + 1}: invalid YAML" in result.stderr


def test_what_only_parallelcluster_rejects_is_shown_as_its_message(tmp_path):
    """The site model does not check subnet ids; ParallelCluster's schema does, and says so."""
    site = write_site(tmp_path / "site.yaml", compute_subnets=["private-a"])
    result = cryostack("cluster.config", "--site", str(site))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{site}: ParallelCluster rejects the generated configuration: " in result.stderr
    assert "SubnetIds" in result.stderr


# --- wrappers, dispatchers, templates, modules --------------------------------------------------

@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    """A manifest as `publish` writes it, for the shipped catalogue's RELION 5 and CTFFIND images."""
    entries = {}
    for image in planned_images(Project(ROOT), BuildSettings(), "relion/5.0.1/*,ctffind/*"):
        key, fp = image.target.key, image.fingerprint.digest
        built = {"image": f"cryostack/{key.replace('/', ':', 1).replace('/', '-')}", "labels": {}}
        sif = {"path": f"images/{key}/{fp[:12]}.sif", "sha256": "0" * 64, "size": 1}
        entries[key] = manifests.entry_for(image, built, sif)
    path = tmp_path_factory.mktemp("efs") / "manifest.json"
    path.write_text(json.dumps(manifests.merge(manifests.empty(), entries)))
    return path


@pytest.fixture(scope="module")
def site_tree(manifest, tmp_path_factory):
    """Wrappers for the example site, and a stand-in `apptainer` that prints its arguments (hex, a line each)."""
    work = tmp_path_factory.mktemp("site")
    prefix = work / "prefix"
    result = cryostack("cluster.wrappers", "--site", str(EXAMPLE), "--manifest", str(manifest), "--prefix", str(prefix))
    assert result.returncode == 0, result.stdout + result.stderr
    runtime = work / "runtime"
    runtime.mkdir()
    (runtime / "apptainer").write_text('#!/bin/bash\nfor a in "$@"; do printf "%s" "$a" | od -An -tx1 | tr -d " \\n"; echo; done\n')
    (runtime / "apptainer").chmod(0o755)
    return prefix, runtime


def run(site_tree, command: str, *args: str, **env) -> subprocess.CompletedProcess:
    prefix, runtime = site_tree
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "CRYOSTACK_"))}
    environment.update(PATH=f"{runtime}:{os.environ['PATH']}", **env)
    return subprocess.run([str(prefix / "bin" / command), *args], capture_output=True, text=True, env=environment)


def runtime_argv(result: subprocess.CompletedProcess) -> list:
    assert result.returncode == 0, result.stderr
    return [bytes.fromhex(line).decode() for line in result.stdout.splitlines()]


def published_sif(manifest: Path, key: str) -> str:
    entry = json.loads(manifest.read_text())["images"][key]
    return str(manifest.parent / entry["sif"]["path"])


def test_gpu_wrapper_runs_the_sif_with_nv_binds_and_exact_arguments(site_tree, manifest):
    # The runtime is missing images it cannot read: make the published SIF exist for this call.
    sif = Path(published_sif(manifest, "relion/5.0.1/gcc-cuda86"))
    sif.parent.mkdir(parents=True, exist_ok=True)
    sif.touch()
    argv = runtime_argv(run(site_tree, "relion_refine_mpi_g5", "--o", "Refine3D/job 1/run", "--j", "$(id)"))
    assert argv == ["exec", "--nv", "--bind", "/efs", "--bind", "/fsx", str(sif), "relion_refine_mpi",
                    "--o", "Refine3D/job 1/run", "--j", "$(id)"]


def test_cpu_relion_refine_gets_cpu_unless_the_user_chose(site_tree, manifest):
    sif = Path(published_sif(manifest, "relion/5.0.1/oneapi-cpu-avx512"))
    sif.parent.mkdir(parents=True, exist_ok=True)
    sif.touch()
    plain = runtime_argv(run(site_tree, "relion_refine_mpi_c6i", "--i", "particles.star"))
    assert "--nv" not in plain and plain[-3:] == ["--i", "particles.star", "--cpu"]
    chosen = runtime_argv(run(site_tree, "relion_refine_c6i", "--gpu", "0"))
    assert chosen[-2:] == ["--gpu", "0"] and "--cpu" not in chosen
    other = runtime_argv(run(site_tree, "relion_postprocess_c6i", "--mask", "m.mrc"))
    assert other[-2:] == ["--mask", "m.mrc"], "only relion_refine(_mpi) take --cpu"


def test_a_missing_sif_is_named(site_tree, manifest):
    result = run(site_tree, "relion_refine_g4dn", "--version")
    sif = published_sif(manifest, "relion/5.0.1/gcc-cuda75")
    assert result.returncode == 127
    assert result.stderr.strip() == (f"relion_refine_g4dn: image {sif} is missing; "
                                     "ask the site to publish relion/5.0.1/gcc-cuda75")


def test_dispatcher_follows_the_partition_including_spot_twins(site_tree, manifest):
    for partition, key in (("g5", "gcc-cuda86"), ("g5-spot", "gcc-cuda86"), ("c6i", "oneapi-cpu-avx512")):
        argv = runtime_argv(run(site_tree, "relion_refine_mpi", "--iter", "25", SLURM_JOB_PARTITION=partition))
        assert argv[argv.index("relion_refine_mpi") - 1] == published_sif(manifest, f"relion/5.0.1/{key}")
    outside = runtime_argv(run(site_tree, "relion_refine", "--iter", "1"))
    assert "oneapi-cpu-avx512" in outside[outside.index("relion_refine") - 1], "outside a job: the CPU queue's image"
    forced = runtime_argv(run(site_tree, "relion_refine", SLURM_JOB_PARTITION="c6i", CRYOSTACK_INSTANCE_FAMILY="g5"))
    assert "gcc-cuda86" in forced[forced.index("relion_refine") - 1]


def test_dispatcher_errors_name_what_is_available(site_tree):
    unknown = run(site_tree, "relion_refine", SLURM_JOB_PARTITION="gpu-old")
    assert unknown.returncode == 2
    assert "partition 'gpu-old' is not a cryostack queue (known: g4dn, g4dn-spot, g4dn12, g4dn12-spot, g5, g5-spot, c6i)" \
        in unknown.stderr
    unserved = run(site_tree, "relion_refine", CRYOSTACK_INSTANCE_FAMILY="p4d")
    assert unserved.returncode == 2
    assert "no published image serves instance family 'p4d' (available: g4dn, g5, c6i)" in unserved.stderr


def test_qsub_templates_have_no_empty_directives_and_gpus_only_where_there_are_gpus(site_tree):
    prefix, _ = site_tree
    for name, gres in (("g4dn", "--gres=gpu:8"), ("g4dn12-spot", "--gres=gpu:4"), ("g5", "--gres=gpu:4"), ("c6i", None)):
        text = (prefix / "qsub" / f"{name}.sh").read_text()
        directives = [line for line in text.splitlines() if line.startswith("#SBATCH")]
        assert all(not d.rstrip().endswith("=") for d in directives)
        assert [d for d in directives if "--gres" in d] == ([f"#SBATCH {gres}"] if gres else [])
        for field in ("queue", "mpinodes", "threads", "extra1", "outfile", "errfile", "command"):
            assert f"XXX{field}XXX" in text
    syntax = subprocess.run(["bash", "-n", str(prefix / "qsub" / "g5.sh")], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr


def test_modules_list_commands_and_set_what_relion_reads(site_tree):
    prefix, _ = site_tree
    text = (prefix / "modules" / "cryostack" / "relion" / "5.0.1-gcc-cuda86.lua").read_text()
    assert "relion_refine_mpi\n" in text and "Serves: g5." in text
    env = dict(line[len('setenv("'):-2].split('", "', 1) for line in text.splitlines() if line.startswith("setenv("))
    assert env["RELION_QSUB_COMMAND"] == "sbatch"
    assert env["RELION_QSUB_TEMPLATE"] == f"{prefix}/qsub/g4dn.sh" and env["RELION_QUEUE_NAME"] == "g4dn"
    assert env["RELION_CTFFIND_EXECUTABLE"] == f"{prefix}/bin/ctffind"
    assert os.access(env["RELION_CTFFIND_EXECUTABLE"], os.X_OK)
    assert env["RELION_MPIRUN"] == "srun --mpi=pmix" and env["RELION_SCRATCH_DIR"] == "/fsx"
    ctffind = (prefix / "modules" / "cryostack" / "ctffind" / "4.1.14-gcc-cpu.lua").read_text()
    assert "RELION_QSUB" not in ctffind


def test_presets_from_gotocloud_become_relion_defaults(site_tree):
    prefix, _ = site_tree
    modules = prefix / "modules" / "cryostack"
    expected = {"refine3d": ("g4dn", "16", "2"), "class3d": ("g5", "32", "8"), "class2d": ("g4dn12", "32", "8"),
                "polish": ("c6i", "16", "4")}
    for name, (queue, ranks, nodes) in expected.items():
        text = (modules / f"relion-{name}.lua").read_text()
        assert f'setenv("RELION_QUEUE_NAME", "{queue}")' in text
        assert f'setenv("RELION_QSUB_NRMPI", "{ranks}")' in text
        assert f'setenv("RELION_QSUB_EXTRA1_DEFAULT", "{nodes}")' in text


def test_a_site_overrides_a_preset_and_unknown_presets_are_refused(manifest, tmp_path):
    site = write_site(tmp_path / "site.yaml", presets={"polish": {"mpi_per_node": 8}})
    prefix = tmp_path / "prefix"
    result = cryostack("cluster.wrappers", "--site", str(site), "--manifest", str(manifest), "--prefix", str(prefix))
    assert result.returncode == 0, result.stderr
    assert 'setenv("RELION_QSUB_NRMPI", "32")' in (prefix / "modules" / "cryostack" / "relion-polish.lua").read_text()

    site = write_site(tmp_path / "site.yaml", presets={"polishing": {"nodes": 2}})
    result = cryostack("cluster.wrappers", "--site", str(site), "--manifest", str(manifest), "--prefix", str(prefix))
    assert result.returncode == 2 and "unknown preset(s) ['polishing']" in result.stderr


def test_a_missing_manifest_is_a_clear_error(tmp_path):
    result = cryostack("cluster.wrappers", "--site", str(EXAMPLE), "--manifest", str(tmp_path / "nope.json"),
                       "--prefix", str(tmp_path / "prefix"))
    assert result.returncode == 2 and "cannot read the published manifest" in result.stderr
    assert not (tmp_path / "prefix").exists()
