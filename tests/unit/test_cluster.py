"""The cluster side without services: site files, the ParallelCluster configuration (checked with
aws-parallelcluster's own schema and offline validators), and what the generated wrappers,
dispatchers, launcher, submit command and qsub template do when run with real bash. Container
runtimes, srun, mpirun and sbatch are stand-ins that record their arguments (tests/sites.py);
tests/integration/test_slurm.py runs the same files with real runtimes under a real Slurm."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import ROOT, cryostack, write_site
from sites import Recorder, entry, fill, generate, make_tree, relion_entries, run, write_manifest

EXAMPLE = ROOT / "cluster-configs" / "site.example.yaml"


def config_of(site_file: Path, tmp_path: Path) -> dict:
    out = tmp_path / "cluster.yaml"
    result = cryostack("cluster.config", "--site", str(site_file), "--output", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    return yaml.safe_load(out.read_text())


def refused(site_file: Path, *fragments: str) -> str:
    """The one-line exit-2 message `cluster.config` gives for SITE_FILE; it contains every fragment."""
    result = cryostack("cluster.config", "--site", str(site_file))
    assert result.returncode == 2, result.stdout + result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def line_of(path: Path, text: str, start: int = 1) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if n >= start and text in line)


# --- ParallelCluster configuration -------------------------------------------------------------

def test_example_site_gives_a_cluster_that_can_boot(tmp_path):
    config = config_of(EXAMPLE, tmp_path)
    site = yaml.safe_load(EXAMPLE.read_text())
    queues = {q["Name"]: q for q in config["Scheduling"]["SlurmQueues"]}
    expected = [n for q in site["queues"] for n in ([q["name"], q["name"] + "-spot"] if q.get("spot_twin") else [q["name"]])]
    assert list(queues) == expected
    assert queues["g5-spot"]["CapacityType"] == "SPOT" and queues["g5"]["CapacityType"] == "ONDEMAND"
    # The node script is fetched from the site's bucket: ParallelCluster grants only its own buckets.
    script_bucket = site["on_node_configured_url"].split("/")[2]
    data = {b["bucket"]: b.get("write", False) for b in site["s3_buckets"]}
    for iam in [config["HeadNode"]["Iam"]] + [q["Iam"] for q in queues.values()]:
        access = {a["BucketName"]: a.get("EnableWriteAccess", False) for a in iam["S3Access"]}
        assert access == {script_bucket: False, **data}
    assert config["Image"]["CustomAmi"] == site["runtime_install"]["custom_ami"], "the AMI that has Apptainer"
    for queue in queues.values():
        assert queue["CustomActions"]["OnNodeConfigured"] == {"Script": site["on_node_configured_url"]}
        for resource in queue["ComputeResources"]:
            assert resource["MinCount"] == 0
    storage = {s["Name"]: s for s in config["SharedStorage"]}
    assert storage["images"]["EfsSettings"] == {"FileSystemId": site["image_store"]["efs_id"]}
    assert storage["fsx"]["FsxLustreSettings"]["StorageCapacity"] == site["fsx"]["capacity_gib"]
    assert {t["Key"] for t in config["Tags"]} >= {"user", "project", "group"}


def test_efa_and_placement_groups_follow_the_hardware_table(tmp_path):
    queues = [{"name": "big", "instance_types": ["c6i.32xlarge"], "max_count": 2},
              {"name": "small", "instance_types": ["c6i.4xlarge"], "max_count": 2},
              {"name": "mixed", "instance_types": ["g5.12xlarge", "g5.2xlarge"], "max_count": 2},
              {"name": "off", "instance_types": ["g5.48xlarge"], "max_count": 2, "efa": False}]
    config = config_of(write_site(tmp_path / "site.yaml", queues=queues, variants={}), tmp_path)
    got = {q["Name"]: (q["ComputeResources"][0].get("Efa"), q["Networking"]["PlacementGroup"])
           for q in config["Scheduling"]["SlurmQueues"]}
    assert got == {"big": ({"Enabled": True}, {"Enabled": True}), "small": (None, {"Enabled": False}),
                   "mixed": (None, {"Enabled": False}), "off": (None, {"Enabled": False})}


@pytest.mark.parametrize("changes", [
    {"fsx": None, "os": "ubuntu2204"},
    {"queues": [{"name": "small", "instance_types": ["g5.xlarge", "g5.2xlarge"], "max_count": 10, "capacity": "spot"}],
     "variants": {}},
    {"queues": [{"name": "cpu", "instance_types": ["c7i.48xlarge"], "max_count": 2}], "variants": {},
     "head_node": {"subnet": "subnet-0f1e2d3c4b5a69788", "dcv": False, "instance_type": "t3.large"}},
    {"runtime": "docker", "runtime_install": None,
     "compute_subnets": ["subnet-0a1b2c3d4e5f60718", "subnet-0b1b2c3d4e5f60719"]},
    {"runtime_install": {"package_url": "s3://cryo-lab-software/apptainer-1.4.5-1.x86_64.rpm",
                         "package_sha256": "1" * 64}},
], ids=["no-fsx-ubuntu", "spot-only-mixed-sizes", "c7i-t3-head-no-dcv", "docker-two-subnets", "apptainer-package"])
def test_site_variations_pass_parallelclusters_checks(tmp_path, changes):
    config = config_of(write_site(tmp_path / "site.yaml", **changes), tmp_path)
    if changes.get("fsx", "kept") is None:
        assert [s["Name"] for s in config["SharedStorage"]] == ["images"]
    if "runtime_install" in changes:
        assert "CustomAmi" not in config["Image"]
    if changes.get("runtime_install"):
        buckets = [a["BucketName"] for a in config["HeadNode"]["Iam"]["S3Access"]]
        assert "cryo-lab-software" in buckets, "the node fetches the runtime package from its bucket"


@pytest.mark.parametrize("changes, key, fragments", [
    # What aws-parallelcluster's own offline validators refuse, named at the site file's key.
    ({"queues": [{"name": "a" * 26, "instance_types": ["c6i.large"], "max_count": 1}]}, "queues[0].name",
     ["Name can be at most 25 chars long"]),
    ({"queues": [{"name": "a" * 22, "instance_types": ["c6i.large"], "max_count": 1, "spot_twin": True}]},
     "queues[0].name", [f"'{'a' * 22}-spot'", "at most 25 chars"]),
    ({"fsx": {"capacity_gib": 1300}}, "fsx.capacity_gib", ["1,200 GB or increments of 2,400 GB"]),
    ({"fsx": {"capacity_gib": 4800, "deployment": "SCRATCH_1"}}, "fsx.capacity_gib", ["SCRATCH_1"]),
    ({"queues": [{"name": f"q{i}", "instance_types": ["c6i.large"], "max_count": 1} for i in range(51)]},
     "queues", ["Invalid number of SlurmQueues (51)", "up to 50"]),
    ({"queues": [{"name": "q", "instance_types": ["c6i.large", "c6i.xlarge", "c6i.large"], "max_count": 1}]},
     "queues[0].instance_types", ["Compute resource name c6i-large must be unique"]),
    ({"queues": [{"name": f"q{i}", "instance_types": [f"c6i.{s}" for s in ("large", "xlarge", "2xlarge", "4xlarge",
                                                                          "8xlarge", "12xlarge", "16xlarge",
                                                                          "24xlarge", "32xlarge")],
                  "max_count": 1} for i in range(6)]}, "queues", ["ComputeResources per Cluster (54)", "up to 50"]),
    ({"site": "c" * 61}, "site", ["String should match pattern"]),
])
def test_parallelclusters_offline_validators_run_with_one_line_messages(tmp_path, changes, key, fragments):
    site = write_site(tmp_path / "site.yaml", variants={}, **changes)
    message = refused(site, f"{site}:", f": {key}:", *fragments)
    assert re.match(rf"^cryostack: error: {re.escape(str(site))}:\d+: ", message) or message.startswith(f"{site}:")


def test_efa_where_the_hardware_has_none_is_refused_at_its_line(tmp_path):
    site = write_site(tmp_path / "site.yaml", variants={},
                      queues=[{"name": "tiny", "instance_types": ["t3.micro"], "max_count": 1, "efa": True}])
    message = refused(site, "queues[0].efa", "t3.micro does not support EFA")
    assert f"{site}:{line_of(site, 'efa: true')}:" in message


@pytest.mark.parametrize("old, new, message", [
    ("  mount: /efs\n", "  mount: /efs\n  moutn: /efs\n", "image_store.moutn: unknown key"),
    ("[g4dn.metal]", "[g4dn metal]", "queues[0].instance_types[0]: String should match pattern"),
    ("[g4dn.metal]", "[g7.metal]", "queues[0].instance_types[0]: no instance family 'g7' in the hardware table"),
    ("[g4dn.metal]", "[g4dn.3xlarge]", "queues[0].instance_types[0]: 'g4dn.3xlarge': instance family g4dn has no size"),
    ("instance_type: m6i.2xlarge", "instance_type: m9.large", "head_node.instance_type: no instance family 'm9'"),
    ("efs_id: fs-0123456789abcdef0", "efs_id: 0123", "image_store.efs_id"),
    ("  group: structural-biology\n", "", "give the cost-allocation tag 'group'"),
    ("max_count: 4", "max_count: four", "queues[3].max_count: Input should be a valid integer"),
    ("[g5.12xlarge]", "[g5.12xlarge, g4dn.12xlarge]", "one instance family per queue"),
    ("on_node_configured_url: s3://", "on_node_configured_url: ftp://", "on_node_configured_url: must be an https:// or s3://"),
    ("  mount: /fsx", "  mount: /fsx/$(id)", "fsx.mount: may hold only letters"),
    ("cluster_prefix: /efs/cryostack/cluster", "cluster_prefix: /efs/../etc", "cluster_prefix: must not contain '.' or '..'"),
    ("  custom_ami: ami-0123456789abcdef0", "  package_url: https://example.org/apptainer.rpm",
     "runtime_install: package_url needs package_sha256"),
    ("module_system: tcl", "module_system: lua", "module_system: Input should be 'lmod' or 'tcl'"),
    ("  - name: g4dn12\n", "  - name: g4dn\n", "queues[1].name: queue 'g4dn' is defined twice"),
    ("  - name: g4dn12\n", "  - name: g4dn-spot\n", "queues[1].name: queue 'g4dn-spot' is defined twice"),
])
def test_broken_site_files_give_one_line_errors_with_file_and_line(tmp_path, old, new, message):
    text = EXAMPLE.read_text()
    assert old in text
    site = tmp_path / "site.yaml"
    site.write_text(text.replace(old, new, 1))
    out = tmp_path / "cluster.yaml"
    result = cryostack("cluster.config", "--site", str(site), "--output", str(out))
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert re.search(rf"{re.escape(str(site))}:\d+: ", result.stderr) and message in result.stderr, result.stderr
    assert not out.exists()


def test_apptainer_sites_must_say_how_nodes_get_it(tmp_path):
    site = write_site(tmp_path / "site.yaml", runtime_install=None)
    refused(site, f"{site}:", "runtime: ParallelCluster's AMIs have no Apptainer")


def test_bad_yaml_in_a_site_file_names_its_line(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(EXAMPLE.read_text().replace("region: eu-west-1", "region: [eu-west-1", 1))
    result = cryostack("cluster.config", "--site", str(site))
    # The parser notices the unclosed list on the line after it.
    assert result.returncode == 2 and f"{site}:{line_of(EXAMPLE, 'region: eu-west-1') + 1}: invalid YAML" in result.stderr


def test_what_only_parallelclusters_schema_rejects_is_shown_as_its_message(tmp_path):
    """The site model allows any tag key of AWS's shape; ParallelCluster reserves its own prefix."""
    site = write_site(tmp_path / "site.yaml", tags={"user": "a", "project": "b", "group": "c", "parallelcluster:x": "1"})
    result = cryostack("cluster.config", "--site", str(site))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert f"{site}:1: (top level): ParallelCluster rejects the generated configuration: " in result.stderr
    assert "The tag key prefix 'parallelcluster:' is reserved" in result.stderr


