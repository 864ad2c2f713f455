"""A RELION job from the GUI's Submit button to RELION's output files, on the real Slurm.

The maintainers' chain makes and publishes the RELION 5.0.1 CPU (ALTCPU) image and the CTFFIND
image; `cluster.wrappers` generates the site's tree. Then, as a user: load the module with real
Lmod, fill the qsub template exactly as RELION's pipeline code does, submit it with the command
the module gives RELION (RELION_QSUB_COMMAND), and let the dispatcher pick the published SIF of the
partition. A 3D classification (relion_refine_mpi, 2 ranks, 3 iterations) runs on projections that
relion_project made of a synthetic map, and a CtfFind job runs ctffind from inside RELION's
container (RELION_CTFFIND_EXECUTABLE) on synthetic micrographs with known defocus."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import starfile
import pytest

from cryostack.checks.ctf import Astigmatism, Optics, simulate_micrograph
from helpers import cryostack
from sites import LMOD_INIT, apptainer_shim, fill, site_wrappers

pytestmark = pytest.mark.docker

RELION, CTFFIND = "relion/5.0.1/gcc-cpu", "ctffind/4.1.14/gcc-cpu"
TAGS = {RELION: "cryostack/relion:5.0.1-gcc-cpu", CTFFIND: "cryostack/ctffind:4.1.14-gcc-cpu"}
APIX, BOX = 4.0, 40                     # the synthetic map: 160 Å box
MIC_APIX, MIC_SIZE, DEFOCUS = 1.0, 1024, 15000.0   # the synthetic micrographs: Å/pixel, pixels, defocus (Å)


def write_mrc(path: Path, data: np.ndarray, apix: float) -> None:
    """DATA (z, y, x) as an MRC file with pixel size APIX, through the field's own library."""
    if data.ndim == 3 and data.shape[0] == 1:  # a micrograph is an image, not a volume of one section
        data = data[0]
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.ascontiguousarray(data, dtype=np.float32))
        mrc.voxel_size = apix


def read_mrc(path: Path) -> np.ndarray:
    with mrcfile.open(path, permissive=False) as mrc:
        return np.array(mrc.data)


def synthetic_map() -> np.ndarray:
    """An asymmetric object of Gaussian blobs (so that orientations are well defined)."""
    grid = (np.indices((BOX, BOX, BOX)) - BOX / 2) * APIX
    volume = np.zeros((BOX, BOX, BOX))
    for (x, y, z), sigma, weight in (((0, 0, 0), 14, 1.0), ((24, 0, 0), 8, 0.8), ((0, 30, 8), 7, 0.7),
                                     ((-10, -12, 28), 6, 0.9), ((18, 22, -20), 5, 0.6)):
        volume += weight * np.exp(-((grid[2] - x) ** 2 + (grid[1] - y) ** 2 + (grid[0] - z) ** 2) / (2 * sigma ** 2))
    return volume


def star_rows(path: Path, table: str) -> list:
    """The rows of data_TABLE in a STAR file as RELION wrote it (a key-value block is one row), read
    with the field's own library."""
    block = starfile.read(path, always_dict=True)[table]
    if isinstance(block, dict):
        return [{name: str(value) for name, value in block.items()}]
    return [{name: str(value) for name, value in row.items()} for row in block.to_dict("records")]


