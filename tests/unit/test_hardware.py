"""The instance table: GPUs, SM, EFA and CPU facts drive the cluster configuration, the submit
command's --gres, which images serve a family and which family is the login (CPU) family. Adding
a family is one row (here a site's `hardware:` row); unknown instance types are refused."""

from __future__ import annotations

import pytest
import yaml

from cryostack.hardware import UnknownInstance, shipped
from helpers import cryostack, write_site
from sites import Recorder, entry, generate, run, write_manifest

# g6e (NVIDIA L40S, sm_89, AMD EPYC 3rd generation) as a site would describe it: one row.
G6E = {"gpu": {"model": "NVIDIA L40S", "sm": 89},
       "gpus": {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "16xlarge": 1, "12xlarge": 4, "24xlarge": 4,
                "48xlarge": 8},
       "efa": ["8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge"],
       "cpu": {"vendor": "amd", "avx512": False}}


def test_unknown_instance_types_are_refused_not_guessed():
    table = shipped()
    with pytest.raises(UnknownInstance, match="no instance family 'g9'"):
        table.instance("g9.xlarge")
    with pytest.raises(UnknownInstance, match="g5 has no size '3xlarge'"):
        table.instance("g5.3xlarge")


def entries_for(sm: int):
    """A RELION CUDA image for SM (its catalogue targets name g6 only: for other families the table
    decides by SM) and a CPU one."""
    commands = ["relion_refine", "relion_refine_mpi"]
    return [entry("relion", "5.0.1", f"gcc-cuda{sm}", accel="cuda", cuda_arch=sm, targets=["g6"], commands=commands),
            entry("relion", "5.0.1", "gcc-cpu", targets=["c6i"], commands=commands),
            entry("ctffind", "4.1.14", "gcc-cpu", targets=["c6i"], commands=["ctffind"])]


def build(tmp_path, family: str, instance_type: str, **site_changes):
    queues = [{"name": family, "instance_types": [instance_type], "max_count": 2},
              {"name": "cpu", "instance_types": ["c6i.32xlarge"], "max_count": 2}]
    site = write_site(tmp_path / "site.yaml", queues=queues, variants={}, **site_changes)
    manifest = write_manifest(tmp_path / "efs" / "manifest.json", entries_for(89))
    return site, manifest


def check_gpu_family(tmp_path, site, manifest, family: str, gpus: int):
    """What a user notices on a GPU family: EFA in the config, --gres on submission, its CUDA image
    with --nv and --gpu in jobs there, and the CPU queue (not this one) outside jobs."""
    out = tmp_path / "cluster.yaml"
    result = cryostack("cluster.config", "--site", str(site), "--output", str(out))
    assert result.returncode == 0, result.stderr
    queue = yaml.safe_load(out.read_text())["Scheduling"]["SlurmQueues"][0]
    assert queue["ComputeResources"][0]["Efa"] == {"Enabled": True}
    assert queue["Networking"]["PlacementGroup"] == {"Enabled": True}
    prefix = tmp_path / "prefix"
    result = generate(site, manifest, prefix)
    assert result.returncode == 0, result.stderr
    recorder = Recorder(tmp_path)
    script = tmp_path / "job.sh"
    script.write_text(f"#!/bin/bash\n#SBATCH --partition={family}\n")
    assert run(prefix / "bin" / "cryostack-sbatch", str(script), env=recorder.env()).returncode == 0
    assert recorder.calls()[-1]["argv"] == [f"--gres=gpu:{gpus}", str(script)]
    recorder.reset()
    assert run(prefix / "bin" / "relion_refine", env=recorder.env(SLURM_JOB_PARTITION=family)).returncode == 0
    argv = recorder.calls()[-1]["argv"]
    assert argv[1] == "--nv" and "gcc-cuda89" in next(a for a in argv if a.endswith(".sif")) and argv[-1] == "--gpu"
    recorder.reset()
    outside = run(prefix / "bin" / "ctffind", env=recorder.env())
    assert outside.returncode == 0, "outside a job the CPU queue's family serves: " + outside.stderr
    assert "ctffind/4.1.14/gcc-cpu" in next(a for a in recorder.calls()[-1]["argv"] if a.endswith(".sif"))


def test_a_g6_queue_gets_its_gpus_and_gres_and_is_not_the_login_family(tmp_path):
    site, manifest = build(tmp_path, "g6", "g6.12xlarge")
    check_gpu_family(tmp_path, site, manifest, "g6", 4)