# --- wrappers, dispatchers, launcher, submit command, qsub template -----------------------------

@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """The example site's tree for two RELION versions and CTFFIND, and recording stand-ins."""
    work = tmp_path_factory.mktemp("tree")
    prefix = make_tree(work)
    return prefix, Recorder(work), work / "efs"


def sif(efs: Path, key: str) -> str:
    return str(next((efs / "images" / key).glob("*.sif")))


def last_call(recorder: Recorder, tool: str) -> list:
    calls = [c for c in recorder.calls() if c["tool"] == tool]
    assert calls, f"{tool} was not called: {recorder.calls()}"
    return calls[-1]["argv"]


def test_gpu_wrapper_runs_its_sif_with_nv_binds_gpu_and_exact_arguments(tree):
    prefix, recorder, efs = tree
    recorder.reset()
    result = run(prefix / "bin" / "relion_refine_mpi_g5", "--o", "Refine3D/job 1/run", "--j", "$(id)", env=recorder.env())
    assert result.returncode == 0, result.stderr
    argv = last_call(recorder, "apptainer")
    image = sif(efs, "relion/5.0.1/gcc-cuda86")
    assert argv[:2] == ["exec", "--nv"]
    assert argv[argv.index(image):] == [image, "relion_refine_mpi", "--o", "Refine3D/job 1/run", "--j", "$(id)", "--gpu"]
    binds = [argv[i + 1] for i, a in enumerate(argv) if a == "--bind"]
    assert "/efs:/efs" not in binds or os.path.exists("/efs"), "only paths this node has are bound"
    # RELION's CtfFind runs ctffind from inside this container: the CTFFIND image is mounted there.
    assert f"{sif(efs, 'ctffind/4.1.14/gcc-cpu')}:/run/cryostack/helpers/ctffind:image-src=/,id=4" in binds