@pytest.fixture(scope="module")
def published_relion(tmp_path_factory, slurm, trixie_base):
    """RELION 5.0.1 CPU and CTFFIND through the project's chain: build (an up-to-date image is not
    rebuilt), sif, publish. Locally the images must exist already: they take minutes to build."""
    work = tmp_path_factory.mktemp("relion-e2e")
    os.chmod(work, 0o755)
    images = subprocess.run(["docker", "image", "inspect", *TAGS.values()], capture_output=True, text=True)
    selection = ",".join(TAGS)
    build_dir = str(work / "build")
    if images.returncode != 0 and os.environ.get("CI") != "true":
        pytest.skip(f"needs the images {', '.join(TAGS.values())} (`invoke build --only {selection}`, about "
                    "8 minutes): not built on this machine")
    if os.environ.get("CI") != "true":
        plan = cryostack("build", "--only", selection, "--build-dir", build_dir, "--dry-run")
        assert plan.returncode == 0, plan.stdout + plan.stderr
        if "would build" in plan.stdout:
            pytest.skip(f"the local images are not those of this checkout's recipes (would rebuild):\n{plan.stdout}")
    efs = work / "efs"
    for step in (["build"], ["sif"], ["publish", "--efs-root", str(efs)]):
        result = cryostack(*step, "--only", selection, "--build-dir", build_dir)
        assert result.returncode == 0, result.stdout + result.stderr
    return work, efs / "manifest.json"


@pytest.fixture(scope="module")
def relion_site(published_relion, slurm):
    if not LMOD_INIT.is_file():
        pytest.fail("needs Lmod (ci/setup.sh installs it)") if os.environ.get("CI") == "true" else \
            pytest.skip("needs Lmod (apt-get install lmod)")
    work, manifest = published_relion
    prefix = site_wrappers(work, manifest, "apptainer", variants={"relion": {"c6i": "gcc-cpu"}})
    project = work / "project"
    project.mkdir()
    return work, prefix, project, apptainer_shim(work), slurm


def submit_as_the_gui(relion_site, job_dir: str, commands: list, mpinodes: int, module: str) -> Path:
    """Load the module with Lmod, write JOB_DIR/run_submit.script from the module's template as
    RELION does, run RELION_QSUB_COMMAND on it, wait; returns the job directory."""
    work, prefix, project, shim, slurm = relion_site
    (project / job_dir).mkdir(parents=True)
    shell = (f". {LMOD_INIT}\nmodule use {prefix}/modules/lmod\nmodule load {module}\n"
             'printf "%s\\n" "$RELION_QSUB_TEMPLATE" "$RELION_QSUB_COMMAND" "$RELION_QUEUE_NAME" "$RELION_CTFFIND_EXECUTABLE"\n')
    env = dict(slurm.env, PATH=f"{shim}:{os.environ['PATH']}")
    loaded = subprocess.run(["bash", "--noprofile", "--norc", "-c", shell], capture_output=True, text=True, env=env, cwd=project)
    assert loaded.returncode == 0, loaded.stderr
    template, qsub, queue, ctffind = loaded.stdout.splitlines()
    commands = [c.replace("$RELION_CTFFIND_EXECUTABLE", ctffind) + f" --pipeline_control {job_dir}/" for c in commands]
    script = fill(Path(template).read_text(), queue=queue, mpinodes=mpinodes, threads=1, extra1=1,
                  outfile=f"{job_dir}/run.out", errfile=f"{job_dir}/run.err", name=f"{job_dir}/", commands=commands)
    (project / job_dir / "run_submit.script").write_text(script)
    submitted = subprocess.run(["bash", "--noprofile", "--norc", "-c", shell + f'"$RELION_QSUB_COMMAND" {job_dir}/run_submit.script'],
                               capture_output=True, text=True, env=env, cwd=project)
    assert submitted.returncode == 0, submitted.stderr
    job = re.search(r"Submitted batch job (\d+)", submitted.stdout).group(1)
    state = slurm.wait(job, seconds=1800)
    err = project / job_dir / "run.err"
    assert state == "COMPLETED", f"{state}: {err.read_text() if err.exists() else ''}"
    return project / job_dir