def test_adding_an_instance_family_is_one_table_row(tmp_path):
    site, manifest = build(tmp_path, "g6e", "g6e.12xlarge")
    refused = cryostack("cluster.config", "--site", str(site))
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert f"{site}:" in refused.stderr and "queues[0].instance_types[0]: no instance family 'g6e'" in refused.stderr
    site, manifest = build(tmp_path, "g6e", "g6e.12xlarge", hardware={"g6e": G6E})
    check_gpu_family(tmp_path, site, manifest, "g6e", 4)


@pytest.mark.parametrize("row, message", [
    ({**G6E, "efa": ["96xlarge"]}, "hardware.g6e: efa names sizes the family does not have: 96xlarge"),
    ({k: v for k, v in G6E.items() if k != "gpu"}, "'gpus' needs 'gpu'"),
    ({**G6E, "gpu": {"model": "L40S\n", "sm": 89}}, "hardware.g6e.gpu.model"),
    ({**G6E, "cpu": {"vendor": "via", "avx512": False}}, "hardware.g6e.cpu.vendor"),
])
def test_a_broken_site_row_is_refused_at_its_line(tmp_path, row, message):
    site, _ = build(tmp_path, "g6e", "g6e.12xlarge", hardware={"g6e": row})
    result = cryostack("cluster.config", "--site", str(site))
    assert result.returncode == 2 and f"{site}:" in result.stderr and message in result.stderr, result.stderr


def test_cpu_images_serve_new_cpu_families_by_their_declared_features(tmp_path):
    """A CPU image that declares what it needs (label io.cryostack.cpu-features) serves every CPU-only
    family with those features; one that declares nothing serves only its catalogue targets."""
    commands = ["relion_refine"]
    entries = [entry("relion", "5.0.1", "gcc-avx512", targets=["c6i"], commands=commands,
                     labels={"io.cryostack.cpu-features": "avx512"}),
               entry("relion", "4.0.1", "gcc-cpu", targets=["c6i"], commands=commands)]
    manifest = write_manifest(tmp_path / "efs" / "manifest.json", entries)
    queues = [{"name": "c7i", "instance_types": ["c7i.48xlarge"], "max_count": 1},
              {"name": "c6i", "instance_types": ["c6i.32xlarge"], "max_count": 1}]
    site = write_site(tmp_path / "site.yaml", queues=queues, variants={})
    prefix = tmp_path / "prefix"
    assert generate(site, manifest, prefix).returncode == 0
    recorder = Recorder(tmp_path)
    assert run(prefix / "bin" / "relion_refine", env=recorder.env(SLURM_JOB_PARTITION="c7i")).returncode == 0
    assert "gcc-avx512" in next(a for a in recorder.calls()[-1]["argv"] if a.endswith(".sif"))
    older = run(prefix / "bin" / "relion_refine", env=recorder.env(SLURM_JOB_PARTITION="c7i", CRYOSTACK_RELION="4.0.1"))
    assert older.returncode == 2 and "relion 4.0.1 is not published for instance family c7i" in older.stderr


def test_a_new_gpu_family_is_served_by_one_variant_without_listing_targets(project):
    """Adding g6 (L4, sm_89): its row is in the table; the catalogue needs only a variant for sm_89,
    and the instance families each variant serves come from the table, not from hand-kept lists."""
    from cryostack.catalogue import load_catalogue
    from cryostack.plan import expand
    from helpers import edit_yaml

    edit_yaml(project / "images" / "relion.yaml", lambda data: data["variants"].update(
        {"gcc-cuda89": {"toolchain": "gcc", "accel": "cuda", "cuda_arch": 89, "description": "NVIDIA L4 (g6)"}}))
    entries = {t.key: t for t in expand(load_catalogue(project / "images"))}
    table = shipped()
    for key, target in entries.items():
        variant = target.variant
        if variant.accel == "cuda" and variant.cuda_arch:
            assert target.targets == [f for f, row in table.rows.items() if row.gpu and row.gpu.sm == variant.cuda_arch]
        if variant.cpu_features:
            assert all(table.row(f).cpu.avx512 for f in target.targets), key
    newest = max((t for t in entries.values() if t.variant_name == "gcc-cuda89"), key=lambda t: t.version)
    assert newest.targets == ["g6"]