def test_gpu_and_cpu_flags_follow_the_image_unless_the_user_chose(tree):
    prefix, recorder, _ = tree
    env = recorder.env()
    cases = [("relion_refine_g5", ["--i", "p.star"], "--gpu"), ("relion_refine_g5", ["--cpu"], None),
             ("relion_refine_g5", ["--gpu", "0"], None), ("relion_refine_mpi_c6i", ["--i", "p.star"], "--cpu"),
             ("relion_refine_c6i", ["--gpu"], None), ("relion_postprocess_g5", ["--mask", "m.mrc"], None)]
    for command, args, added in cases:
        recorder.reset()
        assert run(prefix / "bin" / command, *args, env=env).returncode == 0
        tail = last_call(recorder, "apptainer")[-len(args) - (1 if added else 0):]
        assert tail == args + ([added] if added else []), (command, args, tail)


def test_binds_are_what_the_site_has(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "fsx").mkdir()
    for changes, expected in ((dict(fsx=None), [f"{tmp_path}/data"]),
                              (dict(fsx={"mount": str(tmp_path / "fsx")}), [f"{tmp_path}/fsx", f"{tmp_path}/data"])):
        prefix = make_tree(tmp_path / f"t{len(expected)}", extra_binds=[str(tmp_path / "data")], **changes)
        recorder = Recorder(tmp_path / f"t{len(expected)}")
        assert run(prefix / "bin" / "ctffind_c6i", env=recorder.env()).returncode == 0
        argv = last_call(recorder, "apptainer")
        binds = [argv[i + 1].split(":")[0] for i, a in enumerate(argv) if a == "--bind"]
        assert [b for b in binds if b.startswith(str(tmp_path))] == expected
        assert "/fsx" not in binds