def in_image(relion_site, manifest: Path, key: str, *command: str) -> None:
    """Run a maintenance command (relion_project: not a wrapped command) in a published SIF."""
    work, _, project, shim, _ = relion_site
    entry = __import__("json").loads(manifest.read_text())["images"][key]
    result = subprocess.run([str(shim / "apptainer"), "exec", str(manifest.parent / entry["sif"]["path"]), *command],
                            capture_output=True, text=True, cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_class3d_job_submitted_as_the_gui_does_runs_to_completion(relion_site, published_relion):
    work, prefix, project, _, _ = relion_site
    _, manifest = published_relion
    reference = synthetic_map()
    write_mrc(project / "ref.mrc", reference, APIX)
    in_image(relion_site, manifest, RELION, "relion_project", "--i", "ref.mrc", "--o", "proj", "--nr_uniform", "200",
             "--angpix", str(APIX), "--add_noise", "--white_noise", "3")
    assert (project / "proj.star").exists()
    command = ("`which relion_refine_mpi` --o Class3D/job001/run --i proj.star --ref ref.mrc --ini_high 40 "
               "--dont_combine_weights_via_disc --pool 10 --pad 2 --iter 3 --tau2_fudge 4 --particle_diameter 140 "
               "--K 1 --flatten_solvent --zero_mask --oversampling 1 --healpix_order 1 --offset_range 4 "
               "--offset_step 2 --sym C1 --norm --scale --j 1")
    job = submit_as_the_gui(relion_site, "Class3D/job001", [command], 2, "cryostack/relion/5.0.1-gcc-cpu")
    out = (job / "run.out").read_text()
    assert "RELION version: 5.0.1" in out, "the loaded version's image ran"
    assert re.search(r"Number of MPI processes\s*=\s*2\b", out), "two ranks that talk to each other (not singletons)"
    assert "Running CPU instructions" in out, "the CPU build ran with --cpu, which the wrapper added"
    model = star_rows(job / "run_it003_model.star", "model_general")[0]
    assert 0 < float(model["rlnCurrentResolution"]) < 100
    result = read_mrc(job / "run_it003_class001.mrc")
    correlation = np.corrcoef(result.ravel(), reference.ravel())[0, 1]
    assert correlation > 0.5, f"the refined map does not resemble the object (correlation {correlation:.2f})"


def test_a_ctffind_job_runs_ctffind_from_inside_relions_container(relion_site):
    work, prefix, project, _, _ = relion_site
    (project / "Micrographs").mkdir()
    names = []
    for index in range(2):
        name = f"Micrographs/mic{index}.mrc"
        # The simulator the CTFFIND functional check uses: Thon rings over a falling background.
        micrograph = simulate_micrograph(MIC_SIZE, Optics(MIC_APIX, 300, 2.7, 0.1), Astigmatism(DEFOCUS, DEFOCUS, 0), index)
        write_mrc(project / name, micrograph, MIC_APIX)
        names.append(name)
    optics = pd.DataFrame([{"rlnOpticsGroupName": "opticsGroup1", "rlnOpticsGroup": 1, "rlnMicrographPixelSize": MIC_APIX,
                            "rlnVoltage": 300.0, "rlnSphericalAberration": 2.7, "rlnAmplitudeContrast": 0.1}])
    micrographs = pd.DataFrame({"rlnMicrographName": names, "rlnOpticsGroup": [1] * len(names)})
    starfile.write({"optics": optics, "micrographs": micrographs}, project / "micrographs.star")
    command = ("`which relion_run_ctffind` --i micrographs.star --o CtfFind/job002/ --Box 512 --ResMin 30 --ResMax 5 "
               "--dFMin 5000 --dFMax 50000 --FStep 500 --dAst 100 --ctffind_exe $RELION_CTFFIND_EXECUTABLE "
               "--ctfWin -1 --is_ctffind4 --fast_search")
    job = submit_as_the_gui(relion_site, "CtfFind/job002", [command], 1, "cryostack/relion/5.0.1-gcc-cpu")
    rows = star_rows(job / "micrographs_ctf.star", "micrographs")
    assert len(rows) == 2
    for row in rows:
        defocus = (float(row["rlnDefocusU"]) + float(row["rlnDefocusV"])) / 2
        assert abs(defocus - DEFOCUS) < 0.03 * DEFOCUS, f"{row['rlnMicrographName']}: defocus {defocus:.0f} Å"