def test_a_missing_sif_is_named(tree):
    prefix, recorder, efs = tree
    image = Path(sif(efs, "relion/5.0.1/gcc-cuda75"))
    image.rename(image.with_suffix(".away"))
    try:
        result = run(prefix / "bin" / "relion_refine_g4dn", "--version", env=recorder.env())
    finally:
        image.with_suffix(".away").rename(image)
    assert result.returncode == 127
    assert result.stderr.strip() == f"relion_refine_g4dn: image {image} is missing; ask the site to publish relion/5.0.1/gcc-cuda75"


def ran_image(recorder: Recorder) -> str:
    argv = last_call(recorder, "apptainer")
    return next(a for a in argv if a.endswith(".sif"))


def test_dispatcher_follows_the_partition_and_the_loaded_version(tree):
    prefix, recorder, efs = tree
    cases = [({"SLURM_JOB_PARTITION": "g5"}, "relion/5.0.1/gcc-cuda86"),
             ({"SLURM_JOB_PARTITION": "g5-spot"}, "relion/5.0.1/gcc-cuda86"),
             ({"SLURM_JOB_PARTITION": "c6i"}, "relion/5.0.1/oneapi-cpu-avx512"),   # the site's choice
             ({}, "relion/5.0.1/oneapi-cpu-avx512"),                              # outside a job: the CPU queue's
             ({"SLURM_JOB_PARTITION": "g5", "CRYOSTACK_RELION": "4.0.1"}, "relion/4.0.1/gcc-cuda86"),
             ({"SLURM_JOB_PARTITION": "g5", "CRYOSTACK_RELION": "4.0.1-gcc-cuda86"}, "relion/4.0.1/gcc-cuda86"),
             ({"SLURM_JOB_PARTITION": "c6i", "CRYOSTACK_RELION": "4.0.1"}, "relion/4.0.1/gcc-cpu"),
             ({"SLURM_JOB_PARTITION": "c6i", "CRYOSTACK_RELION": "5.0.1-gcc-cpu"}, "relion/5.0.1/gcc-cpu"),
             ({"SLURM_JOB_PARTITION": "c6i", "CRYOSTACK_INSTANCE_FAMILY": "g5"}, "relion/5.0.1/gcc-cuda86")]
    for env, key in cases:
        recorder.reset()
        result = run(prefix / "bin" / "relion_refine", "--iter", "25", env=recorder.env(**env))
        assert result.returncode == 0, (env, result.stderr)
        assert ran_image(recorder) == sif(efs, key), env


def test_dispatcher_errors_name_what_is_available(tree):
    prefix, recorder, _ = tree
    unknown = run(prefix / "bin" / "relion_refine", env=recorder.env(SLURM_JOB_PARTITION="gpu-old"))
    assert unknown.returncode == 2
    assert ("partition 'gpu-old' is not a cryostack queue (known: g4dn, g4dn-spot, g4dn12, g4dn12-spot, g5, g5-spot, "
            "c6i, c6i-spot)") in unknown.stderr
    unserved = run(prefix / "bin" / "relion_refine", env=recorder.env(CRYOSTACK_INSTANCE_FAMILY="p4d"))
    assert unserved.returncode == 2
    assert "no published image serves instance family 'p4d' (available: g4dn, g5, c6i)" in unserved.stderr
    pinned = run(prefix / "bin" / "relion_refine", env=recorder.env(SLURM_JOB_PARTITION="g4dn", CRYOSTACK_RELION="4.0.1"))
    assert pinned.returncode == 2
    assert "relion 4.0.1 is not published for instance family g4dn (published for g4dn: 5.0.1-gcc-cuda75)" in pinned.stderr


def test_mpi_launcher_comes_from_the_image(tree):
    """Open MPI images start under Slurm's PMIx, Intel MPI (oneAPI) images under Hydra with Slurm bootstrap."""
    prefix, recorder, _ = tree
    launcher = prefix / "bin" / "cryostack-mpirun"
    dispatcher = str(prefix / "bin" / "relion_refine_mpi")
    recorder.reset()
    job = dict(SLURM_JOB_ID="7", SLURM_CPUS_PER_TASK="4")
    assert run(launcher, "-n", "5", dispatcher, "--o", "x", env=recorder.env(SLURM_JOB_PARTITION="g5", **job)).returncode == 0
    assert last_call(recorder, "srun") == ["--mpi=pmix", "--ntasks=5", "--cpus-per-task=4", dispatcher, "--o", "x"]
    recorder.reset()
    result = run(launcher, "-n", "3", dispatcher, "--o", "x", env=recorder.env(SLURM_JOB_PARTITION="c6i", **job))
    # The site's oneAPI image on c6i: the example site's Intel MPI launcher, which this machine lacks.
    assert result.returncode == 127 and "/opt/intel/mpi/latest/bin/mpirun" in result.stderr, result.stderr
    assert not recorder.calls(), "Intel MPI ranks must not start under srun --mpi=pmix"
    recorder.reset()
    assert run(launcher, "-n", "3", dispatcher, env=recorder.env(SLURM_JOB_PARTITION="c6i", CRYOSTACK_RELION="5.0.1-gcc-cpu",
                                                                   **job)).returncode == 0
    assert last_call(recorder, "srun")[:2] == ["--mpi=pmix", "--ntasks=3"], "the gcc image of the same queue: Open MPI"
    bad = run(launcher, "-n", "two", dispatcher, env=recorder.env())
    assert bad.returncode == 2 and "whole number" in bad.stderr


def test_intel_mpi_images_use_the_sites_hydra_with_slurm_bootstrap(tmp_path):
    hydra = tmp_path / "intel" / "mpirun"
    hydra.parent.mkdir()
    recorder = Recorder(tmp_path)
    hydra.write_text((recorder.dir / "mpirun").read_text())
    hydra.chmod(0o755)
    prefix = make_tree(tmp_path, intel_mpirun=str(hydra))
    recorder.reset()
    dispatcher = str(prefix / "bin" / "relion_refine_mpi")
    result = run(prefix / "bin" / "cryostack-mpirun", "-n", "3", dispatcher, "--o", "x",
                 env=recorder.env(SLURM_JOB_PARTITION="c6i", SLURM_JOB_ID="1"))
    assert result.returncode == 0, result.stderr
    [call] = recorder.calls()
    assert call["tool"] == "mpirun" and call["argv"] == ["-n", "3", dispatcher, "--o", "x"]
    assert call["env"]["I_MPI_HYDRA_BOOTSTRAP"] == "slurm"


def test_one_qsub_template_serves_every_queue_and_asks_gpus_only_where_there_are_some(tree, tmp_path):
    prefix, recorder, _ = tree
    template = (prefix / "qsub" / "relion.sh").read_text()
    assert not list((prefix / "qsub").glob("*-spot.sh")) and [p.name for p in (prefix / "qsub").iterdir()] == ["relion.sh"]
    directives = [line for line in template.splitlines() if line.startswith("#SBATCH")]
    assert all(not d.rstrip().endswith("=") for d in directives) and not [d for d in directives if "--gres" in d]
    submit = prefix / "bin" / "cryostack-sbatch"
    for queue, gres in (("g4dn", "--gres=gpu:8"), ("g4dn12-spot", "--gres=gpu:4"), ("g5", "--gres=gpu:4"),
                        ("c6i", None), ("c6i-spot", None)):
        script = tmp_path / f"{queue}.script"
        script.write_text(fill(template, queue=queue, mpinodes=3, threads=2, extra1=1, outfile="o", errfile="e",
                               commands=["`which relion_refine_mpi` --o Refine3D/job001/run --gpu"]))
        assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
        recorder.reset()
        result = run(submit, str(script), env=recorder.env())
        assert result.returncode == 0, result.stderr
        assert last_call(recorder, "sbatch") == ([gres] if gres else []) + [str(script)], queue
    script = tmp_path / "typo.script"
    script.write_text(fill(template, queue="g55", mpinodes=1, threads=1, extra1=1, outfile="o", errfile="e", commands=["x"]))
    recorder.reset()
    typo = run(submit, str(script), env=recorder.env())
    assert typo.returncode == 2 and "queue 'g55' is not a partition of this cluster (known: g4dn, g4dn-spot" in typo.stderr
    assert not recorder.calls(), "nothing was submitted"


def test_modules_point_each_image_at_a_queue_it_serves(tree):
    prefix, _, _ = tree
    modules = prefix / "modules" / "lmod" / "cryostack" / "relion"

    def env_of(name: str) -> dict:
        text = (modules / f"{name}.lua").read_text()
        return dict(re.findall(r'^(?:setenv|pushenv)\("([A-Z0-9_]+)", "([^"]*)"\)$', text, re.M))

    assert env_of("5.0.1-oneapi-cpu-avx512")["RELION_QUEUE_NAME"] == "c6i"
    assert env_of("5.0.1-gcc-cuda86")["RELION_QUEUE_NAME"] == "g5"
    assert env_of("4.0.1-gcc-cuda86")["CRYOSTACK_RELION"] == "4.0.1-gcc-cuda86"
    env = env_of("5.0.1")
    assert env["RELION_QSUB_TEMPLATE"] == f"{prefix}/qsub/relion.sh"
    assert env["RELION_QSUB_COMMAND"] == f"{prefix}/bin/cryostack-sbatch"
    assert env["RELION_MPIRUN"] == f"{prefix}/bin/cryostack-mpirun"
    assert env["RELION_SCRATCH_DIR"] == "/scratch", "node-local, never the shared FSx"
    assert env["RELION_CTFFIND_EXECUTABLE"] == f"{prefix}/inside/ctffind"
    assert os.access(env["RELION_CTFFIND_EXECUTABLE"], os.X_OK)


def test_presets_follow_the_gotocloud_rank_rule_with_spot_twins(tree):
    prefix, _, _ = tree
    site = yaml.safe_load(EXAMPLE.read_text())
    presets = yaml.safe_load((ROOT / "cluster-configs" / "presets.yaml").read_text())
    gpus = {"g4dn.metal": 8, "g4dn.12xlarge": 4, "g5.12xlarge": 4}   # AWS's specifications
    for name, preset in presets.items():
        queue = next(q for q in site["queues"] if preset["instance_type"] in q["instance_types"])
        ranks = preset["nodes"] * gpus[preset["instance_type"]] + 1 if preset["instance_type"] in gpus \
            else preset["nodes"] * preset["mpi_per_node"]
        for twin, partition in ((name, queue["name"]), (f"{name}-spot", queue["name"] + "-spot")):
            text = (prefix / "modules" / "lmod" / "cryostack" / "relion-preset" / f"{twin}.lua").read_text()
            assert f'pushenv("RELION_QUEUE_NAME", "{partition}")' in text
            assert f'pushenv("RELION_QSUB_NRMPI", "{ranks}")' in text
            assert f'pushenv("RELION_QSUB_EXTRA1_DEFAULT", "{preset["nodes"]}")' in text


def test_a_site_overrides_a_preset_and_unknown_presets_are_refused(tmp_path):
    manifest = write_manifest(tmp_path / "efs" / "manifest.json", relion_entries())
    site = write_site(tmp_path / "site.yaml", presets={"polish": {"mpi_per_node": 8}})
    assert generate(site, manifest, tmp_path / "prefix").returncode == 0
    assert 'pushenv("RELION_QSUB_NRMPI", "32")' in \
        (tmp_path / "prefix" / "modules" / "lmod" / "cryostack" / "relion-preset" / "polish.lua").read_text()
    site = write_site(tmp_path / "site.yaml", presets={"polishing": {"nodes": 2}})
    result = generate(site, manifest, tmp_path / "prefix")
    assert result.returncode == 2 and f"{site}:" in result.stderr and "unknown preset 'polishing'" in result.stderr
    site = write_site(tmp_path / "site.yaml", presets={"polish": {"nodes": "many"}})
    result = generate(site, manifest, tmp_path / "prefix")
    assert result.returncode == 2 and "presets.polish.nodes" in result.stderr


def test_a_missing_manifest_is_a_clear_error(tmp_path):
    result = cryostack("cluster.wrappers", "--site", str(EXAMPLE), "--manifest", str(tmp_path / "nope.json"),
                       "--prefix", str(tmp_path / "prefix"))
    assert result.returncode == 2 and "cannot read the published manifest" in result.stderr
    assert not (tmp_path / "prefix").exists()


# --- manifest values that must not become paths or options --------------------------------------

@pytest.mark.parametrize("field, value, message", [
    # Each names the entry and the key: the manifest check refuses most, the cluster side the rest.
    ("commands", ["../../x"], "commands[0].name"),
    ("commands", ["-rf"], "commands[0].name"),
    ("version", "5.0.1\nrm -rf /", "version"),
    ("variant", "../up", "variant"),
    ("fingerprint", "abc$(id)", "fingerprint"),
    ("sif", {"path": "../../../etc/passwd", "sha256": "0" * 64, "size": 1}, "sif.path"),
    ("sif", {"path": "/etc/passwd", "sha256": "0" * 64, "size": 1}, "sif.path"),
    ("labels", {"io.cryostack.mpi": "mpich; id"}, "is not one of openmpi, intelmpi"),
])
def test_manifest_values_that_would_escape_are_refused(tmp_path, field, value, message):
    bad = entry("relion", "5.0.1", "gcc-cpu", targets=["c6i"], commands=["relion_refine"])
    bad[field] = [{"name": c} for c in value] if field == "commands" else value
    good = entry("relion", "5.0.1", "gcc-cpu", targets=["c6i"], commands=["relion_refine"])
    manifest = write_manifest(tmp_path / "efs" / "manifest.json", [good], touch_sifs=False)
    data = __import__("json").loads(manifest.read_text())
    data["images"] = {"relion/5.0.1/gcc-cpu": bad} if field not in ("version", "variant") else \
        {f"relion/{bad['version']}/{bad['variant']}": bad}
    manifest.write_text(__import__("json").dumps(data))
    result = generate(EXAMPLE, manifest, tmp_path / "prefix")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{manifest}" in result.stderr and "images['relion/" in result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "prefix").exists() and not (tmp_path / "x").exists()


def test_docker_wrappers_refuse_an_image_reference_that_is_an_option(tmp_path):
    bad = entry("relion", "5.0.1", "gcc-cpu", targets=["c6i"], commands=["relion_refine"], image="--privileged")
    manifest = write_manifest(tmp_path / "efs" / "manifest.json", [bad])
    site = write_site(tmp_path / "site.yaml", runtime="docker", runtime_install=None)
    result = generate(site, manifest, tmp_path / "prefix")
    assert result.returncode == 2 and "--privileged" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    good = entry("relion", "5.0.1", "gcc-cpu", targets=["c6i"], commands=["relion_refine"])
    prefix = make_tree(tmp_path / "ok", [good], runtime="docker", runtime_install=None, variants={})
    recorder = Recorder(tmp_path)
    assert run(prefix / "bin" / "relion_refine_c6i", "--i", "x", env=recorder.env()).returncode == 0
    argv = last_call(recorder, "docker")
    assert argv[0] == "run" and argv[argv.index("cryostack/relion:5.0.1-gcc-cpu") + 1:] == ["relion_refine", "--i", "x", "--cpu"]


def test_a_sites_template_directory_is_searched_first(tmp_path):
    own = tmp_path / "my-templates"
    own.mkdir()
    shipped = (ROOT / "cluster-configs" / "templates" / "qsub.sh.j2").read_text()
    (own / "qsub.sh.j2").write_text(shipped.replace("#SBATCH --job-name=relion", "#SBATCH --job-name=relion\n#SBATCH --account=cryo-lab"))
    prefix = make_tree(tmp_path, templates="my-templates")
    assert "#SBATCH --account=cryo-lab" in (prefix / "qsub" / "relion.sh").read_text()
    assert (prefix / "bin" / "cryostack-sbatch").exists(), "the other templates are the shipped ones"


def test_wrapper_overhead_is_measured_against_a_direct_exec_of_the_same_sif(tree, tmp_path):
    """What `invoke bench` reports: dispatcher + wrapper against `apptainer exec` of the SIF they pick.
    The stand-in runtime costs almost nothing (one builtin), so the difference is what cryostack's
    scripts add; the issue's target is 20 ms."""
    from cryostack.cluster.overhead import wrapper_overhead
    prefix, _, efs = tree
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "apptainer").write_text(f"#!/bin/bash\nprintf '%s\\n' \"$*\" >> {tmp_path}/calls\n")
    (tools / "apptainer").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "CRYOSTACK_"))}
    env.update(PATH=f"{tools}:{os.environ['PATH']}", SLURM_JOB_PARTITION="g5")
    result = wrapper_overhead(prefix, "relion_refine", ["--version"], runs=9, env=env)
    assert result.image == sif(efs, "relion/5.0.1/gcc-cuda86")
    calls = (tmp_path / "calls").read_text().splitlines()
    assert len(calls) == 20 and calls.count(f"exec {result.image} relion_refine --version") == 10
    assert result.wrapped_ms > 0 and result.direct_ms > 0 and result.ratio == result.wrapped_ms / result.direct_ms
    assert result.overhead_ms < 20, result.line()
